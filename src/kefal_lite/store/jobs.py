"""The persisted jobs table: background work that must survive a restart.

A job is written in the same transaction as whatever caused it (an incident
that needs a remediation), so it can neither be lost nor run for a rollback.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from kefal_lite.store.db import skip_locked
from kefal_lite.store.rows import struct

_json = msgspec.json.Encoder()


class Job(msgspec.Struct, frozen=True):
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


def add(conn: sqlite3.Connection, kind: str, payload: dict[str, Any], now: str) -> int:
    cur = conn.execute(
        "INSERT INTO jobs (kind, payload, status, run_after, created_at, updated_at)"
        " VALUES (?, ?, 'pending', ?, ?, ?)"
        " RETURNING id",  # not lastrowid: PostgreSQL has no rowid
        (kind, _json.encode(payload).decode(), now, now, now),
    )
    return int(cur.fetchone()[0])


def claim_due(conn: sqlite3.Connection, now: str, limit: int = 20) -> list[Job]:
    """Mark due pending jobs running and return them. On SQLite one writer makes claims
    exclusive; on PostgreSQL the rows are locked and another server's claim skips them."""
    rows = conn.execute(
        "SELECT id, kind, payload, attempts FROM jobs WHERE status = 'pending' AND run_after <= ?"
        f" ORDER BY run_after, id LIMIT ?{skip_locked(conn)}",
        (now, limit),
    ).fetchall()
    for row in rows:
        conn.execute(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = ?"
            " WHERE id = ?",
            (now, row[0]),
        )
    return [
        struct(Job, r, payload=msgspec.json.decode(r["payload"]), attempts=r["attempts"] + 1)
        for r in rows
    ]


def finish(conn: sqlite3.Connection, job_id: int, now: str) -> None:
    conn.execute(
        "UPDATE jobs SET status = 'done', last_error = NULL, updated_at = ? WHERE id = ?",
        (now, job_id),
    )


def retry_or_fail(
    conn: sqlite3.Connection, job_id: int, error: str, now: str, run_after: str | None
) -> None:
    """Back to pending for another try at `run_after`, or failed for good when None."""
    conn.execute(
        "UPDATE jobs SET status = ?, last_error = ?, run_after = COALESCE(?, run_after),"
        " updated_at = ? WHERE id = ?",
        ("pending" if run_after else "failed", error[:1000], run_after, now, job_id),
    )


def requeue_running(conn: sqlite3.Connection, now: str) -> int:
    """At startup: jobs that were running when the server stopped run again."""
    cur = conn.execute(
        "UPDATE jobs SET status = 'pending', run_after = ?, updated_at = ?"
        " WHERE status = 'running'",
        (now, now),
    )
    return cur.rowcount


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
    return {r[0]: int(r[1]) for r in rows}


def prune_finished(conn: sqlite3.Connection, cutoff: str) -> int:
    """Forget done and failed jobs last touched before `cutoff` (pending ones always stay)."""
    cur = conn.execute(
        "DELETE FROM jobs WHERE status IN ('done', 'failed') AND updated_at < ?", (cutoff,)
    )
    return cur.rowcount
