"""Enrollment tokens: create, list, revoke, and enroll an agent with one.

A token (`kfe_…`) lets a host enroll without anyone's password, so it can go into a
pasted install line. It is shown once and stored as SHA-256. Enrolling checks it,
counts the use, checks the plan's agent limit, creates the agent and writes the audit
row in one write transaction: two hosts racing for a single-use token get one agent.
Failures count against the same window as password enrollments, per client address.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import msgspec

from kefal_lite import security
from kefal_lite.accounts import TOO_MANY, Accounts, Enrollment
from kefal_lite.clock import Clock, iso, parse_iso
from kefal_lite.errors import Forbidden, NotAllowed, NotFound, Unauthorized
from kefal_lite.store import audit, enrollment, orgs
from kefal_lite.store.db import Conn, Database
from kefal_lite.store.enrollment import EnrollmentToken
from kefal_lite.usecases import agents as agent_cases
from kefal_lite.usecases.actor import Actor

TOKEN_PREFIX = "kfe_"
NEW_TOKEN_HINT = "create a new one on the server's Agents page"
UNKNOWN = f"unknown enrollment token; {NEW_TOKEN_HINT}"


class NewToken(msgspec.Struct):
    token: str
    record: EnrollmentToken


class _Refused(Exception):
    """Raised inside the write transaction (so nothing of it is kept), with why."""

    def __init__(self, error: Unauthorized | Forbidden, reason: str) -> None:
        super().__init__(error.detail)
        self.error = error
        self.reason = reason


class EnrollmentTokens:
    def __init__(self, db: Database, clock: Clock, accounts: Accounts) -> None:
        self._db = db
        self._clock = clock
        self._accounts = accounts

    def _now(self) -> str:
        return iso(self._clock.now())

    async def create(
        self, actor: Actor, name: str | None, expires_in_hours: int, max_uses: int
    ) -> NewToken:
        token = security.new_token(TOKEN_PREFIX)
        token_id = str(uuid.uuid4())
        now = self._clock.now()
        entry = actor.entry(iso(now), "enrollment_token_created", token_id, max_uses=max_uses,
                            expires_in_hours=expires_in_hours)  # fmt: skip
        record = await self._db.write(
            audit.audited,
            entry,
            enrollment.create,
            org_id=actor.org_id,
            token_id=token_id,
            name=name,
            token_hash=security.token_hash(token),
            now=iso(now),
            expires_at=iso(now + timedelta(hours=expires_in_hours)),
            max_uses=max_uses,
        )
        return NewToken(token=token, record=record)

    async def list(
        self, org_id: str, *, limit: int, offset: int
    ) -> tuple[list[EnrollmentToken], int]:
        return await self._db.read(enrollment.list_for_user, org_id, limit=limit, offset=offset)

    async def revoke(self, actor: Actor, token_id: str) -> None:
        entry = actor.entry(self._now(), "enrollment_token_revoked", token_id)
        if not await self._db.write(
            audit.audited, entry, enrollment.revoke, actor.org_id, token_id, self._now()
        ):
            raise NotFound("no such enrollment token")

    async def enroll(self, token: str, name: str | None, client: str) -> Enrollment:
        digest = security.token_hash(token)
        # Keyed by client only: the token is the whole credential, there is no username.
        key = f"{client}|enrollment-token"
        async with self._accounts.credential_failures.attempt(key, TOO_MANY) as slot:
            holder = await self._db.read(enrollment.by_hash, digest)
            org = await self._db.read(orgs.get, holder.org_id) if holder else None
            limit = await self._accounts.billing.agent_limit(org) if org else None
            agent_id = str(uuid.uuid4())
            agent_token = security.new_token(security.AGENT_TOKEN_PREFIX)
            now = self._now()

            def write(conn: Conn) -> None:
                used = enrollment.use(conn, digest, now)
                if used is None:
                    raise self._why_not(enrollment.by_hash(conn, digest), now)
                if not orgs.has_enabled_member(conn, used.org_id):
                    raise _Refused(Unauthorized(UNKNOWN), "owner disabled")
                # the token acts for its organization; who made it is in the token's own row
                actor = Actor(org_id=used.org_id, user_id="", username="enrollment-token",
                              client=client)  # fmt: skip
                try:
                    agent_cases.add_agent(
                        conn, actor, agent_id=agent_id,
                        name=name, token_hash=security.token_hash(agent_token), limit=limit,
                        now=now, enrollment_token=used.id,
                    )  # fmt: skip
                except NotAllowed as exc:
                    raise _Refused(exc, "agent limit") from None

            try:
                await self._db.write(write)
            except _Refused as refused:
                entry = audit.Entry(now, None, "enrollment-token", "enroll_failed",
                                    holder.id if holder else None, client,
                                    {"reason": refused.reason},
                                    holder.org_id if holder else None)  # fmt: skip
                await self._db.write(audit.record, entry)
                if isinstance(refused.error, Forbidden):
                    slot.succeeded()  # the plan's limit is not a guess at a token
                raise refused.error from None
            slot.succeeded()
        return Enrollment(token=agent_token, agent_id=agent_id)

    @staticmethod
    def _why_not(holder: enrollment.TokenHolder | None, now: str) -> _Refused:
        """The message the install script prints for a token that cannot be used."""
        if holder is None:
            return _Refused(Unauthorized(UNKNOWN), "unknown token")
        if holder.revoked_at is not None:
            return _Refused(
                Unauthorized(f"this enrollment token was revoked; {NEW_TOKEN_HINT}"), "revoked"
            )
        if parse_iso(holder.expires_at) <= parse_iso(now):
            return _Refused(
                Unauthorized(
                    f"this enrollment token expired at {holder.expires_at}; {NEW_TOKEN_HINT}"
                ),
                "expired",
            )
        uses = "once" if holder.max_uses == 1 else f"{holder.max_uses} times"
        return _Refused(
            Unauthorized(
                f"this enrollment token was already used {uses}, its limit; {NEW_TOKEN_HINT}"
                " (or one with max_uses 0 for a fleet)"
            ),
            "used up",
        )
