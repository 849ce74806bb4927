"""Enrollment tokens, and the agent the server ships: its install script and its wheel."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from kefal_lite import agent_dist, tls
from kefal_lite.api.deps import USER, CurrentUser, Limit, Offset, Svc
from kefal_lite.errors import NotFound
from kefal_lite.store.enrollment import EnrollmentToken


class NewTokenBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    # at most a year: a forgotten fleet token should not live forever
    expires_in_hours: Annotated[int, msgspec.Meta(ge=1, le=8760)] = 24
    max_uses: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 1  # 0: unlimited


class EnrollmentTokenInfo(msgspec.Struct, frozen=True):
    """An enrollment token as listed: never the token itself (only its hash is kept)."""

    id: str
    name: str | None
    created_at: str
    expires_at: str
    max_uses: int  # 0: unlimited
    uses: int
    uses_left: int | None  # None: unlimited
    last_used_at: str | None
    revoked_at: str | None


class NewEnrollmentToken(EnrollmentTokenInfo, frozen=True):
    token: str  # in this answer only
    server_url: str
    pin: str | None  # the server certificate's pin when the URL is https
    install_command: str  # the line to paste on a host


class EnrollmentTokenPage(msgspec.Struct, frozen=True):
    items: list[EnrollmentTokenInfo]
    total: int


def _fields(record: EnrollmentToken) -> dict[str, Any]:
    return {
        "id": record.id, "name": record.name, "created_at": record.created_at,
        "expires_at": record.expires_at, "max_uses": record.max_uses, "uses": record.uses,
        "uses_left": record.uses_left, "last_used_at": record.last_used_at,
        "revoked_at": record.revoked_at,
    }  # fmt: skip


def server_url(request: Request[Any, Any, Any], svc: Svc) -> str:
    """The URL agents should use: `public_url` when set, else the one this request came in
    on (what the browser showing the Agents page reached)."""
    if svc.settings.public_url:
        return svc.settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


@post("/api/v1/enrollment-tokens", status_code=HTTP_201_CREATED, dependencies=USER)
async def create_token(
    data: JSONBody[NewTokenBody], request: Request[Any, Any, Any], user: CurrentUser, svc: Svc
) -> NewEnrollmentToken:
    """The token is in this answer only (stored as a hash), with the line to paste on a host."""
    made = await svc.enrollment.create(user, data.name, data.expires_in_hours, data.max_uses)
    url = server_url(request, svc)
    pin = tls.served_pin(svc.settings) if url.startswith("https://") else None
    return NewEnrollmentToken(
        **_fields(made.record), token=made.token, server_url=url,
        pin=pin.cert if pin else None,
        install_command=agent_dist.install_command(url, made.token, pin),
    )  # fmt: skip


@get("/api/v1/enrollment-tokens", dependencies=USER)
async def list_tokens(
    user: CurrentUser, svc: Svc, limit: Limit = 50, offset: Offset = 0
) -> EnrollmentTokenPage:
    items, total = await svc.enrollment.list(user, limit=limit, offset=offset)
    return EnrollmentTokenPage([EnrollmentTokenInfo(**_fields(t)) for t in items], total)


@delete(
    "/api/v1/enrollment-tokens/{token_id:str}", status_code=HTTP_204_NO_CONTENT, dependencies=USER
)
async def revoke_token(token_id: FromPath[str], user: CurrentUser, svc: Svc) -> None:
    await svc.enrollment.revoke(user, token_id)


@get("/agent/install.sh", exclude_from_auth=True, include_in_schema=False)
async def install_script(request: Request[Any, Any, Any], svc: Svc) -> Response[bytes]:
    """No secret in it: the server URL below is only a default (the install line passes
    --server explicitly)."""
    script = agent_dist.install_script(server_url(request, svc))
    return Response(
        script.encode(),
        media_type="text/x-shellscript; charset=utf-8",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@get("/agent/{filename:str}", exclude_from_auth=True, include_in_schema=False)
async def agent_file(filename: FromPath[str]) -> Response[bytes]:
    wheel = agent_dist.wheel()
    if filename != wheel.filename:
        raise NotFound(f"no such file; this server ships {wheel.filename}")
    return Response(
        wheel.data,
        media_type="application/octet-stream",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


handlers = [create_token, list_tokens, revoke_token, install_script, agent_file]
