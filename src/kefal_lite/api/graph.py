"""GET /api/v1/graph (Cytoscape elements) and /api/v1/topology, from each host's latest state."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.params import QueryParameter

from kefal_lite import graph
from kefal_lite.api.deps import USER, CurrentUser, Svc
from kefal_lite.errors import NotFound
from kefal_lite.store import hosts, incidents
from kefal_lite.store.hosts import Host


def _views(rows: list[Host]) -> list[graph.HostView]:
    views = []
    for h in rows:
        snap = None
        if h.latest:
            try:
                snap = graph.DECODER.decode(h.latest)
            except msgspec.DecodeError:  # stored as ingested, so it decoded once already
                snap = None
        status = "silent" if h.silent else "online"
        views.append(graph.HostView(h.id, h.hostname, h.os, h.kernel, status, h.last_seen_at, snap))
    return views


async def _state(svc: Svc, user_id: str) -> tuple[list[Host], list[graph.OpenIncident]]:
    rows = await svc.db.read(hosts.list_for_user, user_id)
    summary = await svc.db.read(incidents.open_summary, user_id)
    return rows, [graph.OpenIncident(*s) for s in summary]


@get("/api/v1/graph", dependencies=USER)
async def get_graph(
    user: CurrentUser,
    svc: Svc,
    host_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
) -> dict[str, Any]:
    """`?host_id=` narrows to that host and the hosts it connects with."""
    rows, open_incidents = await _state(svc, user.id)
    if host_id is not None and not any(h.id == host_id for h in rows):
        raise NotFound("no such host")
    # decoding a thousand snapshots is CPU work: keep it off the event loop
    return await asyncio.to_thread(lambda: graph.build_graph(_views(rows), open_incidents, host_id))


@get("/api/v1/topology", dependencies=USER)
async def get_topology(user: CurrentUser, svc: Svc) -> dict[str, Any]:
    rows, open_incidents = await _state(svc, user.id)
    return await asyncio.to_thread(lambda: graph.build_topology(_views(rows), open_incidents))


handlers = [get_graph, get_topology]
