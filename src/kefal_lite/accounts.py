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
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from kefal_lite.ratelimit import WindowLimiter, client_key
from kefal_lite.store import agents, audit, users
from kefal_lite.store.db import Conn, Database
from kefal_lite.store.users import User
from kefal_lite.usecases import accounts as account_cases
from kefal_lite.usecases import agents as agent_cases
from kefal_lite.usecases.actor import Actor

RESET_TTL = timedelta(minutes=30)
OTP_REQUIRED = "otp required"
TOO_MANY = "too many failed attempts; try again later"
BAD_CREDENTIALS = "invalid username or password"


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


class MfaSetup(msgspec.Struct):
    secret: str
    otpauth_uri: str


class Enrollment(msgspec.Struct):
    token: str
    agent_id: str


class Accounts:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Clock,
        box: security.SecretBox,
        agent_tokens: AgentTokenCache,
        issue_session: Callable[[User], str],
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
        self, username: str, password: str, email: str | None, client: str | None = None
    ) -> User:
        password_hash = await security.hash_password_async(password)
        user_id = str(uuid.uuid4())
        return await self._db.write(
            audit.audited,
            self._audit(user_id, username, "user_registered", client=client),
            account_cases.register,
            signup_open=self._settings.auth_signup,
            user_id=user_id,
            username=username,
            password_hash=password_hash,
            email=email,
            now=self._now(),
        )

    async def create_user(
        self, admin: User, username: str, password: str, *, role: account_cases.Role = "user",
        email: str | None = None,
    ) -> User:  # fmt: skip
        password_hash = await security.hash_password_async(password)
        return await self._db.write(
            account_cases.add_user, Actor(admin.id, admin.username), user_id=str(uuid.uuid4()),
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
    ) -> User:
        """The user if username, password (and OTP when MFA is on) are right.

        Unknown user and wrong password take the same time and give the same 401.
        """
        key = f"{client_key(client)}|{username.casefold()}"
        async with self.credential_failures.attempt(key, TOO_MANY) as slot:
            user = await self._db.read(users.by_username, username)
            ok = await self._verify_password(user.password_hash if user else None, password)
            if user is None or not ok or user.disabled:
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
                    if not await self._use_otp(user, otp):
                        entry = self._audit(user.id, user.username, failed, client=client,
                                            detail={"reason": "otp"})  # fmt: skip
                        await self._db.write(audit.record, entry)
                        raise Unauthorized(OTP_REQUIRED)
                    code_slot.succeeded()
            slot.succeeded()
        if security.needs_rehash(user.password_hash):
            new_hash = await security.hash_password_async(password)
            await self._db.write(users.rehash, user.id, user.password_hash, new_hash)
        return user

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

    async def login(self, username: str, password: str, otp: str | None, client: str) -> str:
        user = await self._check_credentials(username, password, client, otp)
        entry = self._audit(user.id, user.username, "login", client=client)
        await self._db.write(audit.audited, entry, users.touch, user.id, self._now())
        return self._issue_session(user)

    async def logout(self, user: User) -> None:
        entry = self._audit(user.id, user.username, "logout")
        await self._db.write(audit.audited, entry, users.revoke_sessions, user.id)
        self.sessions_ended(user.id)

    async def change_password(self, user: User, current: str, new: str) -> None:
        async with self.session_failures.attempt(user.id, TOO_MANY) as slot:
            if not await self._verify_password(user.password_hash, current):
                raise Unauthorized("the current password is wrong")
            slot.succeeded()
        new_hash = await security.hash_password_async(new)
        entry = self._audit(user.id, user.username, "password_changed")
        await self._db.write(audit.audited, entry, users.set_password, user.id, new_hash)
        self.sessions_ended(user.id)

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

    async def mfa_enable(self, user: User, otp: str) -> None:
        if user.mfa_enabled:
            raise Conflict("MFA is already enabled")
        if not user.mfa_pending:
            raise Conflict("call /api/v1/auth/mfa/setup first")
        secret = self._box.open(user.mfa_pending, user.id)
        step = security.totp_match(secret, otp, self._clock.now().timestamp())
        if step is None:
            raise BadRequest("the code does not match; check the device's clock and try again")
        entry = self._audit(user.id, user.username, "mfa_enabled")
        await self._db.write(
            audit.audited, entry, users.mfa_enable, user.id, user.mfa_pending, step
        )

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
        user = await self._check_credentials(username, password, client, otp,
                                             failed="enroll_failed")  # fmt: skip
        limit = await self.billing.agent_limit(user)
        token = security.new_token(security.AGENT_TOKEN_PREFIX)
        agent_id = str(uuid.uuid4())
        await self._db.write(
            agent_cases.add_agent, Actor(user.id, user.username, client), agent_id=agent_id,
            name=name, token_hash=security.token_hash(token), limit=limit, now=self._now(),
        )  # fmt: skip
        return Enrollment(token=token, agent_id=agent_id)

    async def revoke_agent(self, user: User, agent_id: str) -> None:
        entry = self._audit(user.id, user.username, "agent_revoked", target=agent_id)
        if not await self._db.write(
            audit.audited, entry, agents.revoke, user.id, agent_id, self._now()
        ):
            raise NotFound("no such agent")
        self._agent_tokens.invalidate_agent(agent_id)

    async def rotate_agent(self, user: User, agent_id: str) -> Enrollment:
        token = security.new_token(security.AGENT_TOKEN_PREFIX)
        entry = self._audit(user.id, user.username, "agent_token_rotated", target=agent_id)
        digest = security.token_hash(token)
        rotated = await self._db.write(
            audit.audited, entry, agent_cases.rotate_token, user.id, agent_id, digest
        )
        if not rotated:
            raise NotFound("no such agent")
        self._agent_tokens.invalidate_agent(agent_id)
        return Enrollment(token=token, agent_id=agent_id)
