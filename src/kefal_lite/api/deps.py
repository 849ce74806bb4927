"""What handlers receive: the services, the session user, the client address."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from kefal_lite.clock import iso
from kefal_lite.errors import Forbidden
from kefal_lite.services import Services
from kefal_lite.store import audit
from kefal_lite.store.users import User
from kefal_lite.usecases.actor import Actor

# Handlers name these parameters `svc` and `user`; the app and routers provide them.
Svc = NamedDependency[Services]
CurrentUser = NamedDependency[User]

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="page size")]
Offset = Annotated[int, QueryParameter(ge=0, description="items to skip")]


def services(state: State) -> Services:
    svc: Services = state.kefal
    return svc


def current_user(request: Request[User, Any, Any]) -> User:
    return request.user


def admin_user(request: Request[User, Any, Any]) -> User:
    if request.user.role != "admin":
        raise Forbidden("this needs the admin role")
    return request.user


def session_id(request: Request[Any, Any, Any]) -> str:
    """The session the request's JWT belongs to (the gate refused tokens without one)."""
    return str(request.auth.extras["sid"])


def user_agent(request: Request[Any, Any, Any]) -> str | None:
    agent = request.headers.get("user-agent")
    return agent[:256] if agent else None


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


USER = {"user": Provide(current_user, sync_to_thread=False)}
ADMIN = {"user": Provide(admin_user, sync_to_thread=False)}


def actor(user: User) -> Actor:
    return Actor(user.id, user.username)


def audit_entry(
    svc: Services, user: User, action: str, target: str | None = None, **detail: Any
) -> audit.Entry:
    """The audit row of an action a signed-in user takes (recorded in the action's transaction)."""
    return actor(user).entry(iso(svc.clock.now()), action, target, **detail)
