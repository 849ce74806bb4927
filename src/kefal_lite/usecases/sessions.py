"""What a signed-in person does to their own sessions: end one, end them all.

Each is one write transaction with its audit row; the caller then tells the event bus, so
the live streams opened from the ended sessions close at once."""

from __future__ import annotations

import sqlite3

from kefal_lite.errors import NotFound
from kefal_lite.store import audit, sessions, users
from kefal_lite.usecases.actor import Actor


def end(conn: sqlite3.Connection, actor: Actor, session_id: str, now: str, *,
        action: str = "session_revoked") -> None:  # fmt: skip
    """End one of the actor's live sessions. Another person's id is "no such session"."""
    if not sessions.revoke(conn, actor.user_id, session_id, now):
        raise NotFound("no such session")
    audit.record(conn, actor.entry(now, action, session_id))


def end_all(conn: sqlite3.Connection, actor: Actor, now: str) -> int:
    """End every session of the actor; the token version moves too, so a token from before
    sessions had rows (or any other) ends as well. Returns how many sessions were live."""
    ended = sessions.revoke_all(conn, actor.user_id, now)
    users.revoke_sessions(conn, actor.user_id)
    audit.record(conn, actor.entry(now, "logout_all", sessions=ended))
    return ended
