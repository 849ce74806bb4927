"""Outgoing mail. Every message is a row first, so a mail is never silently dropped.

With SMTP configured the deliverer sends pending rows and then blanks the body (it
may hold a reset link). Without SMTP the row is the mailbox: `kefal-lite outbox`
shows it to the operator, and the log says that it is there.
"""

from __future__ import annotations

import sqlite3

import msgspec

from kefal_lite.store.rows import struct


class Mail(msgspec.Struct, frozen=True):
    id: int
    recipient: str
    subject: str
    body: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: str
    sent_at: str | None


_COLUMNS = ", ".join(Mail.__struct_fields__)


def add(
    conn: sqlite3.Connection, *, recipient: str, subject: str, body: str, status: str, now: str
) -> int:
    cur = conn.execute(
        "INSERT INTO outbox (recipient, subject, body, status, created_at) VALUES (?, ?, ?, ?, ?)"
        " RETURNING id",  # not lastrowid: PostgreSQL has no rowid
        (recipient, subject, body, status, now),
    )
    return int(cur.fetchone()[0])


def pending(conn: sqlite3.Connection, limit: int = 50) -> list[Mail]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id LIMIT ?", (limit,)
    ).fetchall()
    return [struct(Mail, row) for row in rows]


def recent(conn: sqlite3.Connection, limit: int = 20) -> list[Mail]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM outbox ORDER BY id DESC LIMIT ?", (limit,))
    return [struct(Mail, row) for row in rows.fetchall()]


def mark_sent(conn: sqlite3.Connection, mail_id: int, now: str) -> None:
    conn.execute(
        "UPDATE outbox SET status = 'sent', body = NULL, sent_at = ?, attempts = attempts + 1,"
        " last_error = NULL WHERE id = ?",
        (now, mail_id),
    )


def mark_failed(conn: sqlite3.Connection, mail_id: int, error: str, give_up: bool) -> None:
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?,"
        " status = CASE WHEN ? = 1 THEN 'failed' ELSE status END WHERE id = ?",
        (error[:500], int(give_up), mail_id),
    )
