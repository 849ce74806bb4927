"""Login sessions: one row per login; the session JWT carries the row's id (`sid`).

A session is live while it is not revoked, its user is enabled, and the user's token
version is still the one it was issued under: the "end every session" changes (password,
reset, role, disable) bump that version and so end the rows too without touching them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

import msgspec

from kefal_lite.store.rows import struct
from kefal_lite.store.users import User


class Session(msgspec.Struct, frozen=True):
    id: str
    user_id: str
    token_version: int
    created_at: str
    last_seen_at: str
    client: str | None
    user_agent: str | None
    revoked_at: str | None


_COLUMNS = ", ".join(f"s.{f}" for f in Session.__struct_fields__)
_USER_COLUMNS = ", ".join(f"u.{f} AS u_{f}" for f in User.__struct_fields__)
# Live: not revoked, user enabled, issued under the user's current token version.
_LIVE = "s.revoked_at IS NULL AND u.disabled = 0 AND s.token_version = u.token_version"


def create(conn: sqlite3.Connection, *, session_id: str, user_id: str, token_version: int,
           now: str, client: str | None, user_agent: str | None) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO sessions (id, user_id, token_version, created_at, last_seen_at, client,"
        " user_agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (session_id, user_id, token_version, now, now, client, user_agent),
    )


def check(conn: sqlite3.Connection, user_id: str, session_id: str) -> tuple[User, Session] | None:
    """The user and the session, in one indexed read (the cost of every authenticated
    request); None if the session is not this user's. Liveness is the caller's to judge."""
    row = conn.execute(
        f"SELECT {_COLUMNS}, {_USER_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.id = ? AND s.user_id = ?",
        (session_id, user_id),
    ).fetchone()
    if row is None:
        return None
    user = User(**{f: row[f"u_{f}"] for f in User.__struct_fields__})
    return user, struct(Session, row)


def live(conn: sqlite3.Connection, user_id: str, since: str) -> list[Session]:
    """The user's live sessions created after `since` (older ones' tokens have expired),
    most recently used first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id"
        f" WHERE s.user_id = ? AND s.created_at > ? AND {_LIVE}"
        " ORDER BY s.last_seen_at DESC, s.id",
        (user_id, since),
    ).fetchall()
    return [struct(Session, r) for r in rows]


def live_ids(conn: sqlite3.Connection, session_ids: Collection[str]) -> set[str]:
    """Which of these sessions are still live (for the event streams' watcher)."""
    ids = list(session_ids)
    out: set[str] = set()
    for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        rows = conn.execute(
            "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id"
            f" WHERE {_LIVE} AND s.id IN ({', '.join('?' * len(chunk))})",
            chunk,
        ).fetchall()
        out.update(str(r[0]) for r in rows)
    return out


def revoke(conn: sqlite3.Connection, user_id: str, session_id: str, now: str) -> bool:
    """End one of the user's live sessions; False if it is not theirs or already ended."""
    cur = conn.execute(
        "UPDATE sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL"
        " AND token_version = (SELECT token_version FROM users WHERE id = ?)",
        (now, session_id, user_id, user_id),
    )
    return cur.rowcount == 1


def revoke_all(conn: sqlite3.Connection, user_id: str, now: str) -> int:
    cur = conn.execute(
        "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        (now, user_id),
    )
    return cur.rowcount


def touch(conn: sqlite3.Connection, session_id: str, now: str) -> None:
    conn.execute(
        "UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?",
        (now, session_id, now),
    )


def prune(conn: sqlite3.Connection, user_id: str, created_before: str) -> int:
    """Forget the user's sessions whose tokens have expired anyway. Done at each login, so
    the table grows with logins of the last day, not with every login ever."""
    return conn.execute(
        "DELETE FROM sessions WHERE user_id = ? AND created_at < ?", (user_id, created_before)
    ).rowcount
