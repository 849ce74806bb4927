"""Account rules: registration, login with MFA, password changes and resets, enrollment.

The API layer translates HTTP to these calls; the store layer runs their SQL.
Passwords are hashed and verified on a worker thread before any write is queued,
so the writer never waits on argon2.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

import msgspec

from kefal_lite import mail, security
from kefal_lite.agent_tokens import AgentTokenCache
from kefal_lite.billing import BillingProvider
from kefal_lite.clock import Clock, iso
from kefal_lite.config import Settings
from kefal_lite.errors import (
    BadRequest,
    Conflict,
    NotAllowed,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from kefal_lite.ratelimit import WindowLimiter, client_key
from kefal_lite.store import agents, audit, orgs, sessions, users
from kefal_lite.store.db import Conn, Database
from kefal_lite.store.users import User
from kefal_lite.usecases import accounts as account_cases
from kefal_lite.usecases import agents as agent_cases
from kefal_lite.usecases import orgs as org_cases
from kefal_lite.usecases.actor import Actor

RESET_TTL = timedelta(minutes=30)
# A deleted account is disabled at once and purged after this, unless its owner logs in.
DELETION_GRACE = timedelta(days=30)
OTP_REQUIRED = "otp required"
TOO_MANY = "too many failed attempts; try again later"
BAD_CREDENTIALS = "invalid username or password"
WRONG_PASSWORD = "the password is wrong"


Username = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
Password = Annotated[
    str, msgspec.Meta(min_length=security.MIN_PASSWORD, max_length=security.MAX_PASSWORD)
]
AnyPassword = Annotated[str, msgspec.Meta(max_length=security.MAX_PASSWORD)]
# Checked for shape only; whether it is deliverable is the mail server's call.
Email = Annotated[str, msgspec.Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class NewUser(msgspec.Struct):
    username: Username
    password: Password
    email: Email | None = None
    invitation: Annotated[str, msgspec.Meta(max_length=256)] | None = None  # a mailed token


class MfaSetup(msgspec.Struct):
    secret: str
    otpauth_uri: str


class Enrollment(msgspec.Struct):
    token: str
    agent_id: str


class LoginResult(msgspec.Struct, frozen=True):
    token: str
    # set when a recovery code stood in for the OTP: how many unused codes are left
    recovery_codes_remaining: int | None = None


class Accounts:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Clock,
        box: security.SecretBox,
        agent_tokens: AgentTokenCache,
        issue_session: Callable[[User, str, str], str],
        on_mail_queued: Callable[[], None],
        billing: BillingProvider,
        sessions_ended: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self._db = db
        self._clock = clock
        self._box = box
        self._agent_tokens = agent_tokens
        self._issue_session = issue_session
        self._on_mail_queued = on_mail_queued
        # Asks whether a plan allows one more agent.
        self.billing = billing
        # Told when every session of a user ended, so their live event streams end too.
        self.sessions_ended = sessions_ended
        # 5 failed credential checks per 30 s per (client, username), login and enroll alike.
        self.credential_failures = WindowLimiter(5, 30, clock)
        # Code and password checks behind a session (MFA disable, password and email change)
        # and every second-factor code (login, enroll): a stolen session or password must not
        # become an unlimited guessing oracle. 5 per 30 s per user, whatever the client.
        self.session_failures = WindowLimiter(5, 30, clock)
        # the seed's "/forgot-password 3/hour", per client address
        self.reset_requests = WindowLimiter(3, 3600, clock)
        self.password_checks = 0

    def _now(self) -> str:
        return iso(self._clock.now())

    def _audit(
        self,
        user_id: str | None,
        actor: str,
        action: str,
        *,
        target: str | None = None,
        client: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> audit.Entry:
        return audit.Entry(self._now(), user_id, actor, action, target, client, detail)

    # --- users ---------------------------------------------------------------------

    async def register(
        self, username: str, password: str, email: str | None, client: str | None = None,
        invitation: str | None = None,
    ) -> User:
        """With `invitation` (a token from an invitation mail), registration is open even
        when signup is not, and the new account joins the inviting organization in the
        same transaction; an unknown, used or expired token registers no one (400)."""
        password_hash = await security.hash_password_async(password)
        user_id = str(uuid.uuid4())
        now = self._now()
        digest = security.token_hash(invitation) if invitation is not None else None

        def write(conn: Conn) -> User:
            signup_open = self._settings.auth_signup
            if digest is not None:
                found = orgs.invitation_by_token(conn, digest)
                if found is None or found.accepted_at is not None or found.expires_at <= now:
                    raise BadRequest(org_cases.INVALID_INVITATION)
                if not signup_open:
                    # With signup closed, only the server admin's invitations make accounts:
                    # any user owns an organization and could otherwise open signup to
                    # anyone (issue #17, hole 12).
                    inviter = users.get(conn, found.invited_by)
                    if inviter is None or inviter.role != "admin":
                        raise NotAllowed("signup is closed: ask the server's operator for an"
                                         " account, then accept the invitation signed in")
                signup_open = True
                # The account gets the address the invitation was sent to (hole 10): the
                # invitation is bound to it, whatever the form said.
                address: str | None = found.email
            else:
                address = email
            user = account_cases.register(conn, signup_open=signup_open, user_id=user_id,
                                          username=username, password_hash=password_hash,
                                          email=address, now=now)  # fmt: skip
            audit.record(conn, self._audit(user_id, username, "user_registered", client=client))
            if digest is not None:
                actor = Actor(org_id=user_id, user_id=user_id, username=username, client=client)
                org_cases.accept(conn, actor, digest, now)
            return user

        return await self._db.write(write)

    async def create_user(
        self, admin: User, username: str, password: str, *, role: account_cases.Role = "user",
        email: str | None = None,
    ) -> User:  # fmt: skip
        password_hash = await security.hash_password_async(password)
        return await self._db.write(
            account_cases.add_user, Actor(org_id="", user_id=admin.id, username=admin.username),
            user_id=str(uuid.uuid4()),
            username=username, password_hash=password_hash, role=role, email=email,
            now=self._now(),
        )  # fmt: skip

    async def _check_credentials(
        self,
        username: str,
        password: str,
        client: str,
        otp: str | None = None,
        *,
        failed: str = "login_failed",
        recovery: bool = False,
        restore: bool = False,
    ) -> tuple[User, int | None]:
        """The user if username, password (and OTP when MFA is on) are right, and, when a
        recovery code stood in for the OTP (`recovery`: logins only), how many are left.

        Unknown user and wrong password take the same time and give the same 401. With
        `restore` (logins), an account its owner deleted less than 30 days ago counts as
        enabled: the login cancels the deletion.
        """
        remaining: int | None = None
        key = f"{client_key(client)}|{username.casefold()}"
        async with self.credential_failures.attempt(key, TOO_MANY) as slot:
            user = await self._db.read(users.by_username, username)
            ok = await self._verify_password(user.password_hash if user else None, password)
            restorable = (
                restore and user is not None and user.delete_after is not None
                and user.delete_after > self._now()
            )  # fmt: skip
            if user is None or not ok or (user.disabled and not restorable):
                reason = "unknown user" if user is None else "disabled" if ok else "wrong password"
                entry = self._audit(user.id if user else None, username[:64], failed,
                                    client=client, detail={"reason": reason})  # fmt: skip
                await self._db.write(audit.record, entry)
                raise Unauthorized(BAD_CREDENTIALS)
            if user.mfa_enabled:
                if not otp:  # no guess: the client learns that a code is needed
                    raise Unauthorized(OTP_REQUIRED)
                # The code is a credential of the account, not of the client: keyed by
                # client alone, every new address (an IPv6 host has 2^64) got 5 more guesses.
                async with self.session_failures.attempt(user.id, TOO_MANY) as code_slot:
                    ok = await self._use_otp(user, otp)
                    if not ok and recovery:
                        remaining = await self._use_recovery_code(user, otp, client)
                        ok = remaining is not None
                    if not ok:
                        entry = self._audit(user.id, user.username, failed, client=client,
                                            detail={"reason": "otp"})  # fmt: skip
                        await self._db.write(audit.record, entry)
                        raise Unauthorized(OTP_REQUIRED)
                    code_slot.succeeded()
            slot.succeeded()
        if security.needs_rehash(user.password_hash):
            new_hash = await security.hash_password_async(password)
            await self._db.write(users.rehash, user.id, user.password_hash, new_hash)
        return user, remaining

    async def _verify_password(self, password_hash: str | None, password: str) -> bool:
        # Counted so tests can see how many argon2 verifications an attack really got.
        self.password_checks += 1
        return await security.verify_password_async(password_hash, password)

    async def _use_otp(self, user: User, otp: str) -> bool:
        if not user.mfa_secret:
            return False
        secret = self._box.open(user.mfa_secret, user.id)
        step = security.totp_match(secret, otp, self._clock.now().timestamp())
        # A code is good once: a step at or before the last used one is a replay.
        return step is not None and await self._db.write(users.mfa_use_step, user.id, step)

    async def login(self, username: str, password: str, otp: str | None, client: str,
                    user_agent: str | None = None) -> LoginResult:  # fmt: skip
        """A new session row, and its JWT."""
        user, remaining = await self._check_credentials(username, password, client, otp,
                                                        recovery=True, restore=True)  # fmt: skip
        session_id = str(uuid.uuid4())
        now = self._now()
        expired_before = iso(self._clock.now() - security.SESSION_TTL)

        def write(conn: Conn) -> User:
            # The token version as of this transaction: a password change racing the login
            # must not leave a session row under the old version looking live.
            account_cases.cancel_deletion(conn, user, now, client)
            current = users.get(conn, user.id)
            if current is None or current.disabled:  # purged or disabled since the check
                raise Unauthorized(BAD_CREDENTIALS)
            sessions.create(conn, session_id=session_id, user_id=user.id,
                            token_version=current.token_version, now=now, client=client,
                            user_agent=user_agent)  # fmt: skip
            sessions.prune(conn, user.id, expired_before)
            users.touch(conn, user.id, now)
            audit.record(conn, self._audit(user.id, user.username, "login", target=session_id,
                                           client=client))  # fmt: skip
            return current

        current = await self._db.write(write)
        # A login starts in the personal organization (its id is the user's) while the user
        # is still its member; else in another of theirs; else none, which leaves the
        # account routes only (issue #17, hole 2: a co-owner may have removed them).
        mine = [o.id for o in await self._db.read(orgs.of_user, user.id)]
        start = user.id if user.id in mine or not mine else mine[0]
        return LoginResult(self._issue_session(current, session_id, start), remaining)

    async def change_password(self, user: User, current: str, new: str) -> None:
        async with self.session_failures.attempt(user.id, TOO_MANY) as slot:
            if not await self._verify_password(user.password_hash, current):
                raise Unauthorized("the current password is wrong")
            slot.succeeded()
        new_hash = await security.hash_password_async(new)
        entry = self._audit(user.id, user.username, "password_changed")
        await self._db.write(audit.audited, entry, users.set_password, user.id, new_hash)
        self.sessions_ended(user.id)

    async def delete_account(self, user: User, password: str, otp: str | None) -> str:
        """Disable the account now (every session ends) and purge it after 30 days unless
        its owner logs in before; returns when the purge is due."""
        async with self.session_failures.attempt(user.id, TOO_MANY) as slot:
            if not await self._verify_password(user.password_hash, password):
                raise BadRequest(WRONG_PASSWORD)  # 400, as above
            if user.mfa_enabled and not (otp and await self._use_otp(user, otp)):
                raise BadRequest("the code does not match" if otp else OTP_REQUIRED)
            slot.succeeded()
        # Deleting the rows would not stop the provider from charging the card.
        personal = await self._db.read(orgs.get, user.id)
        status = await self.billing.status(personal) if personal else {"state": "none"}
        if self.billing.name != "noop" and status["state"] in ("active", "past_due"):
            raise Conflict("the subscription is still running: cancel it under Billing first,"
                           " then delete the account")  # fmt: skip
        now = self._clock.now()
        purge_after = iso(now + DELETION_GRACE)
        me = Actor(org_id="", user_id=user.id, username=user.username)
        await self._db.write(account_cases.request_deletion, me,
                             iso(now), purge_after)  # fmt: skip
        self.sessions_ended(user.id)
        return purge_after

    async def purge_due(self) -> int:
        """Purge the accounts whose deletion is due, one transaction each (a big tenant's
        history must not hold the writer for all of them). Returns how many went."""
        now = self._now()
        purged = 0
        for user_id in await self._db.read(users.due_for_purge, now):
            gone = await self._db.write(account_cases.purge, user_id, now)
            if gone is not None:
                purged += 1
                for org_id in gone:  # their agents' tokens fail from the next request
                    self._agent_tokens.invalidate_org(org_id)
        return purged

    async def update_email(self, user: User, email: str, password: str) -> User:
        async with self.session_failures.attempt(user.id, TOO_MANY) as slot:
            if not await self._verify_password(user.password_hash, password):
                raise Unauthorized("the password is wrong")
            slot.succeeded()
        entry = self._audit(user.id, user.username, "email_changed")
        await self._db.write(audit.audited, entry, account_cases.set_email, user.id, email)
        updated = await self._db.read(users.get, user.id)
        assert updated is not None
        return updated

    # --- password reset ------------------------------------------------------------

    async def forgot_password(self, email: str, client: str) -> None:
        wait = self.reset_requests.retry_after(client_key(client))
        if wait is not None:
            raise TooManyRequests(wait, "too many reset requests; try again later")
        self.reset_requests.add(client_key(client))
        token = security.new_token()
        now = self._clock.now()
        link = f"{self._settings.base_url}/#/reset?token={token}"
        settings = self._settings

        def write(conn: Conn) -> bool:
            # The same write whether or not the address is known, so timing says nothing.
            user = users.by_email(conn, email)
            if user is None or user.disabled:
                return False
            users.add_reset(
                conn, user.id, security.token_hash(token), iso(now), iso(now + RESET_TTL)
            )
            body = (
                f"Hello {user.username},\n\nsomeone asked to reset your kefal-lite password.\n"
                f"Open this link within 30 minutes to choose a new one:\n\n{link}\n\n"
                "If it was not you, ignore this mail; your password stays as it is.\n"
            )
            mail.queue(
                conn,
                settings,
                recipient=email,
                subject="Reset your kefal-lite password",
                body=body,
                now=iso(now),
            )
            entry = self._audit(user.id, user.username, "password_reset_requested", client=client)
            audit.record(conn, entry)
            return True

        if await self._db.write(write):
            self._on_mail_queued()

    async def reset_password(self, token: str, new_password: str) -> None:
        password_hash = await security.hash_password_async(new_password)

        def write(conn: Conn) -> str | None:
            user_id = users.consume_reset(conn, security.token_hash(token), self._now())
            if user_id is None:
                return None
            users.set_password(conn, user_id, password_hash)  # also ends every session
            audit.record(conn, self._audit(user_id, "reset link", "password_reset"))
            return user_id

        user_id = await self._db.write(write)
        if user_id is None:
            raise BadRequest("the reset link is invalid, already used or expired")
        self.sessions_ended(user_id)

    # --- MFA -----------------------------------------------------------------------

    async def mfa_setup(self, user: User) -> MfaSetup:
        if user.mfa_enabled:
            raise Conflict("MFA is already enabled; disable it first to enrol a new device")
        secret = security.new_totp_secret()
        await self._db.write(users.mfa_set_pending, user.id, self._box.seal(secret, user.id))
        return MfaSetup(secret=secret, otpauth_uri=security.totp_uri(secret, user.username))

    async def mfa_enable(self, user: User, otp: str) -> list[str]:
        """MFA on; returns the 10 recovery codes, shown this once (stored hashed)."""
        if user.mfa_enabled:
            raise Conflict("MFA is already enabled")
        if not user.mfa_pending:
            raise Conflict("call /api/v1/auth/mfa/setup first")
        secret = self._box.open(user.mfa_pending, user.id)
        step = security.totp_match(secret, otp, self._clock.now().timestamp())
        if step is None:
            raise BadRequest("the code does not match; check the device's clock and try again")
        codes = [security.new_recovery_code() for _ in range(security.RECOVERY_CODES)]
        pending = user.mfa_pending
        now = self._now()

        def write(conn: Conn) -> None:
            users.mfa_enable(conn, user.id, pending, step)
            users.recovery_set(conn, user.id, _code_hashes(codes), now)
            audit.record(conn, self._audit(user.id, user.username, "mfa_enabled",
                                           detail={"recovery_codes": len(codes)}))  # fmt: skip

        await self._db.write(write)
        return codes

    async def regenerate_recovery_codes(self, user: User, password: str, otp: str) -> list[str]:
        """New codes for old (the old ones stop working), behind password and OTP."""
        if not user.mfa_enabled:
            raise Conflict("MFA is not enabled")
        async with self.session_failures.attempt(user.id, TOO_MANY) as slot:
            # 400, not 401: the session is fine (a 401 would log the dashboard out)
            if not await self._verify_password(user.password_hash, password):
                raise BadRequest(WRONG_PASSWORD)
            if not await self._use_otp(user, otp):
                raise BadRequest("the code does not match")
            slot.succeeded()
        codes = [security.new_recovery_code() for _ in range(security.RECOVERY_CODES)]
        now = self._now()
        entry = self._audit(user.id, user.username, "mfa_recovery_codes_regenerated",
                            detail={"recovery_codes": len(codes)})  # fmt: skip
        await self._db.write(audit.audited, entry, users.recovery_set, user.id,
                             _code_hashes(codes), now)  # fmt: skip
        return codes

    async def recovery_codes_remaining(self, user: User) -> int:
        return await self._db.read(users.recovery_remaining, user.id)

    async def _use_recovery_code(self, user: User, code: str, client: str) -> int | None:
        """Spend one of the user's recovery codes; how many are left, or None if `code` is
        none of the unused ones. Every stored hash is compared, each in constant time."""
        digest = security.recovery_code_hash(code)
        if digest is None:
            return None
        now = self._now()

        def write(conn: Conn) -> int | None:
            match = False
            for stored in users.recovery_unused(conn, user.id):
                match |= security.constant_time_equal(stored, digest)
            if not match or not users.recovery_use(conn, user.id, digest, now):
                return None
            left = users.recovery_remaining(conn, user.id)
            audit.record(conn, self._audit(user.id, user.username, "mfa_recovery_code_used",
                                           client=client, detail={"remaining": left}))  # fmt: skip
            return left

        return await self._db.write(write)

    async def mfa_disable(self, user: User, otp: str) -> None:
        if not user.mfa_enabled:
            raise Conflict("MFA is not enabled")
        async with self.session_failures.attempt(user.id, TOO_MANY) as slot:
            if not await self._use_otp(user, otp):
                raise BadRequest("the code does not match")
            slot.succeeded()
        entry = self._audit(user.id, user.username, "mfa_disabled")
        await self._db.write(audit.audited, entry, users.mfa_disable, user.id)

    # --- agents --------------------------------------------------------------------

    async def enroll(
        self, username: str, password: str, name: str | None, client: str, otp: str | None = None
    ) -> Enrollment:
        # An agent token is a credential of the account: with MFA on, minting one takes the
        # second factor too, exactly as a login does (same 401s, same limit).
        user, _ = await self._check_credentials(username, password, client, otp,
                                                failed="enroll_failed")  # fmt: skip
        # Username and password enroll into the account's personal organization (its id is
        # the user's); an organization's other agents enroll with its enrollment tokens.
        personal = await self._db.read(orgs.get, user.id)
        limit = await self.billing.agent_limit(personal) if personal else None
        token = security.new_token(security.AGENT_TOKEN_PREFIX)
        agent_id = str(uuid.uuid4())
        actor = Actor(org_id=user.id, user_id=user.id, username=user.username, client=client)
        await self._db.write(
            agent_cases.add_agent, actor, agent_id=agent_id,
            name=name, token_hash=security.token_hash(token), limit=limit, now=self._now(),
        )  # fmt: skip
        return Enrollment(token=token, agent_id=agent_id)

    async def revoke_agent(self, actor: Actor, agent_id: str) -> None:
        entry = actor.entry(self._now(), "agent_revoked", agent_id)
        if not await self._db.write(
            audit.audited, entry, agents.revoke, actor.org_id, agent_id, self._now()
        ):
            raise NotFound("no such agent")
        self._agent_tokens.invalidate_agent(agent_id)

    async def rotate_agent(self, actor: Actor, agent_id: str) -> Enrollment:
        token = security.new_token(security.AGENT_TOKEN_PREFIX)
        entry = actor.entry(self._now(), "agent_token_rotated", agent_id)
        digest = security.token_hash(token)
        rotated = await self._db.write(
            audit.audited, entry, agent_cases.rotate_token, actor.org_id, agent_id, digest
        )
        if not rotated:
            raise NotFound("no such agent")
        self._agent_tokens.invalidate_agent(agent_id)
        return Enrollment(token=token, agent_id=agent_id)


def _code_hashes(codes: list[str]) -> list[bytes]:
    hashes = [security.recovery_code_hash(c) for c in codes]
    return [h for h in hashes if h is not None]
