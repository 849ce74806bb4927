"""GET /api/v1/graph (Cytoscape elements) and /api/v1/topology, from each host's latest state."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Response, get, patch
from litestar.params import FromPath, JSONBody, QueryParameter

from kefal_lite import graph, graphs, paths
from kefal_lite.api.deps import USER, CurrentUser, Org, Svc, audit_entry
from kefal_lite.api.docs import documented
from kefal_lite.errors import NotFound
from kefal_lite.store import audit, hosts, incidents
from kefal_lite.store import estate as estate_store

_encoder = msgspec.json.Encoder()


# The graph and topology are served as bytes assembled from cached per-host parts, so their
# handlers cannot return these; they are what the documents hold, for /schema.
class Element(msgspec.Struct, frozen=True):
    data: dict[str, Any]  # id, type, label... (edges: source, target); see docs/api.md


class GraphDocument(msgspec.Struct, frozen=True):
    nodes: list[Element]
    edges: list[Element]


class TopologyHost(msgspec.Struct, frozen=True):
    host_id: str
    hostname: str
    os: str | None
    kernel: str | None
    status: str
    last_seen_at: str | None
    agent_version: str | None
    services: int
    ports: int
    identities: int
    open_incidents: int
    max_severity: str | None


class Topology(msgspec.Struct, frozen=True):
    hosts: list[TopologyHost]


class HostGroup(msgspec.Struct, frozen=True):
    host_id: str
    group: str | None


@get("/api/v1/graph", dependencies=USER,
     operation_class=documented(response={"application/json": GraphDocument}))  # fmt: skip
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
        document = await svc.graphs.estate_document(org.org_id)
    else:
        document = await svc.graphs.document(org.org_id, host_id)
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
) -> HostGroup:
    """Set or clear a host's group (prod, dev, ...): the estate graph draws the host in it,
    and the lateral pack compares keys across groups."""
    group = data.group.strip() if data.group is not None else None
    entry = audit_entry(svc, user, org, "host_group_set", host_id, group=group)
    if not await svc.db.write(
        audit.audited, entry, estate_store.set_group, org.org_id, host_id, group
    ):
        raise NotFound("no such host")
    return HostGroup(host_id, group)


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
    rows, entries, _ = await svc.graphs.load(org.org_id, fragments=False)
    start = next((h for h in rows if h.id == from_), None)
    if start is None:
        raise NotFound("no such host")
    facts = [e.facts for e in entries]
    found = await svc.graphs.off_loop(lambda: paths.attack_paths(facts, from_, max_hops))
    return PathsOut(HostRef(start.id, start.hostname), max_hops, len(found), found)


@get("/api/v1/topology", dependencies=USER,
     operation_class=documented(response={"application/json": Topology}))  # fmt: skip
async def get_topology(user: CurrentUser, org: Org, svc: Svc) -> Response[bytes]:
    """One row per host with counts, for the list view."""
    rows = await svc.db.read(hosts.list_for_user, org.org_id)
    found = await svc.db.read(incidents.open_summary, org.org_id)
    summary = [graph.OpenIncident(*s) for s in found]
    document = await svc.graphs.off_loop(
        lambda: _encoder.encode(graph.build_topology(graphs.views(rows), summary))
    )
    return Response(document, media_type="application/json")


handlers = [get_graph, get_paths, get_topology, patch_host]
