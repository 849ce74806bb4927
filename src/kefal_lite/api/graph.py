"""GET /api/v1/graph (Cytoscape elements) and /api/v1/topology, from each host's latest state."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Response, get
from litestar.params import QueryParameter

from kefal_lite import graph
from kefal_lite.api.deps import USER, CurrentUser, Svc
from kefal_lite.errors import NotFound
from kefal_lite.store import hosts, incidents
from kefal_lite.store.hosts import Host

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


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


async def _off_loop(build: Callable[[], T]) -> T:
    """Run on a worker thread with the cyclic GC paused: a 1,000-host graph allocates
    60,000 dicts, and the collections they trigger doubled its build time."""

    def run() -> T:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return build()
        finally:
            if enabled:
                gc.enable()

    return await asyncio.to_thread(run)


class GraphCache:
    """Each host's encoded fragment, reused while its snapshot, status, name and open
    incidents are unchanged: a dashboard refresh decodes and draws only the hosts that
    reported since. Keys are host ids (unique across tenants), and every read that feeds
    it is filtered on the caller's user id."""

    def __init__(self, max_hosts: int = 50_000) -> None:
        self._entries: dict[str, tuple[tuple[Any, ...], graph.Fragment]] = {}
        self._max = max_hosts

    async def document(self, svc: Svc, user_id: str, host_id: str | None) -> bytes:
        rows = await svc.db.read(hosts.list_meta_for_user, user_id)
        if host_id is not None and not any(h.id == host_id for h in rows):
            raise NotFound("no such host")
        marks: dict[str, list[graph.OpenIncident]] = {}
        for found in await svc.db.read(incidents.open_summary, user_id):
            marks.setdefault(found[0], []).append(graph.OpenIncident(*found))
        keyed = []
        for h in rows:
            overlay = tuple(sorted((i.subject, i.severity) for i in marks.get(h.id, [])))
            key = (h.snapshot_id, h.silent, h.hostname, h.os, h.kernel, h.last_seen_at, overlay)
            keyed.append((h, key))
        stale = [(h, key) for h, key in keyed if self._entries.get(h.id, ((),))[0] != key]
        wanted = [h.snapshot_id for h, _ in stale if h.snapshot_id]
        bodies = await svc.db.read(hosts.snapshot_bodies, user_id, wanted)
        fresh_rows = [
            msgspec.structs.replace(h, latest=bodies.get(h.snapshot_id or "")) for h, _ in stale
        ]

        def build() -> tuple[list[graph.Fragment], bytes]:
            fresh = [graph.fragment(v, marks.get(v.host_id, [])) for v in _views(fresh_rows)]
            made = {h.id: f for (h, _), f in zip(stale, fresh, strict=True)}
            frags = [(h.id, made.get(h.id) or self._entries[h.id][1]) for h, _ in keyed]
            return fresh, graph.assemble(frags, host_id)

        fresh, document = await _off_loop(build)
        if len(self._entries) + len(fresh) > self._max:
            self._entries.clear()
        for (h, key), frag in zip(stale, fresh, strict=True):
            self._entries[h.id] = (key, frag)
        return document


GRAPHS = GraphCache()


@get("/api/v1/graph", dependencies=USER)
async def get_graph(
    user: CurrentUser,
    svc: Svc,
    host_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
) -> Response[bytes]:
    """Cytoscape elements; `?host_id=` narrows to that host and the hosts it connects with."""
    document = await GRAPHS.document(svc, user.id, host_id)
    return Response(document, media_type="application/json")


@get("/api/v1/topology", dependencies=USER)
async def get_topology(user: CurrentUser, svc: Svc) -> Response[bytes]:
    """One row per host with counts, for the list view."""
    rows = await svc.db.read(hosts.list_for_user, user.id)
    summary = [graph.OpenIncident(*s) for s in await svc.db.read(incidents.open_summary, user.id)]
    document = await _off_loop(lambda: _encoder.encode(graph.build_topology(_views(rows), summary)))
    return Response(document, media_type="application/json")


handlers = [get_graph, get_topology]
