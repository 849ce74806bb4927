"""Enrollment tokens: enroll agents without a user's password, stored as SHA-256 like
agent tokens. A use is counted in the transaction that creates the agent."""

from __future__ import annotations

import sqlite3

import msgspec

from kefal_lite.store.rows import struct


class EnrollmentToken(msgspec.Struct, frozen=True):
    id: str
    name: str | None
    created_at: str
    expires_at: str
    max_uses: int  # 0: unlimited
    uses: int
    last_used_at: str | None
    revoked_at: str | None

    @property
    def uses_left(self) -> int | None:
        return None if self.max_uses == 0 else max(0, self.max_uses - self.uses)


class TokenHolder(msgspec.Struct, frozen=True):
    """Whose token it is and what state it is in, looked up by its hash."""

    id: str
    org_id: str
    expires_at: str
    max_uses: int
    uses: int
    revoked_at: str | None


_COLUMNS = "id, name, created_at, expires_at, max_uses, uses, last_used_at, revoked_at"


def create(
    conn: sqlite3.Connection,
    *,
    org_id: str,
    token_id: str,
    name: str | None,
    token_hash: bytes,
    now: str,
    expires_at: str,
    max_uses: int,
) -> EnrollmentToken:
    conn.execute(
        "INSERT INTO enrollment_tokens"
        " (id, org_id, name, token_hash, created_at, expires_at, max_uses)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (token_id, org_id, name, token_hash, now, expires_at, max_uses),
    )
    return EnrollmentToken(token_id, name, now, expires_at, max_uses, 0, None, None)


def list_for_user(
    conn: sqlite3.Connection, org_id: str, *, limit: int, offset: int
) -> tuple[list[EnrollmentToken], int]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM enrollment_tokens WHERE org_id = ?"
        " ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
        (org_id, limit, offset),
    ).fetchall()
    (total,) = conn.execute(
        "SELECT COUNT(*) FROM enrollment_tokens WHERE org_id = ?", (org_id,)
    ).fetchone()
    return [struct(EnrollmentToken, row) for row in rows], int(total)


def revoke(conn: sqlite3.Connection, org_id: str, token_id: str, now: str) -> bool:
    """False when the token is not this organization's. Revoking twice keeps the first time."""
    cur = conn.execute(
        "UPDATE enrollment_tokens SET revoked_at = COALESCE(revoked_at, ?)"
        " WHERE org_id = ? AND id = ?",
        (now, org_id, token_id),
    )
    return cur.rowcount == 1


def by_hash(conn: sqlite3.Connection, token_hash: bytes) -> TokenHolder | None:
    row = conn.execute(
        "SELECT id, org_id, expires_at, max_uses, uses, revoked_at FROM enrollment_tokens"
        " WHERE token_hash = ?",
        (token_hash,),
    ).fetchone()
    return struct(TokenHolder, row) if row else None


def use(conn: sqlite3.Connection, token_hash: bytes, now: str) -> TokenHolder | None:
    """Count one use if the token is live (not revoked, not expired, uses left); the
    holder as it was before, or None when nothing was counted. Check and count are one
    statement, and the writer runs one transaction at a time: of two enrollments racing
    for a token's last use, exactly one gets it."""
    row = conn.execute(
        "UPDATE enrollment_tokens SET uses = uses + 1, last_used_at = ?"
        " WHERE token_hash = ? AND revoked_at IS NULL AND expires_at > ?"
        " AND (max_uses = 0 OR uses < max_uses)"
        " RETURNING id, org_id, expires_at, max_uses, uses - 1 AS uses, revoked_at",
        (now, token_hash, now),
    ).fetchone()
    return struct(TokenHolder, row) if row else None
