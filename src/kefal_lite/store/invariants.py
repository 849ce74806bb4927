"""Community invariants: contributed, verified, shared with every tenant, retired by admins."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from kefal_lite.store.rows import struct

_json = msgspec.json.Encoder()


class StoredInvariant(msgspec.Struct, frozen=True):
    id: str
    name: str
    invariant_type: str
    predicate: dict[str, Any]
    severity: str
    metadata: dict[str, Any]
    source: str
    status: str
    contributed_by: str  # user id
    contributor: str  # username, shown on incidents and lists
    report: dict[str, Any] | None
    created_at: str
    verified_at: str | None
    status_reason: str | None = None  # why the server itself retired or rejected it


_SELECT = (
    "SELECT i.id, i.name, i.invariant_type, i.predicate, i.severity, i.metadata, i.source,"
    " i.status, i.contributed_by, u.username AS contributor, i.report, i.created_at, i.verified_at,"
    " i.status_reason"
    " FROM invariants i JOIN users u ON u.id = i.contributed_by"
)


def _row(row: sqlite3.Row) -> StoredInvariant:
    report = row["report"]
    return struct(
        StoredInvariant, row, predicate=msgspec.json.decode(row["predicate"]),
        metadata=msgspec.json.decode(row["metadata"]),
        report=msgspec.json.decode(report) if report else None,
    )  # fmt: skip


def add(conn: sqlite3.Connection, *, invariant_id: str, name: str, invariant_type: str,
        predicate: Any, severity: str, metadata: Any, source: str, user_id: str, now: str,
        status: str = "pending", report: Any = None) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO invariants (id, name, invariant_type, predicate, severity, metadata, source,"
        " status, contributed_by, report, created_at, verified_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (invariant_id, name, invariant_type, _json.encode(predicate).decode(), severity,
         _json.encode(metadata).decode(), source, status, user_id,
         _json.encode(report).decode() if report is not None else None, now,
         now if report is not None else None),
    )  # fmt: skip


def get(conn: sqlite3.Connection, invariant_id: str) -> StoredInvariant | None:
    row = conn.execute(_SELECT + " WHERE i.id = ?", (invariant_id,)).fetchone()
    return _row(row) if row else None


def visible_to(conn: sqlite3.Connection, invariant_id: str, user_id: str,
               is_admin: bool) -> StoredInvariant | None:  # fmt: skip
    """Its contributor or an admin may act on a contribution; to anyone else it does not exist."""
    inv = get(conn, invariant_id)
    if inv is None or (inv.contributed_by != user_id and not is_admin):
        return None
    return inv


def with_status(
    conn: sqlite3.Connection, status: str, user_id: str | None = None
) -> list[StoredInvariant]:
    if user_id is None:
        rows = conn.execute(_SELECT + " WHERE i.status = ? ORDER BY i.created_at, i.id", (status,))
    else:
        rows = conn.execute(
            _SELECT + " WHERE i.status = ? AND i.contributed_by = ? ORDER BY i.created_at, i.id",
            (status, user_id),
        )
    return [_row(r) for r in rows.fetchall()]


def set_verdict(conn: sqlite3.Connection, invariant_id: str, status: str, report: Any,
                now: str) -> None:  # fmt: skip
    conn.execute(
        "UPDATE invariants SET status = ?, report = ?, verified_at = ? WHERE id = ?",
        (status, _json.encode(report).decode(), now, invariant_id),
    )


def retire(conn: sqlite3.Connection, invariant_id: str, now: str) -> None:
    conn.execute(
        "UPDATE invariants SET status = 'retired', retired_at = ? WHERE id = ?", (now, invariant_id)
    )


def withdraw(conn: sqlite3.Connection, invariant_id: str, reason: str, now: str) -> str:
    """Take a contribution out of force without a person: an active one is retired, a pending
    one rejected, each with the reason. Returns the new status."""
    row = conn.execute("SELECT status FROM invariants WHERE id = ?", (invariant_id,)).fetchone()
    status = "retired" if row is not None and row[0] == "active" else "rejected"
    conn.execute(
        "UPDATE invariants SET status = ?, status_reason = ?,"
        " retired_at = CASE WHEN ? = 'retired' THEN ? ELSE retired_at END WHERE id = ?",
        (status, reason, status, now, invariant_id),
    )
    return status


def name_taken(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM invariants WHERE name = ?", (name,)).fetchone() is not None


def active_key(conn: sqlite3.Connection) -> str:
    """Changes whenever the set of active invariants changes, by this process or another
    (`kefal-lite invariants import` beside a running server): ids are never reused."""
    # Joined here, not with group_concat: SQLite's and PostgreSQL's (string_agg) differ.
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM invariants WHERE status = 'active' ORDER BY id"
    ).fetchall()]  # fmt: skip
    return f"{len(ids)}:{','.join(ids)}"
