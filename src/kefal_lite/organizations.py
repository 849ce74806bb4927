"""Organizations for the API: the calls behind /api/v1/orgs and /api/v1/api-keys, and the
lookup that turns a `kfk_` key into the request's user and access."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from kefal_lite import mail, security
from kefal_lite.clock import Clock, iso
from kefal_lite.config import Settings
from kefal_lite.errors import BadRequest, NotFound, TooManyRequests
from kefal_lite.ids import new_id
from kefal_lite.ratelimit import WindowLimiter
from kefal_lite.roles import Access, weaker
from kefal_lite.store import orgs
from kefal_lite.store.db import Conn, Database
from kefal_lite.store.orgs import ApiKey, Invitation, Member, MyOrg, Org
from kefal_lite.store.users import User
from kefal_lite.usecases import orgs as org_cases
from kefal_lite.usecases.actor import Actor

API_KEY_PREFIX = "kfk_"
INVITATION_TTL = timedelta(days=7)
INVITES_PER_HOUR = 20  # per organization and per inviter
MAIL_NAME_CHARS = 40


def _mail_name(name: str) -> str:
    """The organization's name as mail shows it: its choice of words reaches any address,
    so printable characters only and short (no phishing paragraph in a subject line)."""
    plain = "".join(ch if ch.isprintable() else " " for ch in name).strip()
    return plain if len(plain) <= MAIL_NAME_CHARS else plain[: MAIL_NAME_CHARS - 1] + "…"
# last_used_at is written at most this often per key: a script polling every second must
# not turn each of its reads into a write.
TOUCH_EVERY = timedelta(minutes=1)


class Organizations:
    def __init__(self, settings: Settings, db: Database, clock: Clock,
                 issue_session: Callable[[User, str, str], str],
                 on_mail_queued: Callable[[], None],
                 membership_ended: Callable[[str, str], None] = lambda u, o: None,
                 ) -> None:  # fmt: skip
        self._settings = settings
        self._db = db
        self._clock = clock
        self._issue_session = issue_session
        self._on_mail_queued = on_mail_queued
        # Told (user id, org id) when a membership ends, so its live event streams end too.
        self._membership_ended = membership_ended
        # Invitation mail goes to any address the inviter types: capped per organization
        # and per inviter, or one account makes the server a spam relay (issue #17, hole 11).
        self.invitations_per_org = WindowLimiter(INVITES_PER_HOUR, 3600, clock)
        self.invitations_per_inviter = WindowLimiter(INVITES_PER_HOUR, 3600, clock)

    def _now(self) -> str:
        return iso(self._clock.now())

    async def mine(self, user_id: str) -> list[MyOrg]:
        return await self._db.read(orgs.of_user, user_id)

    async def get(self, org_id: str) -> Org:
        org = await self._db.read(orgs.get, org_id)
        if org is None:
            raise NotFound("no such organization")
        return org

    async def create(self, actor: Actor, name: str) -> Org:
        return await self._db.write(org_cases.create_org, actor, new_id(), name, self._now())

    async def rename(self, actor: Actor, org_id: str, name: str) -> Org:
        return await self._db.write(org_cases.rename_org, actor, org_id, name, self._now())

    async def delete(self, actor: Actor, org_id: str, confirm: str, paid: bool) -> None:
        members = [m.user_id for m in await self.members(org_id)]
        await self._db.write(org_cases.delete_org, actor, org_id, confirm, paid, self._now())
        for user_id in members:  # their live event streams for it end now
            self._membership_ended(user_id, org_id)

    async def members(self, org_id: str) -> list[Member]:
        return await self._db.read(orgs.members, org_id)

    async def set_role(self, actor: Actor, org_id: str, user_id: str, role: str) -> Member:
        await self._db.write(org_cases.set_role, actor, org_id, user_id, role, self._now())
        return await self._member(org_id, user_id)

    async def _member(self, org_id: str, user_id: str) -> Member:
        found = [m for m in await self.members(org_id) if m.user_id == user_id]
        if not found:
            raise NotFound("no such member")
        return found[0]

    async def remove(self, actor: Actor, org_id: str, user_id: str) -> None:
        await self._db.write(org_cases.remove_member, actor, org_id, user_id, self._now())
        self._membership_ended(user_id, org_id)

    async def role_in(self, access: Access, user_id: str, org_id: str) -> str:
        """The caller's role in `org_id` (the guard has checked they are a member)."""
        if org_id == access.org_id:
            return access.role
        return await self._db.read(orgs.role_of, org_id, user_id) or "viewer"

    async def switch(self, user: User, session_id: str, org_id: str) -> str:
        """A token for the same session (same row: revoking it ends both), bound to another
        organization of the user's."""
        if await self._db.read(orgs.role_of, org_id, user.id) is None:
            raise NotFound("no such organization")
        return self._issue_session(user, session_id, org_id)

    # --- invitations -----------------------------------------------------------------

    async def invite(self, actor: Actor, actor_role: str, org_id: str, email: str,
                     role: str) -> Invitation:  # fmt: skip
        """The link goes by mail (kept in the outbox when no SMTP server is configured);
        only the token's hash is stored."""
        for limiter, key in ((self.invitations_per_org, org_id),
                             (self.invitations_per_inviter, actor.user_id)):  # fmt: skip
            wait = limiter.retry_after(key)
            if wait is not None:
                raise TooManyRequests(wait, "too many invitations this hour; try again later")
        self.invitations_per_org.add(org_id)
        self.invitations_per_inviter.add(actor.user_id)
        token = security.new_token()
        now = self._clock.now()
        invitation = Invitation(
            id=new_id(), org_id=org_id, email=email, role=role, invited_by=actor.user_id,
            created_at=iso(now), expires_at=iso(now + INVITATION_TTL), accepted_at=None,
            accepted_by=None,
        )  # fmt: skip
        link = f"{self._settings.base_url}/#/invite?token={token}"
        settings = self._settings

        def write(conn: Conn) -> None:
            org_cases.invite(conn, actor, actor_role, invitation, security.token_hash(token),
                             iso(now))  # fmt: skip
            org = orgs.get(conn, org_id)
            name = _mail_name(org.name if org else org_id)
            mail.queue(
                conn, settings, recipient=email,
                subject=f"You are invited to {name!r} on kefal-lite",
                body=(
                    f"Hello,\n\n{actor.username} invites you to the organization {name!r} on"
                    f" kefal-lite as {role}.\nOpen this link within 7 days to accept (sign in"
                    f" or create an account):\n\n{link}\n\nIf you did not expect it, ignore"
                    " this mail.\n"
                ),
                now=iso(now),
            )  # fmt: skip

        await self._db.write(write)
        self._on_mail_queued()
        return invitation

    async def invitations(self, org_id: str) -> list[Invitation]:
        return await self._db.read(orgs.invitations, org_id)

    async def cancel_invitation(self, actor: Actor, org_id: str, invitation_id: str) -> None:
        await self._db.write(org_cases.cancel_invitation, actor, org_id, invitation_id,
                             self._now())  # fmt: skip

    async def accept(self, actor: Actor, token: str) -> MyOrg:
        invitation = await self._db.write(
            org_cases.accept, actor, security.token_hash(token), self._now()
        )
        return next(o for o in await self.mine(actor.user_id) if o.id == invitation.org_id)

    # --- API keys --------------------------------------------------------------------

    async def keys(self, org_id: str) -> list[ApiKey]:
        return await self._db.read(orgs.keys, org_id)

    async def create_key(self, actor: Actor, actor_role: str, name: str, role: str,
                         expires_at: datetime | None) -> tuple[ApiKey, str]:  # fmt: skip
        """The key itself is returned once; only its SHA-256 is kept."""
        now = self._clock.now()
        if expires_at is not None and expires_at.tzinfo is None:
            # a naive time cannot be compared with the clock; guessing its zone could move
            # the expiry by hours, so the caller says it (issue #17, hole 15)
            raise BadRequest("expires_at needs a timezone offset (e.g. Z or +00:00)")
        if expires_at is not None and expires_at <= now:
            raise BadRequest("expires_at is in the past")
        token = security.new_token(API_KEY_PREFIX)
        key = ApiKey(
            id=new_id(), org_id=actor.org_id, created_by=actor.user_id, name=name, role=role,
            prefix=token[:12], created_at=iso(now),
            expires_at=iso(expires_at) if expires_at else None, last_used_at=None,
            revoked_at=None,
        )  # fmt: skip
        await self._db.write(org_cases.create_key, actor, actor_role, key,
                             security.token_hash(token), iso(now))  # fmt: skip
        return key, token

    async def revoke_key(self, actor: Actor, key_id: str) -> None:
        await self._db.write(org_cases.revoke_key, actor, key_id, self._now())

    async def key_principal(self, token: str) -> tuple[User, Access] | None:
        """The user a live key acts for and its access; None for an unknown, revoked or
        expired key, or when its maker is disabled or no longer a member."""
        now = self._clock.now()
        found = await self._db.read(orgs.key_principal, security.token_hash(token), iso(now))
        if found is None:
            return None
        key, user, maker_role = found
        if user.disabled:
            return None
        if key.last_used_at is None or key.last_used_at < iso(now - TOUCH_EVERY):
            await self._db.write(orgs.touch_key, key.id, iso(now))
        access = Access(key.org_id, weaker(key.role, maker_role), key.id, key.name)
        return user, access
