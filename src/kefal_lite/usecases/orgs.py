"""What people do with organizations: create and rename them, change and remove members,
invite, accept, and make or revoke API keys. Each checks its rule and writes its audit row
in the caller's transaction."""

from __future__ import annotations

import sqlite3

from kefal_lite.errors import BadRequest, Conflict, NotAllowed, NotFound
from kefal_lite.roles import at_least
from kefal_lite.store import audit, orgs, users
from kefal_lite.store.orgs import ApiKey, Invitation, Org
from kefal_lite.usecases.actor import Actor

LAST_OWNER = "an organization needs an owner: make someone else owner first"


def create_org(conn: sqlite3.Connection, actor: Actor, org_id: str, name: str, now: str) -> Org:
    """The creator is its first owner."""
    org = orgs.create(conn, org_id=org_id, name=name, now=now)
    orgs.add_member(conn, org_id, actor.user_id, "owner", now)
    audit.record(conn, _in(actor, org_id).entry(now, "org_created", org_id, name=name))
    return org


def _in(actor: Actor, org_id: str) -> Actor:
    """The same person acting in `org_id` (the path's organization, not the session's)."""
    return Actor(org_id=org_id, user_id=actor.user_id, username=actor.username,
                 client=actor.client, key_name=actor.key_name)  # fmt: skip


def rename_org(conn: sqlite3.Connection, actor: Actor, org_id: str, name: str, now: str) -> Org:
    if not orgs.rename(conn, org_id, name):
        raise NotFound("no such organization")
    audit.record(conn, _in(actor, org_id).entry(now, "org_renamed", org_id, name=name))
    org = orgs.get(conn, org_id)
    assert org is not None
    return org


def delete_org(conn: sqlite3.Connection, actor: Actor, org_id: str, confirm: str,
               paid: bool, now: str) -> dict[str, int]:  # fmt: skip
    """The owner deletes the organization and all it owns. The name typed again guards
    against a slip; a personal organization goes with its account (DELETE /auth/me), and
    a running paid subscription must be cancelled first (nothing would stop the billing)."""
    org = orgs.get(conn, org_id)
    if org is None:
        raise NotFound("no such organization")
    if confirm != org.name:
        raise BadRequest("type the organization's name to confirm")
    if org.personal:
        raise Conflict("your personal organization goes with your account (DELETE /api/v1/auth/me)")
    if paid:
        raise Conflict("cancel the organization's subscription first")
    removed = orgs.delete(conn, org_id)
    audit.record(conn, _in(actor, org_id).entry(now, "org_deleted", org_id, name=org.name,
                                                members=removed.get("memberships", 0)))  # fmt: skip
    return removed


def _member_role(conn: sqlite3.Connection, org_id: str, user_id: str) -> str:
    role = orgs.role_of(conn, org_id, user_id)
    if role is None:
        raise NotFound("no such member")
    return role


def set_role(conn: sqlite3.Connection, actor: Actor, org_id: str, user_id: str, role: str,
             now: str) -> None:  # fmt: skip
    """The last owner cannot be demoted (409): the organization would have no one who
    manages its members and billing."""
    before = _member_role(conn, org_id, user_id)
    if before == "owner" and role != "owner" and orgs.owner_count(conn, org_id) <= 1:
        raise Conflict(LAST_OWNER)
    orgs.set_role(conn, org_id, user_id, role)
    audit.record(conn, _in(actor, org_id).entry(now, "member_role_changed", user_id,
                                                 before=before, role=role))  # fmt: skip


def remove_member(conn: sqlite3.Connection, actor: Actor, org_id: str, user_id: str,
                  now: str) -> None:  # fmt: skip
    """Also how a member leaves. The last owner cannot (409). Their API keys stop working
    with the membership (a key needs its maker to be a member)."""
    role = _member_role(conn, org_id, user_id)
    if role == "owner" and orgs.owner_count(conn, org_id) <= 1:
        raise Conflict(LAST_OWNER)
    orgs.remove_member(conn, org_id, user_id)
    # Revoked, not merely idle: a key that needed only its maker's membership would work
    # again if they rejoined (issue #17, hole 13). Their pending invitations die with
    # their say in the organization (hole 1).
    keys = orgs.revoke_keys_of(conn, org_id, user_id, now)
    invitations = orgs.cancel_invitations_by(conn, org_id, user_id, now)
    audit.record(conn, _in(actor, org_id).entry(now, "member_removed", user_id, role=role,
                                                keys_revoked=keys,
                                                invitations_cancelled=invitations))  # fmt: skip


def invite(conn: sqlite3.Connection, actor: Actor, actor_role: str, invitation: Invitation,
           token_hash: bytes, now: str) -> None:  # fmt: skip
    """No one invites to a role above their own (an admin cannot make an owner)."""
    if not at_least(actor_role, invitation.role):
        raise NotAllowed(f"you cannot invite to a role above your own ({actor_role})")
    orgs.add_invitation(conn, invitation, token_hash)
    audit.record(conn, _in(actor, invitation.org_id).entry(
        now, "member_invited", invitation.id, email=invitation.email, role=invitation.role
    ))  # fmt: skip


INVALID_INVITATION = "this invitation is unknown, already used or expired; ask for a new one"


def accept(conn: sqlite3.Connection, actor: Actor, token_hash: bytes, now: str) -> Invitation:
    """Single use: the invitation is spent in the same transaction as the membership, so a
    refusal (already a member) leaves it usable, and two accepts cannot both succeed."""
    invitation = orgs.take_invitation(conn, token_hash, actor.user_id, now)
    if invitation is None:
        raise BadRequest(INVALID_INVITATION)
    # The inviter's word is only as good as their standing now: removed, disabled, pending
    # deletion or demoted below the invited role, the invitation is dead (issue #17,
    # holes 1 and 3). Raising rolls the take back; it stays dead on every retry.
    inviter = users.get(conn, invitation.invited_by)
    inviter_role = orgs.role_of(conn, invitation.org_id, invitation.invited_by)
    if (inviter is None or inviter.disabled or inviter.delete_after is not None
            or inviter_role is None or not at_least(inviter_role, invitation.role)):  # fmt: skip
        raise BadRequest(INVALID_INVITATION)
    # Bound to the address it was mailed to (hole 10): a forwarded or leaked link does not
    # let another account in.
    me = users.get(conn, actor.user_id)
    if me is None or (me.email or "").casefold() != invitation.email.casefold():
        raise NotAllowed("this invitation was sent to another address; sign in with that"
                         " account, or ask for an invitation to yours")  # fmt: skip
    try:
        orgs.add_member(conn, invitation.org_id, actor.user_id, invitation.role, now)
    except orgs.AlreadyMember:
        raise Conflict("you are already a member of this organization") from None
    audit.record(conn, _in(actor, invitation.org_id).entry(
        now, "invitation_accepted", invitation.id, role=invitation.role
    ))  # fmt: skip
    return invitation


def create_key(conn: sqlite3.Connection, actor: Actor, actor_role: str, key: ApiKey,
               token_hash: bytes, now: str) -> None:  # fmt: skip
    """A key's role is at most its maker's role in the organization."""
    if not at_least(actor_role, key.role):
        raise NotAllowed(f"an API key's role can be at most your own ({actor_role})")
    orgs.add_key(conn, key, token_hash)
    audit.record(conn, actor.entry(now, "api_key_created", key.id, name=key.name, role=key.role))


def revoke_key(conn: sqlite3.Connection, actor: Actor, key_id: str, now: str) -> None:
    entry = actor.entry(now, "api_key_revoked", key_id)
    if not audit.audited(conn, entry, orgs.revoke_key, actor.org_id, key_id, now):
        raise NotFound("no such API key")


def cancel_invitation(conn: sqlite3.Connection, actor: Actor, org_id: str, invitation_id: str,
                      now: str) -> None:  # fmt: skip
    entry = _in(actor, org_id).entry(now, "invitation_cancelled", invitation_id)
    if not audit.audited(conn, entry, orgs.cancel_invitation, org_id, invitation_id, now):
        raise NotFound("no such pending invitation")
