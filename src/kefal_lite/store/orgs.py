"""Organizations, their memberships, invitations and API keys.

An organization is the tenant: every tenant table's `org_id` names one. A user's personal
organization has the user's id (the migration from per-user tenants relies on it).
"""

from __future__ import annotations

import sqlite3

import msgspec

from kefal_lite.store import users
from kefal_lite.store.rows import struct


class AlreadyMember(Exception):
    """The membership exists (the table's key says so); the use case says what it means."""


class Org(msgspec.Struct, frozen=True):
    id: str
    name: str
    personal: bool
    created_at: str


class MyOrg(msgspec.Struct, frozen=True):
    id: str
    name: str
    personal: bool
    created_at: str
    role: str  # the caller's role in it


class Member(msgspec.Struct, frozen=True):
    user_id: str
    username: str
    email: str | None
    role: str
    created_at: str  # when they joined


class Invitation(msgspec.Struct, frozen=True):
    id: str
    org_id: str
    email: str
    role: str
    invited_by: str
    created_at: str
    expires_at: str
    accepted_at: str | None
    accepted_by: str | None


class ApiKey(msgspec.Struct, frozen=True):
    id: str
    org_id: str
    created_by: str
    name: str
    role: str
    prefix: str  # the first characters of the key, to tell keys apart; never enough to use
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None


_ORG = ", ".join(Org.__struct_fields__)
_INVITATION = ", ".join(Invitation.__struct_fields__)
_KEY = ", ".join(ApiKey.__struct_fields__)


# --- organizations -------------------------------------------------------------------


def create(conn: sqlite3.Connection, *, org_id: str, name: str, now: str,
           personal: bool = False) -> Org:  # fmt: skip
    conn.execute(
        "INSERT INTO orgs (id, name, personal, created_at) VALUES (?, ?, ?, ?)",
        (org_id, name, int(personal), now),
    )
    return Org(org_id, name, personal, now)


def create_personal(conn: sqlite3.Connection, user_id: str, username: str, now: str) -> None:
    """Every account gets one, with its id, and the account as owner."""
    create(conn, org_id=user_id, name=username, now=now, personal=True)
    add_member(conn, user_id, user_id, "owner", now)


def get(conn: sqlite3.Connection, org_id: str) -> Org | None:
    row = conn.execute(f"SELECT {_ORG} FROM orgs WHERE id = ?", (org_id,)).fetchone()
    return struct(Org, row, personal=bool(row["personal"])) if row else None


def trial_start(conn: sqlite3.Connection, org_id: str) -> str | None:
    """When the organization's free trial began: the trial is the creating account's, not
    each organization's (issue #17, hole 8), so it is the earliest of the organization's
    creation and its creator's personal organization's (their account's first). The
    creator is the one the `org_created` audit row names."""
    row = conn.execute(
        "SELECT MIN(o.created_at) FROM orgs o WHERE o.id = ? OR o.id IN"
        " (SELECT a.user_id FROM audit a WHERE a.action = 'org_created' AND a.org_id = ?"
        "  AND a.target = ?)",
        (org_id, org_id, org_id),
    ).fetchone()
    return str(row[0]) if row and row[0] else None


def rename(conn: sqlite3.Connection, org_id: str, name: str) -> bool:
    return conn.execute("UPDATE orgs SET name = ? WHERE id = ?", (name, org_id)).rowcount == 1


def of_user(conn: sqlite3.Connection, user_id: str) -> list[MyOrg]:
    rows = conn.execute(
        "SELECT o.id, o.name, o.personal, o.created_at, m.role FROM memberships m"
        " JOIN orgs o ON o.id = m.org_id WHERE m.user_id = ?"
        " ORDER BY o.personal DESC, o.name, o.id",
        (user_id,),
    ).fetchall()
    return [struct(MyOrg, r, personal=bool(r["personal"])) for r in rows]


# --- memberships ---------------------------------------------------------------------


def add_member(conn: sqlite3.Connection, org_id: str, user_id: str, role: str,
               now: str) -> None:  # fmt: skip
    try:
        conn.execute(
            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES (?, ?, ?, ?)",
            (org_id, user_id, role, now),
        )
    except sqlite3.IntegrityError:
        raise AlreadyMember() from None


def role_of(conn: sqlite3.Connection, org_id: str, user_id: str) -> str | None:
    row = conn.execute(
        "SELECT role FROM memberships WHERE org_id = ? AND user_id = ?", (org_id, user_id)
    ).fetchone()
    return str(row[0]) if row else None


def members(conn: sqlite3.Connection, org_id: str) -> list[Member]:
    rows = conn.execute(
        "SELECT m.user_id, u.username, u.email, m.role, m.created_at FROM memberships m"
        " JOIN users u ON u.id = m.user_id WHERE m.org_id = ? ORDER BY m.created_at, u.username",
        (org_id,),
    ).fetchall()
    return [struct(Member, r) for r in rows]


def owner_count(conn: sqlite3.Connection, org_id: str) -> int:
    """Owners who can act: a disabled account or one waiting to be purged manages nothing
    (issue #17, hole 7)."""
    row = conn.execute(
        "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id"
        " WHERE m.org_id = ? AND m.role = 'owner' AND u.disabled = 0"
        " AND u.delete_after IS NULL",
        (org_id,),
    ).fetchone()
    return int(row[0])


def solely_owned_shared(conn: sqlite3.Connection, user_id: str) -> list[Org]:
    """Organizations where `user_id` is the only active owner and someone else is a member:
    they would be left with no one to manage them if the account went."""
    rows = conn.execute(
        f"SELECT {', '.join('o.' + f for f in Org.__struct_fields__)} FROM orgs o"
        " JOIN memberships me ON me.org_id = o.id AND me.user_id = ? AND me.role = 'owner'"
        " WHERE NOT EXISTS (SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id"
        "   WHERE m.org_id = o.id AND m.user_id != ? AND m.role = 'owner'"
        "   AND u.disabled = 0 AND u.delete_after IS NULL)"
        " AND EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = o.id AND m.user_id != ?)"
        " ORDER BY o.name, o.id",
        (user_id, user_id, user_id),
    ).fetchall()
    return [struct(Org, r) for r in rows]


def set_role(conn: sqlite3.Connection, org_id: str, user_id: str, role: str) -> bool:
    cur = conn.execute(
        "UPDATE memberships SET role = ? WHERE org_id = ? AND user_id = ?", (role, org_id, user_id)
    )
    return cur.rowcount == 1


def remove_member(conn: sqlite3.Connection, org_id: str, user_id: str) -> bool:
    cur = conn.execute(
        "DELETE FROM memberships WHERE org_id = ? AND user_id = ?", (org_id, user_id)
    )
    return cur.rowcount == 1


# --- invitations ---------------------------------------------------------------------


def cancel_invitations_by(conn: sqlite3.Connection, org_id: str | None, user_id: str,
                          now: str) -> int:  # fmt: skip
    """End the pending invitations `user_id` issued (in `org_id`, or everywhere when None)
    by expiring them now: the row stays for the record, the token no longer opens."""
    sql = ("UPDATE invitations SET expires_at = ? WHERE invited_by = ? AND accepted_at IS NULL"
           " AND expires_at > ?")  # fmt: skip
    params: list[str] = [now, user_id, now]
    if org_id is not None:
        sql += " AND org_id = ?"
        params.append(org_id)
    return conn.execute(sql, params).rowcount


def cancel_invitation(conn: sqlite3.Connection, org_id: str, invitation_id: str,
                      now: str) -> bool:  # fmt: skip
    """False when the invitation is not this organization's or no longer pending."""
    cur = conn.execute(
        "UPDATE invitations SET expires_at = ? WHERE org_id = ? AND id = ?"
        " AND accepted_at IS NULL AND expires_at > ?",
        (now, org_id, invitation_id, now),
    )
    return cur.rowcount == 1


def add_invitation(conn: sqlite3.Connection, inv: Invitation, token_hash: bytes) -> None:
    conn.execute(
        "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at,"
        " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (inv.id, inv.org_id, inv.email, inv.role, token_hash, inv.invited_by, inv.created_at,
         inv.expires_at),
    )  # fmt: skip


def take_invitation(conn: sqlite3.Connection, token_hash: bytes, user_id: str,
                    now: str) -> Invitation | None:  # fmt: skip
    """Mark the invitation used by `user_id` and return it; None when the token is unknown,
    used or expired. One UPDATE, so two racing accepts cannot both succeed."""
    row = conn.execute(
        "UPDATE invitations SET accepted_at = ?, accepted_by = ?"
        " WHERE token_hash = ? AND accepted_at IS NULL AND expires_at > ?"
        f" RETURNING {_INVITATION}",
        (now, user_id, token_hash, now),
    ).fetchone()
    return struct(Invitation, row) if row else None


def invitation_by_token(conn: sqlite3.Connection, token_hash: bytes) -> Invitation | None:
    row = conn.execute(
        f"SELECT {_INVITATION} FROM invitations WHERE token_hash = ?", (token_hash,)
    ).fetchone()
    return struct(Invitation, row) if row else None


def invitations(conn: sqlite3.Connection, org_id: str) -> list[Invitation]:
    rows = conn.execute(
        f"SELECT {_INVITATION} FROM invitations WHERE org_id = ? ORDER BY created_at DESC, id",
        (org_id,),
    ).fetchall()
    return [struct(Invitation, r) for r in rows]


# --- API keys ------------------------------------------------------------------------


def add_key(conn: sqlite3.Connection, key: ApiKey, token_hash: bytes) -> None:
    conn.execute(
        "INSERT INTO api_keys (id, org_id, created_by, name, role, prefix, token_hash,"
        " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (key.id, key.org_id, key.created_by, key.name, key.role, key.prefix, token_hash,
         key.created_at, key.expires_at),
    )  # fmt: skip


def keys(conn: sqlite3.Connection, org_id: str) -> list[ApiKey]:
    rows = conn.execute(
        f"SELECT {_KEY} FROM api_keys WHERE org_id = ? ORDER BY created_at DESC, id", (org_id,)
    ).fetchall()
    return [struct(ApiKey, r) for r in rows]


def get_key(conn: sqlite3.Connection, org_id: str, key_id: str) -> ApiKey | None:
    row = conn.execute(
        f"SELECT {_KEY} FROM api_keys WHERE org_id = ? AND id = ?", (org_id, key_id)
    ).fetchone()
    return struct(ApiKey, row) if row else None


def revoke_key(conn: sqlite3.Connection, org_id: str, key_id: str, now: str) -> bool:
    """False when the key is not this organization's; revoking twice keeps the first time."""
    if get_key(conn, org_id, key_id) is None:
        return False
    conn.execute(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE org_id = ? AND id = ?",
        (now, org_id, key_id),
    )
    return True


def revoke_keys_of(conn: sqlite3.Connection, org_id: str, user_id: str, now: str) -> int:
    """Revoke every live key `user_id` made in `org_id` (they leave or are removed)."""
    return conn.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE org_id = ? AND created_by = ?"
        " AND revoked_at IS NULL",
        (now, org_id, user_id),
    ).rowcount


def live_key(conn: sqlite3.Connection, token_hash: bytes, now: str) -> ApiKey | None:
    """The usable key with this hash: not revoked, not expired, and its maker still a
    member of its organization (a key does not outlive its maker's membership)."""
    row = conn.execute(
        f"SELECT {', '.join('k.' + f for f in ApiKey.__struct_fields__)} FROM api_keys k"
        " JOIN memberships m ON m.org_id = k.org_id AND m.user_id = k.created_by"
        " WHERE k.token_hash = ? AND k.revoked_at IS NULL"
        " AND (k.expires_at IS NULL OR k.expires_at > ?)",
        (token_hash, now),
    ).fetchone()
    return struct(ApiKey, row) if row else None


def touch_key(conn: sqlite3.Connection, key_id: str, now: str) -> None:
    conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key_id))


def has_enabled_member(conn: sqlite3.Connection, org_id: str) -> bool:
    """Whether anyone can still act for the organization (its tokens stop when no one can)."""
    row = conn.execute(
        "SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id"
        " WHERE m.org_id = ? AND u.disabled = 0 LIMIT 1",
        (org_id,),
    ).fetchone()
    return row is not None


def session_principal(conn: sqlite3.Connection, user_id: str,
                      org_id: str) -> tuple[users.User, str] | None:  # fmt: skip
    """The user and their role in `org_id`; None when either is gone."""
    user = users.get(conn, user_id)
    role = role_of(conn, org_id, user_id) if user else None
    return (user, role) if user and role else None


def key_principal(conn: sqlite3.Connection, token_hash: bytes,
                  now: str) -> tuple[ApiKey, users.User, str] | None:  # fmt: skip
    """A live key, the account that made it, and that account's current role."""
    key = live_key(conn, token_hash, now)
    if key is None:
        return None
    found = session_principal(conn, key.created_by, key.org_id)
    return (key, *found) if found else None


# What an organization holds, children before parents (foreign keys are on). An account
# purge (store/users.py) runs these for the personal organization, then the person's rows.
_BY_HOST = "host_id IN (SELECT id FROM hosts WHERE org_id = ?)"
ORG_DATA: tuple[str, ...] = (
    "DELETE FROM incident_events WHERE incident_id IN (SELECT id FROM incidents"
    " WHERE org_id = ?)",
    "DELETE FROM incidents WHERE org_id = ?",
    "DELETE FROM changes WHERE org_id = ?",
    "DELETE FROM snapshot_segments WHERE org_id = ?",
    "DELETE FROM snapshots WHERE org_id = ?",
    f"DELETE FROM silent_timers WHERE {_BY_HOST}",
    f"DELETE FROM host_notices WHERE {_BY_HOST}",
    "DELETE FROM hosts WHERE org_id = ?",
    "DELETE FROM agents WHERE org_id = ?",
    "DELETE FROM enrollment_tokens WHERE org_id = ?",
    "DELETE FROM suppressions WHERE org_id = ?",
    "DELETE FROM channels WHERE org_id = ?",
)
# The organization itself once its data is gone; the audit trail stays (no foreign key).
_ORG_ITSELF = (
    "DELETE FROM invariants WHERE org_id = ?",
    "DELETE FROM subscriptions WHERE org_id = ?",
    "DELETE FROM api_keys WHERE org_id = ?",
    "DELETE FROM invitations WHERE org_id = ?",
    "DELETE FROM memberships WHERE org_id = ?",
    "DELETE FROM orgs WHERE id = ?",
)


def delete(conn: sqlite3.Connection, org_id: str) -> dict[str, int]:
    """Delete the organization and everything it owns; rows removed per table."""
    removed: dict[str, int] = {}
    for statement in ORG_DATA + _ORG_ITSELF:
        table = statement.split()[2]
        removed[table] = removed.get(table, 0) + conn.execute(statement, (org_id,)).rowcount
    return removed
