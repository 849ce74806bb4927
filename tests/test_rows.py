"""Rows become Structs by column name (store/rows.py), never by position."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import msgspec
import pytest

from kefal_lite.store.rows import struct

STORE = Path(__file__).resolve().parents[1] / "src" / "kefal_lite" / "store"


class Pair(msgspec.Struct, frozen=True):
    a: str
    b: int
    c: str | None = None


def _row(sql: str) -> sqlite3.Row:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    row: sqlite3.Row = conn.execute(sql).fetchone()
    return row


def test_columns_map_by_name_whatever_their_order() -> None:
    assert struct(Pair, _row("SELECT 2 AS b, 'x' AS a")) == Pair("x", 2)
    # a column added in the middle of the SELECT shifts nothing; one no field names is ignored
    assert struct(Pair, _row("SELECT 'x' AS a, 'new' AS extra, 2 AS b, 'z' AS c")) == Pair(
        "x", 2, "z"
    )
    assert struct(Pair, _row("SELECT 'x' AS a, 2 AS b"), c="given") == Pair("x", 2, "given")


def test_a_field_no_column_names_is_an_error_not_a_silent_default() -> None:
    with pytest.raises(TypeError):
        struct(Pair, _row("SELECT 'x' AS a, 2 AS bee"))


def test_no_store_module_builds_a_struct_by_position() -> None:
    by_position = re.compile(r"\b[A-Z]\w*\(\*(row|rows|r|values|v)\)|values\[\d+\]|\bv\[\d+\]")
    found = [
        f"{path.name}: {line.strip()}"
        for path in sorted(STORE.glob("*.py"))
        for line in path.read_text().splitlines()
        if by_position.search(line)
    ]
    assert found == []
