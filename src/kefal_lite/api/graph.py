"""GET /api/v1/graph (Cytoscape elements) and /api/v1/topology, from each host's latest state."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Response, get, patch
from litestar.params import FromPath, JSONBody, QueryParameter

from kefal_lite import estate, graph, paths
from kefal_lite.api.deps import USER, CurrentUser, Org, Svc, audit_entry
from kefal_lite.detect.model import SEVERITY_RANK
from kefal_lite.errors import NotFound
from kefal_lite.paths import HostFacts
from kefal_lite.store import audit, hosts, incidents
from kefal_lite.store import estate as estate_store
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


def _facts_snapshot(h: Host) -> graph.FactsSnapshot | None:
    try:
        return graph.FACTS_DECODER.decode(h.latest) if h.latest else None
    except msgspec.DecodeError:  # stored as ingested, so it decoded once already
        return None


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


class _Entry(msgspec.Struct):
    facts_key: tuple[Any, ...]
    facts: HostFacts
    key: tuple[Any, ...] = ()
    fragment: graph.Fragment | None = None


class GraphCache:
    """Each host's facts (for paths and the estate view) and encoded fragment (for the
    per-host view), reused while its snapshot, status, name and open incidents are
    unchanged: a refresh decodes and draws only the hosts that reported since, and the
    estate view never builds a fragment. Keys are host ids (unique across tenants), and
    every read that feeds it is filtered on the caller's user id."""

    def __init__(self, max_hosts: int = 50_000) -> None:
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._max = max_hosts

    async def load(
        self, svc: Svc, org_id: str, fragments: bool
    ) -> tuple[list[Host], list[_Entry], dict[str, list[graph.OpenIncident]]]:
        """The caller's hosts with their cache entries up to date (fragments too, if asked).
        One load per tenant at a time: the first request after a start waits for the
        warm-up already decoding the estate instead of decoding it a second time."""
        lock = self._locks.get(org_id)
        if lock is None:
            if len(self._locks) > self._max:
                self._locks.clear()
            lock = self._locks[org_id] = asyncio.Lock()
        async with lock:
            return await self._load(svc, org_id, fragments)

    async def _load(
        self, svc: Svc, org_id: str, fragments: bool
    ) -> tuple[list[Host], list[_Entry], dict[str, list[graph.OpenIncident]]]:
        rows = await svc.db.read(hosts.list_meta_for_user, org_id)
        marks: dict[str, list[graph.OpenIncident]] = {}
        for found in await svc.db.read(incidents.open_summary, org_id):
            marks.setdefault(found[0], []).append(graph.OpenIncident(*found))
        stale: list[tuple[Host, tuple[Any, ...], tuple[Any, ...]]] = []
        for h in rows:
            overlay = tuple(sorted((i.subject, i.severity) for i in marks.get(h.id, [])))
            key = (h.snapshot_id, h.silent, h.hostname, h.os, h.kernel, h.last_seen_at, overlay)
            facts_key = (h.snapshot_id, h.hostname)
            entry = self._entries.get(h.id)
            # an entry built for paths or the estate view has no fragment yet
            has_fragment = entry is not None and entry.key == key and entry.fragment is not None
            if entry is None or entry.facts_key != facts_key or (fragments and not has_fragment):
                stale.append((h, facts_key, key))
        wanted = [h.snapshot_id for h, _, _ in stale if h.snapshot_id]
        bodies = await svc.db.read(hosts.snapshot_bodies, org_id, wanted)
        fresh_rows = [
            msgspec.structs.replace(h, latest=bodies.get(h.snapshot_id or "")) for h, _, _ in stale
        ]

        def build() -> list[_Entry]:
            if not fragments:
                return [_Entry(fk, graph.facts(h.id, h.hostname, _facts_snapshot(h)), key)
                        for h, (_, fk, key) in zip(fresh_rows, stale, strict=True)]  # fmt: skip
            out = []
            for view, (_, facts_key, key) in zip(_views(fresh_rows), stale, strict=True):
                frag = graph.fragment(view, marks.get(view.host_id, []))
                facts = graph.facts(view.host_id, view.hostname, view.snapshot)
                out.append(_Entry(facts_key, facts, key, frag))
            return out

        fresh = await _off_loop(build) if stale else []
        if len(self._entries) + len(fresh) > self._max:
            self._entries.clear()
        for (h, _, _), entry in zip(stale, fresh, strict=True):
            self._entries[h.id] = entry
        return rows, [self._entries[h.id] for h in rows], marks

    async def document(self, svc: Svc, org_id: str, host_id: str | None) -> bytes:
        rows, entries, _ = await self.load(svc, org_id, fragments=True)
        if host_id is not None and not any(h.id == host_id for h in rows):
            raise NotFound("no such host")
        frags = [(h.id, e.fragment) for h, e in zip(rows, entries, strict=True) if e.fragment]
        return await _off_loop(lambda: graph.assemble(frags, host_id))


GRAPHS = GraphCache()


def _worst(found: list[graph.OpenIncident]) -> str | None:
    worst = None
    for inc in found:
        if worst is None or SEVERITY_RANK[inc.severity] > SEVERITY_RANK[worst]:
            worst = inc.severity
    return worst


async def estate_hosts(svc: Svc, org_id: str) -> list[estate.EstateHost]:
    rows, entries, marks = await GRAPHS.load(svc, org_id, fragments=False)
    groups = await svc.db.read(estate_store.groups, org_id)
    return [
        estate.EstateHost(e.facts, h.os, "silent" if h.silent else "online", h.last_seen_at,
                          groups.get(h.id), len(marks.get(h.id, ())), _worst(marks.get(h.id, [])))
        for h, e in zip(rows, entries, strict=True)
    ]  # fmt: skip


class EstateCache:
    """The last estate document per tenant, served again while no input changed: a
    dashboard refreshing an estate where nothing reported costs one comparison."""

    def __init__(self, max_tenants: int = 1_000) -> None:
        self._docs: dict[str, tuple[tuple[Any, ...], bytes]] = {}
        self._max = max_tenants

    async def document(self, svc: Svc, org_id: str) -> bytes:
        found = await estate_hosts(svc, org_id)
        key = tuple(
            # facts first: the same object while the host's snapshot is unchanged, and a
            # tuple compares its items by identity before equality
            (h.facts, h.os, h.status, h.last_seen_at, h.group, h.open_incidents, h.max_severity)
            for h in found
        )
        cached = self._docs.get(org_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        document = await _off_loop(lambda: _encoder.encode(estate.build(found)))
        if len(self._docs) >= self._max:
            self._docs.clear()
        self._docs[org_id] = (key, document)
        return document


ESTATES = EstateCache()


@get("/api/v1/graph", dependencies=USER)
async def get_graph(
    user: CurrentUser, org: Org,
    svc: Svc,
    host_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
    view: Annotated[Literal["estate", "full"], QueryParameter()] = "estate",
) -> Response[bytes]:
    """Cytoscape elements. By default the estate: one node per host in compound `group`
    nodes, with `connects`, `shares_key` and `shares_login` edges (and `credential` hubs
    for keys and accounts on many hosts). `?view=full` draws every host's services, ports
    and identities; `?host_id=` narrows that to one host and the hosts it connects with."""
    if host_id is None and view == "estate":
        document = await ESTATES.document(svc, org.org_id)
    else:
        document = await GRAPHS.document(svc, org.org_id, host_id)
    return Response(document, media_type="application/json")


Group = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f-\x9f]*\S[^\x00-\x1f\x7f-\x9f]*$"
    ),
]


class HostPatch(msgspec.Struct, forbid_unknown_fields=True):
    group: Group | None  # null clears it: the host is grouped by its subnet again


@patch("/api/v1/hosts/{host_id:str}", dependencies=USER)
async def patch_host(
    host_id: FromPath[str], data: JSONBody[HostPatch], user: CurrentUser, org: Org, svc: Svc
) -> dict[str, Any]:
    """Set or clear a host's group (prod, dev, ...): the estate graph draws the host in it,
    and the lateral pack compares keys across groups."""
    group = data.group.strip() if data.group is not None else None
    entry = audit_entry(svc, user, org, "host_group_set", host_id, group=group)
    if not await svc.db.write(
        audit.audited, entry, estate_store.set_group, org.org_id, host_id, group
    ):
        raise NotFound("no such host")
    return {"host_id": host_id, "group": group}


class HostRef(msgspec.Struct, frozen=True):
    host_id: str
    hostname: str


class PathsOut(msgspec.Struct, frozen=True):
    from_: HostRef = msgspec.field(name="from")
    max_hops: int
    reachable: int  # hosts, the blast radius
    paths: list[paths.Path]


@get("/api/v1/graph/paths", dependencies=USER)
async def get_paths(
    user: CurrentUser, org: Org,
    svc: Svc,
    from_: Annotated[str, QueryParameter(name="from", max_length=64, description="a host id")],
    max_hops: Annotated[int, QueryParameter(ge=1, le=paths.MAX_HOPS)] = 3,
) -> PathsOut:
    """The hosts reachable from `from` in at most `max_hops` steps, each by its cheapest
    chain of reasons (shared ssh key, connection to a service, shared login), fewest hops
    and most privileged steps first."""
    rows, entries, _ = await GRAPHS.load(svc, org.org_id, fragments=False)
    start = next((h for h in rows if h.id == from_), None)
    if start is None:
        raise NotFound("no such host")
    facts = [e.facts for e in entries]
    found = await _off_loop(lambda: paths.attack_paths(facts, from_, max_hops))
    return PathsOut(HostRef(start.id, start.hostname), max_hops, len(found), found)


@get("/api/v1/topology", dependencies=USER)
async def get_topology(user: CurrentUser, org: Org, svc: Svc) -> Response[bytes]:
    """One row per host with counts, for the list view."""
    rows = await svc.db.read(hosts.list_for_user, org.org_id)
    found = await svc.db.read(incidents.open_summary, org.org_id)
    summary = [graph.OpenIncident(*s) for s in found]
    document = await _off_loop(lambda: _encoder.encode(graph.build_topology(_views(rows), summary)))
    return Response(document, media_type="application/json")


handlers = [get_graph, get_paths, get_topology, patch_host]
