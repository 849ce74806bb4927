"""Notification channels per tenant: list (masked), create, delete, test."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from kefal_lite.api.deps import USER, CurrentUser, Svc, actor
from kefal_lite.clock import iso
from kefal_lite.store import channels
from kefal_lite.store.channels import Channel
from kefal_lite.usecases import channels as channel_cases


class NewChannel(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    url: Annotated[str, msgspec.Meta(min_length=5, max_length=2000)]
    min_severity: Literal["low", "medium", "high", "critical"] = "high"


class ChannelView(msgspec.Struct, frozen=True):
    id: str
    name: str
    url: str  # masked: the secret parts of the URL are never shown again
    min_severity: str
    created_at: str
    last_success_at: str | None
    last_error: str | None
    last_error_at: str | None


class NewChannelView(ChannelView, frozen=True):
    # a webhook channel's signing secret: in this answer only (absent for other kinds)
    signing_secret: str | msgspec.UnsetType = msgspec.UNSET


class ChannelPage(msgspec.Struct, frozen=True):
    items: list[ChannelView]
    total: int


class TestResult(msgspec.Struct, frozen=True):
    ok: bool
    error: str | None  # why the test message did not go out


def _fields(c: Channel) -> dict[str, Any]:
    return {
        "id": c.id, "name": c.name, "url": c.url_masked, "min_severity": c.min_severity,
        "created_at": c.created_at, "last_success_at": c.last_success_at,
        "last_error": c.last_error, "last_error_at": c.last_error_at,
    }  # fmt: skip


@get("/api/v1/notifications/channels", dependencies=USER)
async def list_channels(user: CurrentUser, svc: Svc) -> ChannelPage:
    items = await svc.db.read(channels.list_for_user, user.id)
    return ChannelPage([ChannelView(**_fields(c)) for c in items], len(items))


@post("/api/v1/notifications/channels", status_code=HTTP_201_CREATED, dependencies=USER)
async def create_channel(data: JSONBody[NewChannel], user: CurrentUser, svc: Svc) -> NewChannelView:
    """A webhook channel's signing secret is in this answer only."""
    channel, secret = await svc.notifier.create(actor(user), data.name, data.url,
                                                data.min_severity)  # fmt: skip
    return NewChannelView(**_fields(channel), signing_secret=secret or msgspec.UNSET)


@delete("/api/v1/notifications/channels/{channel_id:str}", status_code=HTTP_204_NO_CONTENT,
        dependencies=USER)  # fmt: skip
async def delete_channel(channel_id: FromPath[str], user: CurrentUser, svc: Svc) -> None:
    await svc.db.write(channel_cases.delete_channel, actor(user), channel_id, iso(svc.clock.now()))


@post("/api/v1/notifications/channels/{channel_id:str}/test", status_code=HTTP_200_OK,
      dependencies=USER)  # fmt: skip
async def test_channel(channel_id: FromPath[str], user: CurrentUser, svc: Svc) -> TestResult:
    error = await svc.notifier.test(user.id, channel_id)
    return TestResult(error is None, error)


handlers = [list_channels, create_channel, delete_channel, test_channel]
