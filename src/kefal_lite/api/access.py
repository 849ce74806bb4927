"""Who may call what: authentication (session JWT or `kfk_` API key) and the one guard
that checks each route's minimum organization role.

Every authenticated route has a rule in RULES, keyed by method and path template. A route
without one is refused (403) rather than left open, and tests/test_roles.py builds its
role x endpoint matrix from the app's routes, so a new endpoint fails it until it has a
rule here.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.jwt import JWTAuthenticationMiddleware, Token

from kefal_lite.errors import Forbidden, NotFound
from kefal_lite.organizations import API_KEY_PREFIX
from kefal_lite.roles import Access, at_least
from kefal_lite.services import Services
from kefal_lite.store import orgs
from kefal_lite.store.users import User

# Rules besides the roles: "account" is the signed-in person's own business (profile,
# password, MFA, their organizations), refused to API keys; "platform" is the server-wide
# admin role (users, analytics), also refused to API keys; "self_or_owner" lets anyone
# leave an organization and an owner remove others.
ACCOUNT, PLATFORM, SELF_OR_OWNER = "account", "platform", "self_or_owner"

V1 = "/api/v1"
INCIDENT = V1 + "/incidents/{incident_id:str}"
ORG = V1 + "/orgs/{org_id:str}"
RULES: dict[tuple[str, str], str] = {
    # the account
    ("POST", "/auth/logout"): ACCOUNT,
    ("POST", "/auth/logout-all"): ACCOUNT,
    ("GET", V1 + "/auth/sessions"): ACCOUNT,
    ("DELETE", V1 + "/auth/sessions/{sid:str}"): ACCOUNT,
    ("DELETE", V1 + "/auth/me"): ACCOUNT,
    ("GET", V1 + "/auth/mfa/recovery-codes"): ACCOUNT,
    ("POST", V1 + "/auth/mfa/recovery-codes"): ACCOUNT,
    ("GET", V1 + "/auth/me"): ACCOUNT,
    ("POST", V1 + "/auth/update-email"): ACCOUNT,
    ("POST", V1 + "/auth/change-password"): ACCOUNT,
    ("POST", V1 + "/auth/mfa/setup"): ACCOUNT,
    ("POST", V1 + "/auth/mfa/enable"): ACCOUNT,
    ("POST", V1 + "/auth/mfa/disable"): ACCOUNT,
    ("GET", V1 + "/orgs"): ACCOUNT,
    ("POST", V1 + "/orgs"): ACCOUNT,
    ("POST", V1 + "/invitations/accept"): ACCOUNT,
    ("POST", ORG + "/switch"): ACCOUNT,  # a member of that organization, any role
    # the server
    ("GET", V1 + "/admin/dashboard"): PLATFORM,
    ("GET", V1 + "/admin/users"): PLATFORM,
    ("POST", V1 + "/admin/users"): PLATFORM,
    ("GET", V1 + "/admin/users/{user_id:str}"): PLATFORM,
    ("GET", V1 + "/admin/audit"): PLATFORM,
    ("POST", V1 + "/invariants/{invariant_id:str}/retire"): PLATFORM,
    # read-only: viewer
    ("GET", V1 + "/agents"): "viewer",
    ("GET", V1 + "/enrollment-tokens"): "viewer",
    ("GET", V1 + "/incidents"): "viewer",
    ("GET", INCIDENT): "viewer",
    ("GET", V1 + "/hosts"): "viewer",
    ("GET", V1 + "/hosts/{host_id:str}"): "viewer",
    ("GET", V1 + "/hosts/{host_id:str}/changes"): "viewer",
    ("GET", V1 + "/hosts/{host_id:str}/snapshots"): "viewer",
    ("GET", V1 + "/hosts/{host_id:str}/diff"): "viewer",
    ("GET", V1 + "/suppressions"): "viewer",
    ("GET", V1 + "/graph"): "viewer",
    ("GET", V1 + "/graph/paths"): "viewer",
    ("GET", V1 + "/topology"): "viewer",
    ("GET", V1 + "/invariants"): "viewer",
    ("POST", V1 + "/events/ticket"): "viewer",
    ("GET", V1 + "/notifications/channels"): "viewer",
    ("GET", V1 + "/billing/plans"): "viewer",
    ("GET", V1 + "/billing/status"): "viewer",
    ("GET", V1 + "/mcp-servers"): "viewer",
    ("GET", ORG): "viewer",
    ("GET", ORG + "/members"): "viewer",
    # triage: member
    ("POST", INCIDENT + "/acknowledge"): "member",
    ("POST", INCIDENT + "/dismiss"): "member",
    ("POST", INCIDENT + "/remediate"): "member",
    ("POST", INCIDENT + "/remediation/accept"): "member",
    ("POST", INCIDENT + "/remediation/reject"): "member",
    ("POST", INCIDENT + "/remediation/applied"): "member",
    ("POST", INCIDENT + "/resolve"): "member",
    ("POST", INCIDENT + "/baseline"): "member",
    ("POST", V1 + "/incidents/bulk"): "member",
    # configuration: admin
    ("DELETE", V1 + "/agents/{agent_id:str}"): "admin",
    ("POST", V1 + "/agents/{agent_id:str}/rotate-token"): "admin",
    ("POST", V1 + "/enrollment-tokens"): "admin",
    ("DELETE", V1 + "/enrollment-tokens/{token_id:str}"): "admin",
    ("PATCH", V1 + "/hosts/{host_id:str}"): "admin",
    ("POST", V1 + "/suppressions"): "admin",
    ("DELETE", V1 + "/suppressions/{suppression_id:str}"): "admin",
    ("POST", V1 + "/invariants/contribute"): "admin",
    ("POST", V1 + "/invariants/{invariant_id:str}/verify"): "admin",
    ("POST", V1 + "/notifications/channels"): "admin",
    ("DELETE", V1 + "/notifications/channels/{channel_id:str}"): "admin",
    ("POST", V1 + "/notifications/channels/{channel_id:str}/test"): "admin",
    ("GET", V1 + "/audit"): "admin",
    ("GET", ORG + "/invitations"): "admin",
    ("POST", ORG + "/invitations"): "admin",
    ("DELETE", ORG + "/invitations/{invitation_id:str}"): "admin",
    ("GET", V1 + "/api-keys"): "admin",
    ("POST", V1 + "/api-keys"): "admin",
    ("DELETE", V1 + "/api-keys/{key_id:str}"): "admin",
    # the organization itself: owner
    ("POST", V1 + "/billing/checkout"): "owner",
    ("POST", V1 + "/billing/cancel"): "owner",
    ("PATCH", ORG): "owner",
    ("DELETE", ORG): "owner",
    ("PATCH", ORG + "/members/{user_id:str}"): "owner",
    ("DELETE", ORG + "/members/{user_id:str}"): SELF_OR_OWNER,
    ("GET", ORG + "/export"): "owner",
}

# Routes that decide about people or credentials: a key is refused whatever its role
# (issue #17, holes 4 and 5). A leaked key that could invite its holder or mint another
# key would outlive its own revocation; making members and keys needs a signed-in person.
PERSON_ONLY: frozenset[tuple[str, str]] = frozenset({
    ("DELETE", ORG),
    ("GET", ORG + "/invitations"),
    ("POST", ORG + "/invitations"),
    ("DELETE", ORG + "/invitations/{invitation_id:str}"),
    ("PATCH", ORG + "/members/{user_id:str}"),
    ("DELETE", ORG + "/members/{user_id:str}"),
    ("POST", V1 + "/api-keys"),
    ("DELETE", V1 + "/api-keys/{key_id:str}"),
})  # fmt: skip


def person_only(handler: BaseRouteHandler, method: str) -> bool:
    return any((method, path) in PERSON_ONLY for path in handler.paths)


def rule_of(handler: BaseRouteHandler, method: str) -> str | None:
    for path in handler.paths:
        found = RULES.get((method, path))
        if found is not None:
            return found
    return None


async def session_principal(
    token: Token, connection: ASGIConnection[Any, Any, Any, Any]
) -> tuple[User, Access] | None:
    """The token's user and its organization, if its session (`sid`) is live, the account
    enabled, the token's version current (sessions.py), and the user still a member of the
    organization the token is bound to (`org`; none: the personal one, whose id is the
    user's)."""
    svc: Services = connection.app.state.kefal
    sid = token.extras.get("sid")
    user = await svc.sessions.user(token.sub, sid, token.extras.get("tv"))
    if user is None:
        return None
    org_id = str(token.extras.get("org") or token.sub)
    role = await svc.db.read(orgs.role_of, org_id, user.id)
    if role is None:
        # not None (401): that would lock the person out of their whole account, sessions
        # and other organizations included; org_guard keeps org routes closed (hole 2)
        return user, Access(org_id, "viewer", session_id=str(sid), member=False)
    return user, Access(org_id, role, session_id=str(sid))


class Authentication(JWTAuthenticationMiddleware):
    """A session JWT or an API key in `Authorization: Bearer`: either way the request gets
    its user (for a key, the account that made it) and its Access as `request.auth`."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        value = (connection.headers.get(self.auth_header) or "").partition(" ")[-1]
        if value.startswith(API_KEY_PREFIX):
            svc: Services = connection.app.state.kefal
            found = await svc.orgs.key_principal(value)
            if found is None:
                raise NotAuthorizedException()
        else:
            found = (await super().authenticate_request(connection)).user
        user, access = found
        return AuthenticationResult(user=user, auth=access)


async def org_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The one place a route's rule is checked. Under /orgs/{org_id} the role counted is
    the caller's in that organization (404 when they are not a member: whether another
    organization exists is not for them to learn); elsewhere, the session's or key's."""
    if connection.scope.get("user") is None or connection.scope.get("method") == "OPTIONS":
        return  # a public route (login, ingest, the dashboard, the schema)
    method = str(connection.scope.get("method"))
    rule = rule_of(handler, method)
    if rule is None:
        raise Forbidden("this endpoint has no access rule; refused until it has one")
    user: User = connection.user
    access: Access = connection.auth
    if rule in (ACCOUNT, PLATFORM) and access.key_id is not None:
        raise Forbidden("an API key cannot do this; sign in")
    if rule == PLATFORM:
        if user.role != "admin":
            raise Forbidden("this needs the admin role")
        return
    org_id = connection.path_params.get("org_id")
    role: str | None = access.role if access.member else None
    if org_id is not None and (org_id != access.org_id or not access.member):
        svc: Services = connection.app.state.kefal
        # a key is bound to its own organization; a session may act in any of the user's
        role = None if access.key_id else await svc.db.read(orgs.role_of, org_id, user.id)
        if role is None:
            raise NotFound("no such organization")
    # after the organization check, so another organization still answers 404 to a key
    if access.key_id is not None and person_only(handler, method):
        raise Forbidden("an API key cannot do this; people and keys need a signed-in person")
    if rule == ACCOUNT:
        return
    if not access.member and org_id is None:
        # the session's organization is gone: its routes answer as for a dead session
        raise NotAuthorizedException()
    if rule == SELF_OR_OWNER:
        leaving = connection.path_params.get("user_id") == user.id and access.key_id is None
        rule = "viewer" if leaving else "owner"
    if role is None or not at_least(role, rule):
        raise Forbidden(f"this needs the {rule} role in the organization (yours: {role})")
