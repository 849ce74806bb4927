"""Users, their sessions' token version, MFA state and password resets."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

import msgspec

from kefal_lite.store import orgs, stats
from kefal_lite.store.rows import struct


class Taken(Exception):
    """The username or email is already another account's (the table's unique keys say
    so, with their own case rules); the use case decides what that means."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} taken")
        self.field = field


class User(msgspec.Struct, frozen=True):
    id: str
    username: str
    email: str | None
    password_hash: str
    role: str
    disabled: bool
    token_version: int
    mfa_enabled: bool
    mfa_secret: str | None
    mfa_pending: str | None
    mfa_last_step: int
    plan: str
    trial_ends_at: str | None
    created_at: str
    last_active_at: str | None
    # set while the account waits to be purged (self-service deletion); a login before then
    # cancels it
    delete_after: str | None = None


_COLUMNS = ", ".join(User.__struct_fields__)


def _user(row: sqlite3.Row | None) -> User | None:
    if row is None:
        return None
    return struct(User, row)


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])


def get(conn: sqlite3.Connection, user_id: str) -> User | None:
    return _user(conn.execute(f"SELECT {_COLUMNS} FROM users WHERE id = ?", (user_id,)).fetchone())


def by_username(conn: sqlite3.Connection, username: str) -> User | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM users WHERE username = ?", (username,)).fetchone()
    return _user(row)


def by_email(conn: sqlite3.Connection, email: str) -> User | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM users WHERE email = ?", (email,)).fetchone()
    return _user(row)


def list_all(conn: sqlite3.Connection) -> list[User]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM users ORDER BY created_at, username").fetchall()
    return [struct(User, row) for row in rows]


def create(
    conn: sqlite3.Connection,
    *,
    user_id: str,
    username: str,
    password_hash: str,
    role: str,
    now: str,
    email: str | None = None,
    plan: str = "self-hosted",
    trial_ends_at: str | None = None,
) -> User:
    try:
        conn.execute(
            "INSERT INTO users (id, username, email, password_hash, role, plan, trial_ends_at,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (user_id, username, email, password_hash, role, plan, trial_ends_at, now),
        )
    except sqlite3.IntegrityError as exc:
        raise Taken("email" if "email" in str(exc) else "username") from None
    stats.bump(conn, now[:10], "new_users")
    orgs.create_personal(conn, user_id, username, now)
    user = get(conn, user_id)
    assert user is not None
    return user


def set_password(conn: sqlite3.Connection, user_id: str, password_hash: str) -> None:
    """New password; every existing session ends (token version bump)."""
    conn.execute(
        "UPDATE users SET password_hash = ?, token_version = token_version + 1 WHERE id = ?",
        (password_hash, user_id),
    )


def rehash(conn: sqlite3.Connection, user_id: str, old_hash: str, new_hash: str) -> None:
    """Same password, stronger parameters; sessions stay. Skipped if the hash moved on."""
    conn.execute(
        "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
        (new_hash, user_id, old_hash),
    )


def set_email(conn: sqlite3.Connection, user_id: str, email: str) -> None:
    try:
        conn.execute("UPDATE users SET email = ? WHERE id = ?", (email, user_id))
    except sqlite3.IntegrityError:
        raise Taken("email") from None


def set_role(conn: sqlite3.Connection, user_id: str, role: str) -> None:
    conn.execute(
        "UPDATE users SET role = ?, token_version = token_version + 1 WHERE id = ?",
        (role, user_id),
    )


def set_disabled(conn: sqlite3.Connection, user_id: str, disabled: bool) -> None:
    """An admin's or the operator's word: it also cancels a pending self-deletion (enabled:
    the account stays; disabled: it stays disabled, and a login no longer re-enables it)."""
    conn.execute(
        "UPDATE users SET disabled = ?, delete_after = NULL, token_version = token_version + 1"
        " WHERE id = ?",
        (int(disabled), user_id),
    )


# --- self-service deletion ---------------------------------------------------------


def request_deletion(conn: sqlite3.Connection, user_id: str, delete_after: str) -> None:
    """Disabled now (every session ends), purged once `delete_after` has passed."""
    conn.execute(
        "UPDATE users SET disabled = 1, delete_after = ?, token_version = token_version + 1"
        " WHERE id = ?",
        (delete_after, user_id),
    )


def cancel_deletion(conn: sqlite3.Connection, user_id: str) -> bool:
    cur = conn.execute(
        "UPDATE users SET disabled = 0, delete_after = NULL WHERE id = ?"
        " AND delete_after IS NOT NULL",
        (user_id,),
    )
    return cur.rowcount == 1


def due_for_purge(conn: sqlite3.Connection, now: str) -> list[str]:
    rows = conn.execute(
        "SELECT id FROM users WHERE disabled = 1 AND delete_after IS NOT NULL"
        " AND delete_after <= ? ORDER BY delete_after",
        (now,),
    ).fetchall()
    return [str(r[0]) for r in rows]


# What a purge removes, children before parents (foreign keys are on): the person's
# personal organization (its id is theirs) with everything in it, their memberships and
# the API keys they made elsewhere; shared organizations keep their data. The audit trail
# stays.
_PURGE = (
    # their contributed rules: the tenant's, like the rest (other tenants' incidents raised
    # by one keep its name and author)
    "DELETE FROM invariants WHERE contributed_by = ?",
    "DELETE FROM subscriptions WHERE org_id = ?",
    # the personal organization (its id is the user's) and the person's place in others
    "DELETE FROM api_keys WHERE org_id = ?",
    "DELETE FROM api_keys WHERE created_by = ?",
    "DELETE FROM invitations WHERE org_id = ?",
    "DELETE FROM memberships WHERE org_id = ?",
    "DELETE FROM memberships WHERE user_id = ?",
    "DELETE FROM orgs WHERE id = ?",
    "DELETE FROM password_resets WHERE user_id = ?",
    "DELETE FROM sessions WHERE user_id = ?",
    "DELETE FROM recovery_codes WHERE user_id = ?",
    "DELETE FROM users WHERE id = ?",
)


def purge(conn: sqlite3.Connection, user_id: str) -> dict[str, int]:
    """Delete the user and what only they own; rows removed per table."""
    removed: dict[str, int] = {}
    for statement in orgs.ORG_DATA + _PURGE:  # the personal organization's data first
        table = statement.split()[2]
        removed[table] = removed.get(table, 0) + conn.execute(statement, (user_id,)).rowcount
    return removed


def revoke_sessions(conn: sqlite3.Connection, user_id: str) -> None:
    conn.execute("UPDATE users SET token_version = token_version + 1 WHERE id = ?", (user_id,))


def session_versions(conn: sqlite3.Connection, user_ids: Collection[str]) -> dict[str, int]:
    """The token version of each of these users that is enabled (others are left out)."""
    ids = list(user_ids)
    out: dict[str, int] = {}
    for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        rows = conn.execute(
            "SELECT id, token_version FROM users WHERE disabled = 0 AND id IN ("
            + ", ".join("?" * len(chunk))
            + ")",
            chunk,
        ).fetchall()
        out.update({str(r[0]): int(r[1]) for r in rows})
    return out


def touch(conn: sqlite3.Connection, user_id: str, now: str) -> None:
    conn.execute("UPDATE users SET last_active_at = ? WHERE id = ?", (now, user_id))


# --- MFA ---------------------------------------------------------------------------


def mfa_set_pending(conn: sqlite3.Connection, user_id: str, sealed_secret: str) -> None:
    conn.execute("UPDATE users SET mfa_pending = ? WHERE id = ?", (sealed_secret, user_id))


def mfa_enable(conn: sqlite3.Connection, user_id: str, sealed_secret: str, step: int) -> None:
    conn.execute(
        "UPDATE users SET mfa_enabled = 1, mfa_secret = ?, mfa_pending = NULL,"
        " mfa_last_step = ? WHERE id = ?",
        (sealed_secret, step, user_id),
    )


def mfa_disable(conn: sqlite3.Connection, user_id: str) -> None:
    """MFA off; its recovery codes go with it."""
    conn.execute(
        "UPDATE users SET mfa_enabled = 0, mfa_secret = NULL, mfa_pending = NULL,"
        " mfa_last_step = 0 WHERE id = ?",
        (user_id,),
    )
    conn.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))


def recovery_set(
    conn: sqlite3.Connection, user_id: str, code_hashes: Collection[bytes], now: str
) -> None:
    """Replace the user's recovery codes (the old ones stop working)."""
    conn.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
    conn.executemany(
        "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)",
        [(user_id, h, now) for h in code_hashes],
    )


def recovery_unused(conn: sqlite3.Connection, user_id: str) -> list[bytes]:
    rows = conn.execute(
        "SELECT code_hash FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
        (user_id,),
    ).fetchall()
    return [bytes(r[0]) for r in rows]


def recovery_use(conn: sqlite3.Connection, user_id: str, code_hash: bytes, now: str) -> bool:
    """Spend a code; False if it was already spent (each code is good once)."""
    cur = conn.execute(
        "UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ?"
        " AND used_at IS NULL",
        (now, user_id, code_hash),
    )
    return cur.rowcount == 1


def recovery_remaining(conn: sqlite3.Connection, user_id: str) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL", (user_id,)
    ).fetchone()
    return int(row[0])


def mfa_use_step(conn: sqlite3.Connection, user_id: str, step: int) -> bool:
    """Record a TOTP time step as used; False if it (or a later one) already was (replay)."""
    cur = conn.execute(
        "UPDATE users SET mfa_last_step = ? WHERE id = ? AND mfa_last_step < ?",
        (step, user_id, step),
    )
    return cur.rowcount == 1


# --- password resets ---------------------------------------------------------------


def add_reset(
    conn: sqlite3.Connection, user_id: str, token_hash: bytes, now: str, expires_at: str
) -> None:
    conn.execute(
        "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at)"
        " VALUES (?, ?, ?, ?)",
        (token_hash, user_id, now, expires_at),
    )


def consume_reset(conn: sqlite3.Connection, token_hash: bytes, now: str) -> str | None:
    """Mark a live reset token used and return its user; None if unknown, used or expired."""
    row = conn.execute(
        "SELECT user_id FROM password_resets"
        " WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
        (token_hash, now),
    ).fetchone()
    if row is None:
        return None
    conn.execute("UPDATE password_resets SET used_at = ? WHERE token_hash = ?", (now, token_hash))
    # A reset spends every other outstanding link of that user too.
    conn.execute(
        "UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL",
        (now, row[0]),
    )
    return str(row[0])


class UserSummary(msgspec.Struct, frozen=True):
    user: User
    agents: int


def search(
    conn: sqlite3.Connection, q: str | None, *, limit: int, offset: int
) -> tuple[list[UserSummary], int]:
    """All accounts (admin view), optionally those whose username or email contains `q`."""
    where, params = "", []
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where = " WHERE username LIKE ? ESCAPE '\\' OR email LIKE ? ESCAPE '\\'"
        params = [like, like]
    total = int(conn.execute("SELECT COUNT(*) FROM users" + where, params).fetchone()[0])
    rows = conn.execute(
        f"SELECT {_COLUMNS}, (SELECT COUNT(*) FROM agents a WHERE a.org_id = users.id"
        " AND a.status = 'active') FROM users"
        + where
        + " ORDER BY created_at, id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [UserSummary(User(*r[:-1]), int(r[-1])) for r in rows], total
