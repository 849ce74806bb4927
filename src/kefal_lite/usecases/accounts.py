"""What an admin (in the API) or the operator (at the CLI, on the database file) does to
accounts: add one, set its password, its role, disable or enable it. One function each,
used by both: the rule and the audit row are the same whichever door was used.

The audit row: an admin's action is in the admin's trail (`admin_*`); the operator has no
account, so theirs goes into the trail of the account changed (`cli_*`, actor "cli").

Below those, the life of a self-deleted account: requested by its owner, cancelled by
their next login, purged by the maintenance timer (actor "retention")."""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

from kefal_lite.errors import Conflict, Forbidden, NotFound
from kefal_lite.store import audit, orgs, sessions, users
from kefal_lite.store.users import Taken, User
from kefal_lite.usecases.actor import Actor

Role = Literal["admin", "user"]
OPERATOR = Actor(org_id="", user_id="", username="cli")


def _record(conn: sqlite3.Connection, actor: Actor, now: str, action: str, target: User,
            **detail: Any) -> None:  # fmt: skip
    if actor == OPERATOR:
        entry = audit.Entry(now, target.id, OPERATOR.username, f"cli_{action}", target.username,
                            None, detail or None)  # fmt: skip
    else:
        entry = actor.entry(now, f"admin_{action}", target.username, **detail)
    audit.record(conn, entry)


def find(conn: sqlite3.Connection, username: str) -> User:
    user = users.by_username(conn, username)
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


def _create(conn: sqlite3.Connection, **fields: Any) -> User:
    try:
        return users.create(conn, **fields)
    except Taken as exc:
        raise Conflict(f"that {exc.field} is already taken") from None


def add_user(conn: sqlite3.Connection, actor: Actor, *, user_id: str, username: str,
             password_hash: str, role: Role, email: str | None, now: str) -> User:  # fmt: skip
    """The password is hashed by the caller (off the writer: argon2 is slow on purpose)."""
    user = _create(conn, user_id=user_id, username=username, password_hash=password_hash,
                   role=role, email=email, now=now)  # fmt: skip
    _record(conn, actor, now, "user_created", user, role=role)
    return user


def register(conn: sqlite3.Connection, *, signup_open: bool, user_id: str, username: str,
             password_hash: str, now: str, email: str | None = None) -> User:  # fmt: skip
    """Self-registration: the first user becomes admin; later ones only if signup is open.

    Decided inside the write transaction, so two racing first registrations cannot
    both become admin."""
    first = users.count(conn) == 0
    if not first and not signup_open:
        raise Forbidden("registration is closed on this server; ask an admin for an account")
    return _create(conn, user_id=user_id, username=username, password_hash=password_hash,
                   role="admin" if first else "user", now=now, email=email)  # fmt: skip


def set_email(conn: sqlite3.Connection, user_id: str, email: str) -> None:
    """The account's own change (its audit row is the caller's, in this transaction)."""
    try:
        users.set_email(conn, user_id, email)
    except Taken:
        raise Conflict("that email is already used by another account") from None


def set_password(conn: sqlite3.Connection, actor: Actor, username: str, password_hash: str,
                 now: str) -> User:  # fmt: skip
    """Every session of the account ends."""
    user = find(conn, username)
    users.set_password(conn, user.id, password_hash)
    _record(conn, actor, now, "password_set", user)
    return user


def set_role(conn: sqlite3.Connection, actor: Actor, username: str, role: Role,
             now: str) -> User:  # fmt: skip
    user = find(conn, username)
    users.set_role(conn, user.id, role)
    _record(conn, actor, now, "role_set", user, role=role)
    return user


def set_disabled(conn: sqlite3.Connection, actor: Actor, username: str, disabled: bool,
                 now: str) -> User:  # fmt: skip
    """A disabled account's sessions end and its agents' snapshots are refused."""
    user = find(conn, username)
    users.set_disabled(conn, user.id, disabled)
    _record(conn, actor, now, "user_disabled" if disabled else "user_enabled", user)
    return user


def reset_mfa(conn: sqlite3.Connection, actor: Actor, username: str, now: str) -> User:
    """For a person who lost their authenticator and their recovery codes: MFA off, the
    codes gone, every session ended (whoever holds one may be who took the device)."""
    user = find(conn, username)
    users.mfa_disable(conn, user.id)
    sessions.revoke_all(conn, user.id, now)
    users.revoke_sessions(conn, user.id)
    _record(conn, actor, now, "mfa_reset", user, was_enabled=bool(user.mfa_enabled))
    return user


def request_deletion(conn: sqlite3.Connection, actor: Actor, now: str, purge_after: str) -> None:
    """The person deletes their own account: disabled at once, every session ended, purged
    after `purge_after` unless they log in before (which cancels it). Refused (409) while
    they are the only active owner of an organization others belong to: the purge would
    leave it with no one to manage it (issue #17, hole 7)."""
    stranded = orgs.solely_owned_shared(conn, actor.user_id)
    if stranded:
        names = ", ".join(repr(o.name) for o in stranded)
        raise Conflict(f"you are the only owner of {names}, which others belong to:"
                       " make someone else owner first")  # fmt: skip
    users.request_deletion(conn, actor.user_id, purge_after)
    sessions.revoke_all(conn, actor.user_id, now)
    audit.record(conn, actor.entry(now, "account_deletion_requested", purge_after=purge_after))


def cancel_deletion(conn: sqlite3.Connection, user: User, now: str, client: str | None) -> bool:
    """A login before the purge: the account is enabled again and stays."""
    if not users.cancel_deletion(conn, user.id):
        return False
    audit.record(conn, audit.Entry(now, user.id, user.username, "account_deletion_cancelled",
                                   None, client, None))  # fmt: skip
    return True


def purge(conn: sqlite3.Connection, user_id: str, now: str) -> list[str] | None:
    """Delete an account whose deletion is due, and the data only it owns; its audit rows
    stay (the actor's name is in each). None if it is no longer due (logged back in);
    otherwise the organizations that went with it."""
    user = users.get(conn, user_id)
    if user is None or not user.disabled or not user.delete_after or user.delete_after > now:
        return None
    # their pending invitations die with them, in every organization (issue #17)
    orgs.cancel_invitations_by(conn, None, user_id, now)
    # an organization they made and were alone in would be left with no one to manage it
    alone = [o.id for o in orgs.of_user(conn, user_id)
             if not o.personal and len(orgs.members(conn, o.id)) == 1]  # fmt: skip
    for org_id in alone:
        orgs.delete(conn, org_id)
    removed = users.purge(conn, user_id)
    audit.record(conn, audit.Entry(now, user_id, "retention", "account_purged", user.username,
                                   None, {k: v for k, v in removed.items() if v}))  # fmt: skip
    return [user_id, *alone]  # the personal organization's id is the user's
