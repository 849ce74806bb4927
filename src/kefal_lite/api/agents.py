"""Agent enrollment (enrollment token, or username + password); the owner's agent list,
revoke, rotate."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from kefal_lite.api.deps import USER, CurrentUser, Limit, Offset, Svc, client_address
from kefal_lite.errors import ValidationFailed, validation_item
from kefal_lite.security import MAX_PASSWORD
from kefal_lite.store import agents
from kefal_lite.store.agents import Agent


class EnrollBody(msgspec.Struct):
    username: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    password: Annotated[str, msgspec.Meta(max_length=MAX_PASSWORD)] | None = None
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    otp: Annotated[str, msgspec.Meta(max_length=16)] | None = None  # required when MFA is on
    # instead of username + password: a `kfe_` token from POST /api/v1/enrollment-tokens
    enrollment_token: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    hostname: Annotated[str, msgspec.Meta(max_length=253)] | None = None


class AgentCredentials(msgspec.Struct, frozen=True):
    token: str  # shown once: the agent sends it as `Authorization: Bearer <token>`
    agent_id: str


class AgentPage(msgspec.Struct, frozen=True):
    items: list[Agent]
    total: int


@post("/api/v1/enroll", status_code=HTTP_200_OK, exclude_from_auth=True)
async def enroll(
    data: JSONBody[EnrollBody], request: Request[Any, Any, Any], svc: Svc
) -> AgentCredentials:
    """The token is shown once: only its hash is kept. With MFA on, `otp` is required and
    a missing or wrong one is the login's 401 `{"detail":"otp required"}`."""
    name = data.name or (data.hostname[:128] if data.hostname else None)
    if data.enrollment_token is not None:
        if data.username is not None or data.password is not None:
            raise ValidationFailed([validation_item(["body", "enrollment_token"],
                "give an enrollment token or username and password, not both")])  # fmt: skip
        done = await svc.enrollment.enroll(data.enrollment_token, name, client_address(request))
    elif data.username is None or data.password is None:
        raise ValidationFailed([validation_item(
            ["body"], "give enrollment_token, or username and password"
        )])  # fmt: skip
    else:
        done = await svc.accounts.enroll(
            data.username, data.password, name, client_address(request), data.otp
        )
    return AgentCredentials(done.token, done.agent_id)


@get("/api/v1/agents", dependencies=USER)
async def list_agents(
    user: CurrentUser, svc: Svc, limit: Limit = 50, offset: Offset = 0
) -> AgentPage:
    items, total = await svc.db.read(agents.list_for_user, user.id, limit=limit, offset=offset)
    return AgentPage(items, total)


@delete("/api/v1/agents/{agent_id:str}", status_code=HTTP_204_NO_CONTENT, dependencies=USER)
async def revoke_agent(agent_id: FromPath[str], user: CurrentUser, svc: Svc) -> None:
    await svc.accounts.revoke_agent(user, agent_id)


@post("/api/v1/agents/{agent_id:str}/rotate-token", status_code=HTTP_200_OK, dependencies=USER)
async def rotate_token(agent_id: FromPath[str], user: CurrentUser, svc: Svc) -> AgentCredentials:
    done = await svc.accounts.rotate_agent(user, agent_id)
    return AgentCredentials(done.token, done.agent_id)


handlers = [enroll, list_agents, revoke_agent, rotate_token]
