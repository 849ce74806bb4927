"""Suppressions: a tenant's rules for findings that open no incident, and their hit counts."""

from __future__ import annotations

import sqlite3

import msgspec

from kefal_lite.store.rows import struct


class Suppression(msgspec.Struct, frozen=True):
    id: str
    user_id: str
    invariant_id: str | None
    host_id: str | None
    subject_glob: str | None
    reason: str
    expires_at: str | None
    created_by: str
    created_at: str
    hits: int = 0
    last_hit_at: str | None = None


_FIELDS = Suppression.__struct_fields__
_COLUMNS = ", ".join(_FIELDS)


def _row(row: sqlite3.Row) -> Suppression:
    return struct(Suppression, row)


def add(conn: sqlite3.Connection, s: Suppression) -> None:
    conn.execute(
        f"INSERT INTO suppressions ({_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))})",
        msgspec.structs.astuple(s),
    )


def list_for_user(conn: sqlite3.Connection, user_id: str) -> list[Suppression]:
    """Oldest first: matching credits the first suppression that fits."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM suppressions WHERE user_id = ? ORDER BY created_at, id",
        (user_id,),
    ).fetchall()
    return [_row(r) for r in rows]


def count_for_user(conn: sqlite3.Connection, user_id: str) -> int:
    row = conn.execute("SELECT COUNT(*) FROM suppressions WHERE user_id = ?", (user_id,))
    return int(row.fetchone()[0])


def delete(conn: sqlite3.Connection, user_id: str, suppression_id: str) -> bool:
    """False when the tenant has no such suppression."""
    cur = conn.execute(
        "DELETE FROM suppressions WHERE id = ? AND user_id = ?", (suppression_id, user_id)
    )
    return cur.rowcount == 1


def record_hits(conn: sqlite3.Connection, *, user_id: str, host_id: str, hits: dict[str, int],
                now: str) -> None:  # fmt: skip
    """One snapshot's suppressed findings: per suppression, and in the host's total."""
    for suppression_id, n in hits.items():
        conn.execute(
            "UPDATE suppressions SET hits = hits + ?, last_hit_at = ? WHERE id = ? AND user_id = ?",
            (n, now, suppression_id, user_id),
        )
    conn.execute(
        "UPDATE hosts SET suppressed = suppressed + ? WHERE id = ? AND user_id = ?",
        (sum(hits.values()), host_id, user_id),
    )


def host_count(conn: sqlite3.Connection, user_id: str, host_id: str) -> int:
    row = conn.execute(
        "SELECT suppressed FROM hosts WHERE id = ? AND user_id = ?", (host_id, user_id)
    ).fetchone()
    return int(row[0]) if row else 0
