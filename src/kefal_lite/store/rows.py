"""Rows become Structs by column name, never by position: a column added to a SELECT or a
field added to a Struct cannot shift the others."""

from __future__ import annotations

import sqlite3
from typing import Any, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)


def struct(cls: type[S], row: sqlite3.Row, **overrides: Any) -> S:
    """`cls` from the row's columns that name one of its fields; `overrides` replace
    (decoded JSON, computed values) or add fields. A field the row does not name and no
    override gives is a TypeError at once."""
    fields = cls.__struct_fields__
    values = {k: row[k] for k in row.keys() if k in fields}
    values.update(overrides)
    return cls(**values)
