"""Agents: one enrolled collector each, authenticated by a token stored as SHA-256."""

from __future__ import annotations

import sqlite3

import msgspec

from kefal_lite.store.rows import struct


class Agent(msgspec.Struct, frozen=True):
    id: str
    name: str
    hostname: str | None
    status: str
    agent_version: str | None
    created_at: str
    last_seen_at: str | None


class AgentIdentity(msgspec.Struct, frozen=True):
    """What ingest needs to know about the bearer of a token."""

    agent_id: str
    user_id: str


_COLUMNS = "id, name, hostname, status, agent_version, created_at, last_seen_at"


def create(
    conn: sqlite3.Connection, *, user_id: str, agent_id: str, name: str, token_hash: bytes, now: str
) -> Agent:
    conn.execute(
        "INSERT INTO agents (id, user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        (agent_id, user_id, name, token_hash, now),
    )
    return Agent(agent_id, name, None, "active", None, now, None)


def count_active(conn: sqlite3.Connection, user_id: str) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM agents WHERE user_id = ? AND status = 'active'", (user_id,)
    ).fetchone()
    return int(row[0])


def list_for_user(
    conn: sqlite3.Connection, user_id: str, *, limit: int, offset: int
) -> tuple[list[Agent], int]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM agents WHERE user_id = ?"
        " ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
        (user_id, limit, offset),
    ).fetchall()
    total = conn.execute("SELECT COUNT(*) FROM agents WHERE user_id = ?", (user_id,)).fetchone()[0]
    return [struct(Agent, row) for row in rows], int(total)


def get(conn: sqlite3.Connection, user_id: str, agent_id: str) -> Agent | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM agents WHERE user_id = ? AND id = ?", (user_id, agent_id)
    ).fetchone()
    return struct(Agent, row) if row else None


def by_token_hash(conn: sqlite3.Connection, token_hash: bytes) -> AgentIdentity | None:
    """The live agent holding this token; None if unknown, revoked, or its owner is disabled."""
    row = conn.execute(
        "SELECT a.id AS agent_id, a.user_id FROM agents a JOIN users u ON u.id = a.user_id"
        " WHERE a.token_hash = ? AND a.status = 'active' AND u.disabled = 0",
        (token_hash,),
    ).fetchone()
    return struct(AgentIdentity, row) if row else None


def revoke(conn: sqlite3.Connection, user_id: str, agent_id: str, now: str) -> bool:
    """Revoke; False when the agent is not this user's. Revoking twice is harmless."""
    if get(conn, user_id, agent_id) is None:
        return False
    conn.execute(
        "UPDATE agents SET status = 'revoked', revoked_at = COALESCE(revoked_at, ?)"
        " WHERE user_id = ? AND id = ?",
        (now, user_id, agent_id),
    )
    return True


def rotate(conn: sqlite3.Connection, user_id: str, agent_id: str, token_hash: bytes) -> bool:
    """The agent's new token; False when the tenant has no such agent."""
    cur = conn.execute(
        "UPDATE agents SET token_hash = ? WHERE user_id = ? AND id = ?",
        (token_hash, user_id, agent_id),
    )
    return cur.rowcount == 1
