"""GET /api/v1/hosts: the caller's hosts, filtered and paged."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import get
from litestar.params import QueryParameter

from kefal_lite.api.deps import USER, CurrentUser, Limit, Offset, Org, Svc
from kefal_lite.store import hosts
from kefal_lite.store.hosts import HostSummary


class HostPage(msgspec.Struct, frozen=True):
    items: list[HostSummary]
    total: int  # hosts matching the filters, over all pages


@get("/api/v1/hosts", dependencies=USER)
async def list_hosts(
    user: CurrentUser, org: Org,
    svc: Svc,
    status: Annotated[Literal["online", "silent"] | None, QueryParameter()] = None,
    os: Annotated[
        str | None, QueryParameter(max_length=64, description="OS name prefix, any case")
    ] = None,
    q: Annotated[
        str | None, QueryParameter(max_length=253, description="part of the hostname")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> HostPage:
    """Hosts by hostname with their status and open incident count; `total` counts every
    match, so `offset` pages through them."""
    items, total = await svc.db.read(
        hosts.list_page, org.org_id, status=status, os=os, q=q, limit=limit, offset=offset
    )
    return HostPage(items, total)


handlers = [list_hosts]
