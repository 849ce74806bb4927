"""create_app(settings) -> Litestar: routes, lifespan, session auth, error shapes."""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, Router
from litestar.config.compression import CompressionConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig
from litestar.security.jwt import JWTAuth
from litestar.static_files import create_static_files_router

from kefal_lite import __version__, lateral_run
from kefal_lite.api import (
    access,
    admin,
    agents,
    auth,
    docs,
    events,
    graph,
    health,
    history,
    hosts,
    incidents,
    ingest,
    invariants,
    notifications,
    orgs,
)
from kefal_lite.api import billing as billing_api
from kefal_lite.api import enrollment as enrollment_api
from kefal_lite.api import mcp as mcp_api
from kefal_lite.api import metrics as metrics_api
from kefal_lite.api import triage as triage_api
from kefal_lite.api.deps import current_access, services
from kefal_lite.api.docs import LocalSwagger
from kefal_lite.clock import Clock
from kefal_lite.config import Settings, server_secret
from kefal_lite.errors import (
    ApiError,
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PaymentRequired,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
    loc_from_path,
    validation_item,
)
from kefal_lite.messages import humanize
from kefal_lite.roles import Access
from kefal_lite.security import SESSION_TTL, session_key
from kefal_lite.services import build, start, stop
from kefal_lite.store.db import DatabaseBusy, for_settings
from kefal_lite.store.lock import ServerLock
from kefal_lite.store.users import User

log = logging.getLogger("kefal_lite")

UNAUTHORIZED = "missing, invalid or expired session token; log in again"


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response({"detail": detail}, status_code=status, headers=headers)


# The one place a domain error becomes an HTTP status; a subclass takes its nearest
# ancestor's code (InvalidTransition is a Conflict: 409).
STATUS: dict[type[ApiError], int] = {
    BadRequest: 400,
    ValidationFailed: 400,
    Unauthorized: 401,
    PaymentRequired: 402,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooManyRequests: 429,
    BadGateway: 502,
    ServiceUnavailable: 503,
}


def status_of(exc: ApiError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    if isinstance(exc, ValidationFailed):
        return _error(400, exc.items)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, TooManyRequests | ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    return _error(status_of(exc), exc.detail, headers or None)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status == 400:
        extra = exc.extra if isinstance(exc, ValidationException) else None
        if isinstance(extra, list) and extra:
            items = [
                validation_item(
                    loc_from_path(
                        str(getattr(e.get("source"), "value", e.get("source")) or "body"),
                        str(e.get("key") or ""),
                        str(e.get("message") or ""),
                    ),
                    humanize(str(e.get("message") or "invalid value")),
                )
                for e in extra
                if isinstance(e, dict)
            ]
            return _error(400, items)
        return _error(400, [validation_item(["body"], exc.detail)])
    if status == 401:
        return _error(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
    if status == 413:
        return _error(413, "the request body is over the server's limit (http.max_body_bytes)")
    if status >= 500:
        log.error("request failed: %s", exc.detail)
        return _error(status, "internal server error")
    return _error(status, exc.detail, exc.headers)


def _busy(_: Request[Any, Any, Any], exc: DatabaseBusy) -> Response[Any]:
    return _error(503, "the server is saturated; retry shortly", {"Retry-After": "1"})


def _crash(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal server error")


# HTTP request counts and latency by route (the route's path template, not raw paths).
# Ingest and health are left out: the middleware cost a quarter of ingest throughput
# (2,289 -> 1,721 snapshots/s, health 23.9k -> 13.1k req/s, same run); ingest keeps its
# own cheaper counters and latency histogram (metrics.py).
PROMETHEUS = PrometheusConfig(
    app_name="kefal_lite",
    group_path=True,
    exclude=["^/metrics$", "^/api/v1/ingest$", "^/api/v1/health$"],
)
WEB_DIR = Path(__file__).parent / "web"
mimetypes.add_type("text/javascript", ".mjs")  # Python 3.11 does not know it; modules need it
# The dashboard's policy: its own scripts and styles only, no inline code, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
    " form-action 'self'"
)


async def _dashboard_headers(response: Response[Any]) -> Response[Any]:
    response.headers.update(
        {
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        }
    )
    return response


def dashboard_router() -> Router:
    """The single-page app in web/, served by this same process (no build step)."""
    return create_static_files_router(
        path="/",
        directories=[WEB_DIR],
        html_mode=True,
        name="dashboard",
        opt={"exclude_from_auth": True},
        after_request=_dashboard_headers,
        include_in_schema=False,
    )


def create_app(
    settings: Settings, *, clock: Clock | None = None, lock: ServerLock | None = None
) -> Litestar:
    clock = clock or Clock()
    secret = server_secret(settings)
    jwt_auth = JWTAuth[tuple[User, Access]](
        retrieve_user_handler=access.session_principal,
        authentication_middleware_class=access.Authentication,
        token_secret=session_key(secret),
        algorithm="HS256",
        default_token_expiration=SESSION_TTL,
        exclude=["^/schema"],
    )

    def issue_session(user: User, session_id: str, org_id: str) -> str:
        # `sid`: the session's row (sessions.py); `org`: the organization it acts in
        # (POST /orgs/{id}/switch gives the same session in another organization)
        return jwt_auth.create_token(
            identifier=user.id,
            token_expiration=SESSION_TTL,
            token_extras={"tv": user.token_version, "sid": session_id, "org": org_id},
        )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        server_lock = lock or ServerLock(settings.data_path)
        own_lock = not server_lock.held
        if own_lock:
            server_lock.acquire()
        db = for_settings(settings)
        try:
            await db.start()
            svc = await build(settings, clock, db, secret, issue_session)
            app.state.kefal = svc
            await start(svc)
            estate_timer = lateral_run.Timer(svc)  # the estate pack; warms the graph cache
            estate_timer.start()
            # serve once the estate is warm (or after a bounded wait): the first graph
            # request after a start is then as fast as the next ones
            await estate_timer.warm()
            try:
                yield
            finally:
                await estate_timer.stop()
                await stop(svc)
        finally:
            await db.close()
            if own_lock:
                server_lock.release()

    return Litestar(
        route_handlers=[
            *health.handlers,
            *auth.handlers,
            *agents.handlers,
            *enrollment_api.handlers,
            *ingest.handlers,
            *incidents.handlers,
            *hosts.handlers,
            *history.handlers,
            *triage_api.handlers,
            *graph.handlers,
            *invariants.handlers,
            *admin.handlers,
            *events.handlers,
            *notifications.handlers,
            *billing_api.handlers,
            *metrics_api.handlers,
            *mcp_api.handlers,
            *orgs.handlers,
            dashboard_router(),
        ],
        dependencies={
            "svc": Provide(services, sync_to_thread=False),
            "org": Provide(current_access, sync_to_thread=False),
        },
        guards=[access.org_guard],
        lifespan=[lifespan],
        on_app_init=[jwt_auth.on_app_init],
        middleware=[PROMETHEUS.middleware],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            DatabaseBusy: _busy,
            Exception: _crash,
        },
        request_max_body_size=settings.http_max_body_bytes,
        # The graph of a large estate is megabytes of JSON that gzip shrinks about 10x:
        # far cheaper than the transfer over a LAN. Level 1, big responses only.
        compression_config=CompressionConfig(
            backend="gzip",
            minimum_size=16_384,
            gzip_compress_level=1,
            exclude=["^/api/v1/ingest", "^/api/v1/health", "^/api/v1/events"],
        ),
        openapi_config=OpenAPIConfig(
            title="kefal-lite",
            version=__version__,
            path="/schema",
            render_plugins=[LocalSwagger()],
            openapi_router=docs.openapi_router(),
        ),
        state=State({"settings": settings}),
        debug=False,
    )
