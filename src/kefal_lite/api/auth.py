"""Users and sessions: register, login, logout, profile, passwords, resets, MFA."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from kefal_lite import __version__, security
from kefal_lite.accounts import AnyPassword, Email, NewUser, Password
from kefal_lite.api.deps import (
    USER,
    CurrentUser,
    Svc,
    actor,
    client_address,
    session_id,
    user_agent,
)
from kefal_lite.api.docs import body_of
from kefal_lite.api.validation import convert, decode_json
from kefal_lite.store import users
from kefal_lite.store.users import User

SESSION_SECONDS = int(security.SESSION_TTL.total_seconds())

Otp = Annotated[str, msgspec.Meta(max_length=16)]
# At login, a recovery code (XXXX-XXXX-XXXX-XXXX) may stand in for the authenticator's code.
OtpOrRecoveryCode = Annotated[str, msgspec.Meta(max_length=32)]


class LoginBody(msgspec.Struct):
    username: Annotated[str, msgspec.Meta(max_length=256)]
    password: AnyPassword
    otp: OtpOrRecoveryCode | None = None


class UpdateEmailBody(msgspec.Struct):
    email: Email
    password: AnyPassword


class ChangePasswordBody(msgspec.Struct):
    current_password: AnyPassword
    new_password: Password


class ForgotBody(msgspec.Struct):
    email: Annotated[str, msgspec.Meta(max_length=254)]


class ResetBody(msgspec.Struct):
    token: Annotated[str, msgspec.Meta(max_length=256)]
    new_password: Password


class OtpBody(msgspec.Struct):
    otp: Otp


class PasswordOtpBody(msgspec.Struct):
    password: AnyPassword
    otp: Otp


class DeleteAccountBody(msgspec.Struct):
    password: AnyPassword
    otp: Otp | None = None  # required when MFA is on


class AccountDeleted(msgspec.Struct, frozen=True):
    status: str  # "disabled"
    purge_after: str  # logging in before this cancels the deletion


class SessionInfo(msgspec.Struct, frozen=True):
    id: str
    created_at: str
    last_seen_at: str  # updated at most once a minute
    client: str | None  # the address the login came from
    user_agent: str | None
    current: bool  # the session making this request ("this device")


class SessionList(msgspec.Struct, frozen=True):
    items: list[SessionInfo]
    total: int


class MfaEnabled(msgspec.Struct, frozen=True):
    mfa_enabled: bool
    recovery_codes: list[str]  # shown this once; each logs in once in place of an OTP


class RecoveryCodes(msgspec.Struct, frozen=True):
    recovery_codes: list[str]


class RecoveryStatus(msgspec.Struct, frozen=True):
    remaining: int


_login_decoder = msgspec.json.Decoder(LoginBody)


class Profile(msgspec.Struct, frozen=True):
    """An account as its owner (and an admin) sees it: never the hashes or MFA seeds."""

    id: str
    username: str
    email: str | None
    role: str
    plan: str
    trial_ends_at: str | None
    created_at: str
    mfa_enabled: bool


def profile(user: User) -> Profile:
    return Profile(
        user.id, user.username, user.email, user.role, user.plan, user.trial_ends_at,
        user.created_at, bool(user.mfa_enabled),
    )  # fmt: skip


class AuthStatus(msgspec.Struct, frozen=True):
    first_run: bool  # no account yet: the login page offers to create the admin
    signup: bool
    version: str


class Done(msgspec.Struct, frozen=True):
    status: str  # "ok"


class MfaSetup(msgspec.Struct, frozen=True):
    secret: str
    otpauth_uri: str


class MfaState(msgspec.Struct, frozen=True):
    mfa_enabled: bool


class Session(msgspec.Struct, frozen=True, omit_defaults=True):
    access_token: str  # send as `Authorization: Bearer <access_token>`
    token_type: str
    expires_in: int  # seconds
    # only when a recovery code was used in place of the OTP: how many unused ones are left
    recovery_codes_remaining: int | None = None


_LOGIN_BODY = body_of(LoginBody, "JSON or form-encoded credentials; `otp` when MFA is on.",
                      ("application/json", "application/x-www-form-urlencoded"))  # fmt: skip


@post("/auth/login", status_code=HTTP_200_OK, exclude_from_auth=True, operation_class=_LOGIN_BODY)
async def login(request: Request[Any, Any, Any], svc: Svc) -> Session:
    """JSON or form-encoded (OAuth2 password-flow clients send a form)."""
    if request.content_type[0] in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        body = convert(dict(form.items()), LoginBody)
    else:
        body = decode_json(await request.body(), LoginBody, _login_decoder)
    result = await svc.accounts.login(
        body.username, body.password, body.otp, client_address(request), user_agent(request)
    )
    return Session(result.token, "bearer", SESSION_SECONDS, result.recovery_codes_remaining)


@get("/auth/status", exclude_from_auth=True)
async def auth_status(svc: Svc) -> AuthStatus:
    """What the login page needs to know: first run (create the admin) and open signup."""
    first_run = await svc.db.read(users.count) == 0
    return AuthStatus(first_run, svc.settings.auth_signup, __version__)


@post("/auth/register", status_code=HTTP_201_CREATED, exclude_from_auth=True)
async def register(data: JSONBody[NewUser], request: Request[Any, Any, Any], svc: Svc) -> Profile:
    """Open while the server has no users (that one becomes admin) or when signup is on."""
    client = client_address(request)
    return profile(await svc.accounts.register(data.username, data.password, data.email, client))


@post(["/auth/logout", "/api/v1/auth/logout"], status_code=HTTP_204_NO_CONTENT, dependencies=USER)
async def logout(request: Request[Any, Any, Any], user: CurrentUser, svc: Svc) -> None:
    """Ends the session making the request; the user's other sessions go on."""
    await svc.sessions.end(actor(user), session_id(request), action="logout")


@post(["/auth/logout-all", "/api/v1/auth/logout-all"], status_code=HTTP_204_NO_CONTENT,
      dependencies=USER)  # fmt: skip
async def logout_all(user: CurrentUser, svc: Svc) -> None:
    """Ends every session of the user, this one included."""
    await svc.sessions.end_all(actor(user))


@get("/api/v1/auth/sessions", dependencies=USER)
async def list_sessions(
    request: Request[Any, Any, Any], user: CurrentUser, svc: Svc
) -> SessionList:
    """The user's live sessions, most recently used first."""
    current = session_id(request)
    items = [
        SessionInfo(s.id, s.created_at, s.last_seen_at, s.client, s.user_agent, s.id == current)
        for s in await svc.sessions.of_user(user)
    ]
    return SessionList(items, len(items))


@delete("/api/v1/auth/sessions/{sid:str}", status_code=HTTP_204_NO_CONTENT, dependencies=USER)
async def revoke_session(sid: FromPath[str], user: CurrentUser, svc: Svc) -> None:
    """Ends one of the user's sessions at once; another person's id is 404."""
    await svc.sessions.end(actor(user), sid)


@get("/api/v1/auth/me", dependencies=USER)
async def me(user: CurrentUser, svc: Svc) -> Profile:
    """With the plan and trial end as the billing provider sees them."""
    billing = await svc.billing.status(user)
    return msgspec.structs.replace(
        profile(user), plan=billing["plan"], trial_ends_at=billing["trial_ends_at"]
    )


@delete("/api/v1/auth/me", status_code=HTTP_200_OK, dependencies=USER)
async def delete_me(
    data: JSONBody[DeleteAccountBody], user: CurrentUser, svc: Svc
) -> AccountDeleted:
    """Disables the account at once (every session ends) and purges it, with the data only
    it owns, 30 days later, unless its owner logs in before (which cancels the deletion)."""
    purge_after = await svc.accounts.delete_account(user, data.password, data.otp)
    return AccountDeleted("disabled", purge_after)


@post("/api/v1/auth/update-email", status_code=HTTP_200_OK, dependencies=USER)
async def update_email(data: JSONBody[UpdateEmailBody], user: CurrentUser, svc: Svc) -> Profile:
    return profile(await svc.accounts.update_email(user, data.email, data.password))


@post("/api/v1/auth/change-password", status_code=HTTP_204_NO_CONTENT, dependencies=USER)
async def change_password(data: JSONBody[ChangePasswordBody], user: CurrentUser, svc: Svc) -> None:
    """Every session of the user ends, this one included: log in again with the new one."""
    await svc.accounts.change_password(user, data.current_password, data.new_password)


@post("/api/v1/auth/forgot-password", status_code=HTTP_200_OK, exclude_from_auth=True)
async def forgot_password(
    data: JSONBody[ForgotBody], request: Request[Any, Any, Any], svc: Svc
) -> Done:
    """Always the same answer, whether or not the address belongs to someone."""
    await svc.accounts.forgot_password(data.email, client_address(request))
    return Done("ok")


@post("/api/v1/auth/reset-password", status_code=HTTP_200_OK, exclude_from_auth=True)
async def reset_password(data: JSONBody[ResetBody], svc: Svc) -> Done:
    await svc.accounts.reset_password(data.token, data.new_password)
    return Done("ok")


@post("/api/v1/auth/mfa/setup", status_code=HTTP_200_OK, dependencies=USER)
async def mfa_setup(user: CurrentUser, svc: Svc) -> MfaSetup:
    setup = await svc.accounts.mfa_setup(user)
    return MfaSetup(setup.secret, setup.otpauth_uri)


@post("/api/v1/auth/mfa/enable", status_code=HTTP_200_OK, dependencies=USER)
async def mfa_enable(data: JSONBody[OtpBody], user: CurrentUser, svc: Svc) -> MfaEnabled:
    """With the 10 recovery codes, shown this once."""
    return MfaEnabled(True, await svc.accounts.mfa_enable(user, data.otp))


@get("/api/v1/auth/mfa/recovery-codes", dependencies=USER)
async def recovery_status(user: CurrentUser, svc: Svc) -> RecoveryStatus:
    """How many unused recovery codes the user has (the codes are never shown again)."""
    return RecoveryStatus(await svc.accounts.recovery_codes_remaining(user))


@post("/api/v1/auth/mfa/recovery-codes", status_code=HTTP_200_OK, dependencies=USER)
async def regenerate_recovery_codes(
    data: JSONBody[PasswordOtpBody], user: CurrentUser, svc: Svc
) -> RecoveryCodes:
    """10 new recovery codes, shown this once; the old ones stop working."""
    codes = await svc.accounts.regenerate_recovery_codes(user, data.password, data.otp)
    return RecoveryCodes(codes)


@post("/api/v1/auth/mfa/disable", status_code=HTTP_200_OK, dependencies=USER)
async def mfa_disable(data: JSONBody[OtpBody], user: CurrentUser, svc: Svc) -> MfaState:
    await svc.accounts.mfa_disable(user, data.otp)
    return MfaState(False)


handlers = [
    auth_status,
    login,
    register,
    logout,
    logout_all,
    list_sessions,
    revoke_session,
    me,
    delete_me,
    update_email,
    change_password,
    forgot_password,
    reset_password,
    mfa_setup,
    mfa_enable,
    mfa_disable,
    recovery_status,
    regenerate_recovery_codes,
]
