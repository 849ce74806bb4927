"""The audit log: append-only, one row per action, written in the same transaction as the
action. Never a password, token or reset link: callers pass names and ids only."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import msgspec

from kefal_lite.store.rows import struct

P = ParamSpec("P")
T = TypeVar("T")
_json = msgspec.json.Encoder()


class Entry(msgspec.Struct, frozen=True):
    at: str
    user_id: str | None  # whose trail it belongs to (None: a failed login for no such user)
    actor: str
    action: str
    target: str | None = None
    client: str | None = None
    detail: dict[str, Any] | None = None
    org_id: str | None = None  # the organization acted in (None: an account's own action)


class Row(msgspec.Struct, frozen=True):
    id: int
    at: str
    user_id: str | None
    actor: str
    action: str
    target: str | None
    client: str | None
    detail: dict[str, Any] | None
    org_id: str | None = None


def record(conn: sqlite3.Connection, entry: Entry) -> None:
    conn.execute(
        "INSERT INTO audit (at, user_id, actor, action, target, client, detail, org_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (entry.at, entry.user_id, entry.actor[:200], entry.action, entry.target, entry.client,
         _json.encode(entry.detail).decode() if entry.detail else None, entry.org_id),
    )  # fmt: skip


def audited(
    conn: sqlite3.Connection,
    entry: Entry,
    fn: Callable[Concatenate[sqlite3.Connection, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run a store function and record its audit row in the same transaction, only if it
    did what it names. A refusal is an exception (nothing after it runs) or a result of
    `False` ("no such row of yours": revoking another tenant's agent): neither leaves a row,
    or the trail would show an attacker's failed probe as the owner's action."""
    result = fn(conn, *args, **kwargs)
    if result is not False:
        record(conn, entry)
    return result


def query(
    conn: sqlite3.Connection,
    *,
    user_id: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    offset: int,
    org_id: str | None = None,
) -> tuple[list[Row], int]:
    """With `org_id`: the organization's trail, and `user_id`'s own account actions (logins,
    password changes) that belong to no organization. With only `user_id`: that user's."""
    where: list[str] = []
    params: list[Any] = []
    if org_id is not None:
        where.append("(org_id = ? OR (org_id IS NULL AND user_id = ?))")
        params += [org_id, user_id]
    elif user_id is not None:
        where.append("user_id = ?")
        params.append(user_id)
    if action:
        where.append("action = ?")
        params.append(action)
    if since:
        where.append("at >= ?")
        params.append(since)
    if until:
        where.append("at < ?")
        params.append(until)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    total = int(conn.execute("SELECT COUNT(*) FROM audit" + clause, params).fetchone()[0])
    rows = conn.execute(
        "SELECT id, at, user_id, actor, action, target, client, detail, org_id FROM audit"
        + clause
        + " ORDER BY at DESC, id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    out = [
        struct(Row, r, detail=msgspec.json.decode(r["detail"]) if r["detail"] else None)
        for r in rows
    ]
    return out, total
