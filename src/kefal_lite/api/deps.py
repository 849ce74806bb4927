"""What handlers receive: the services, the session user, the client address."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from kefal_lite.clock import iso
from kefal_lite.errors import Forbidden
from kefal_lite.roles import Access
from kefal_lite.services import Services
from kefal_lite.store import audit
from kefal_lite.store.users import User
from kefal_lite.usecases.actor import Actor

# Handlers name these parameters `svc`, `user` and `org`; the app and routers provide them.
Svc = NamedDependency[Services]
CurrentUser = NamedDependency[User]
# The organization the request acts in and its role there (api/access.py checks the role).
Org = NamedDependency[Access]

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="page size")]
Offset = Annotated[int, QueryParameter(ge=0, description="items to skip")]


def services(state: State) -> Services:
    svc: Services = state.kefal
    return svc


def current_user(request: Request[User, Any, Any]) -> User:
    return request.user


def current_access(request: Request[Any, Access, Any]) -> Access:
    return request.auth


def admin_user(request: Request[User, Any, Any]) -> User:
    if request.user.role != "admin":
        raise Forbidden("this needs the admin role")
    return request.user


def session_id(request: Request[Any, Access, Any]) -> str:
    """The session the request's JWT belongs to (the gate refused tokens without one; the
    guard refuses API keys on the routes that ask)."""
    return str(request.auth.session_id)


def user_agent(request: Request[Any, Any, Any]) -> str | None:
    agent = request.headers.get("user-agent")
    return agent[:256] if agent else None


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


USER = {"user": Provide(current_user, sync_to_thread=False)}
ADMIN = {"user": Provide(admin_user, sync_to_thread=False)}


def actor(user: User, org: Access) -> Actor:
    return Actor(org_id=org.org_id, user_id=user.id, username=user.username,
                 key_name=org.key_name)  # fmt: skip


def account_actor(user: User) -> Actor:
    """The person acting on their own account (sessions, MFA): in no organization."""
    return Actor(org_id="", user_id=user.id, username=user.username)


def audit_entry(
    svc: Services, user: User, org: Access, action: str, target: str | None = None,
    **detail: Any,
) -> audit.Entry:
    """The audit row of an action a signed-in user or API key takes (recorded in the
    action's transaction)."""
    return actor(user, org).entry(iso(svc.clock.now()), action, target, **detail)
