"""The estate as Cytoscape elements and as a compact host list. Pure: no I/O.

Nodes: `host`, `service` (a process that owns a listening port), `port`,
`identity` (a user who is logged in or runs a service). Edges: host->service
`runs`, service->port `listens` (host->port when the owner is unknown),
identity->host `logged_in`, identity->service `runs_as`, host->host `connects`
when one host's outbound connection targets another's address and listening
port. Ids derive from host id + kind + name, so they are stable across calls
and restarts; every node carries `open_incidents` and `max_severity`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from kefal_lite import graph_mcp
from kefal_lite import snapshot as wire
from kefal_lite.detect.engine import is_loopback, norm_name
from kefal_lite.detect.model import SEVERITY_RANK
from kefal_lite.paths import HostFacts


class _Proc(msgspec.Struct, frozen=True, gc=False):
    name: str
    user: str | None = None
    pid: int = 0
    cmdline: str | None = None  # MCP launchers (graph_mcp)


class _Port(msgspec.Struct, frozen=True, gc=False):
    port: int
    protocol: str = "tcp"
    process: str | None = None
    address: str | None = None


class _Conn(msgspec.Struct, frozen=True, gc=False):
    remote_address: str
    remote_port: int
    process: str | None = None


class _Key(msgspec.Struct, frozen=True, gc=False):
    user: str
    fingerprint: str


class FactsSnapshot(msgspec.Struct, frozen=True):
    """What paths and the estate view read: decoding skips the processes, most of a body."""

    ip_addresses: list[str] = []
    listening_ports: list[_Port] = []
    logged_in_users: list[str] = []
    connections: list[_Conn] = []
    ssh_authorized_keys: list[_Key] = []


class GraphSnapshot(FactsSnapshot, frozen=True):
    """The parts of a snapshot the graph reads; decoding skips everything else."""

    processes: list[_Proc] = []
    agent_version: str | None = None
    mcp_servers: list[graph_mcp.GraphMcp] = []


DECODER = msgspec.json.Decoder(GraphSnapshot)
FACTS_DECODER = msgspec.json.Decoder(FactsSnapshot)
# HostFacts at rest (hosts.facts): a few hundred bytes a host, ~2 us to decode
FACTS_BLOB = msgspec.msgpack.Encoder()
FACTS_FROM_BLOB = msgspec.msgpack.Decoder(HostFacts)


class HostView(msgspec.Struct, frozen=True):
    host_id: str
    hostname: str
    os: str | None
    kernel: str | None
    status: str
    last_seen_at: str
    snapshot: GraphSnapshot | None


class OpenIncident(msgspec.Struct, frozen=True):
    host_id: str
    subject: str
    severity: str


def _max(a: str | None, b: str) -> str:
    return b if a is None or SEVERITY_RANK[b] > SEVERITY_RANK[a] else a


class _Overlay:
    """Open incidents per node id and per host."""

    def __init__(self, incidents: Iterable[OpenIncident]) -> None:
        self.by_host: dict[str, list[OpenIncident]] = defaultdict(list)
        for inc in incidents:
            self.by_host[inc.host_id].append(inc)

    def host(self, host_id: str) -> tuple[int, str | None]:
        worst: str | None = None
        for inc in self.by_host.get(host_id, ()):
            worst = _max(worst, inc.severity)
        return len(self.by_host.get(host_id, ())), worst

    def subjects(self, host_id: str) -> dict[str, tuple[int, str | None]]:
        out: dict[str, tuple[int, str | None]] = {}
        for inc in self.by_host.get(host_id, ()):
            count, worst = out.get(inc.subject, (0, None))
            out[inc.subject] = (count + 1, _max(worst, inc.severity))
        return out


Marks = tuple[int, str | None]  # open incidents, worst severity


def _edge(source: str, target: str, kind: str, suffix: str = "", **data: Any) -> dict[str, Any]:
    return {"data": {"id": f"{kind}|{source}|{target}{suffix}", "source": source,
                     "target": target, "type": kind, **data}}  # fmt: skip


Elements = list[dict[str, Any]]


_EXPOSURE = {True: "loopback", False: "exposed", None: "unknown"}
_NONE: Marks = (0, None)


def _host_elements(view: HostView, overlay: _Overlay) -> tuple[Elements, Elements]:
    # Dict literals rather than helper calls: a 1,000-host estate is 60,000 elements.
    hid = view.host_id
    host_node = f"host:{hid}"
    snap = view.snapshot
    count, worst = overlay.host(hid)
    nodes: Elements = [{"data": {
        "id": host_node, "label": view.hostname, "type": "host", "open_incidents": count,
        "max_severity": worst, "host_id": hid, "hostname": view.hostname, "os": view.os,
        "kernel": view.kernel, "status": view.status, "last_seen_at": view.last_seen_at,
        "ip_addresses": snap.ip_addresses if snap else [],
    }}]  # fmt: skip
    edges: Elements = []
    if snap is None:
        return nodes, edges
    marks = overlay.subjects(hid) if count else {}
    owners = {norm_name(lp.process): lp.process for lp in snap.listening_ports if lp.process}
    users_of: dict[str, set[str]] = {name: set() for name in owners}
    for proc in snap.processes:
        if proc.user:
            users = users_of.get(norm_name(proc.name))
            if users is not None:
                users.add(proc.user)
    identities: dict[str, str] = {}

    def identity(user: str) -> str:
        node_id = identities.get(user)
        if node_id is None:
            node_id = identities[user] = f"identity:{hid}:{user}"
            c, w = marks.get(f"user:{user}", _NONE)
            nodes.append({"data": {"id": node_id, "label": user, "type": "identity",
                                   "open_incidents": c, "max_severity": w, "host_id": hid,
                                   "user": user}})  # fmt: skip
        return node_id

    services: set[str] = set()
    for lp in snap.listening_ports:
        where = lp.address if lp.address is not None else "?"
        port_id = f"port:{hid}:{lp.port}/{lp.protocol}@{where}"
        c, w = marks.get(f"port:{lp.port}/{lp.protocol}", _NONE) if marks else _NONE
        nodes.append({"data": {
            "id": port_id, "label": f"{lp.port}/{lp.protocol} on {where}", "type": "port",
            "open_incidents": c, "max_severity": w, "host_id": hid, "port": lp.port,
            "protocol": lp.protocol, "address": lp.address,
            "exposure": _EXPOSURE[is_loopback(lp.address)],
        }})  # fmt: skip
        if not lp.process:
            edges.append(_edge(host_node, port_id, "listens"))
            continue
        name = norm_name(lp.process)
        svc_id = f"service:{hid}:{name}"
        if name not in services:
            services.add(name)
            c, w = marks.get(f"process:{name}", _NONE) if marks else _NONE
            nodes.append({"data": {"id": svc_id, "label": lp.process, "type": "service",
                                   "open_incidents": c, "max_severity": w, "host_id": hid,
                                   "process": lp.process}})  # fmt: skip
            edges.append(_edge(host_node, svc_id, "runs"))
            for user in sorted(users_of[name]):
                edges.append(_edge(identity(user), svc_id, "runs_as"))
        edges.append(_edge(svc_id, port_id, "listens"))
    for user in sorted(set(snap.logged_in_users)):
        edges.append(_edge(identity(user), host_node, "logged_in"))
    mcp_nodes, mcp_edges = graph_mcp.elements(hid, host_node, snap.mcp_servers, snap.processes,
                                              identity, marks)  # fmt: skip
    return nodes + mcp_nodes, edges + mcp_edges


class Fragment(msgspec.Struct, frozen=True):
    """One host's part of the graph, already encoded, with what `connects` edges need.
    Cached per host by the API while its snapshot and incident marks do not change."""

    host_node: bytes  # the host node alone, for when the host is only a neighbour
    nodes: bytes  # comma-separated encoded elements, no brackets
    edges: bytes
    ips: tuple[str, ...]
    ports: frozenset[int]
    conns: tuple[tuple[str, int, str | None], ...]


_encoder = msgspec.json.Encoder()


def _join(elements: Elements) -> bytes:
    return b",".join(_encoder.encode(e) for e in elements)


def fragment(view: HostView, incidents: Iterable[OpenIncident]) -> Fragment:
    nodes, edges = _host_elements(view, _Overlay(incidents))
    snap = view.snapshot
    return Fragment(
        host_node=_encoder.encode(nodes[0]),
        nodes=_join(nodes),
        edges=_join(edges),
        ips=tuple(snap.ip_addresses) if snap else (),
        ports=frozenset(lp.port for lp in snap.listening_ports) if snap else frozenset(),
        conns=tuple((c.remote_address, c.remote_port, c.process) for c in snap.connections)
        if snap
        else (),
    )


def assemble(fragments: Sequence[tuple[str, Fragment]], host_id: str | None = None) -> bytes:
    """The Cytoscape elements document from per-host fragments, `connects` edges computed
    across hosts; with `host_id`, that host whole and its neighbours as host nodes."""
    owner_of_ip: dict[str, str] = {}
    for hid, frag in fragments:
        for ip in frag.ips:
            owner_of_ip.setdefault(ip, hid)
    ports = {hid: frag.ports for hid, frag in fragments}
    connects: dict[tuple[str, str, int], str | None] = {}
    for hid, frag in fragments:
        for address, port, process in frag.conns:
            target = owner_of_ip.get(address)
            if target and target != hid and port in ports[target]:
                connects.setdefault((hid, target, port), process)
    wanted = None
    if host_id is not None:
        wanted = {host_id}
        wanted.update(t for (s, t, _) in connects if s == host_id)
        wanted.update(s for (s, t, _) in connects if t == host_id)
    node_parts: list[bytes] = []
    edge_parts: list[bytes] = []
    for hid, frag in fragments:
        if wanted is not None and hid not in wanted:
            continue
        if wanted is not None and hid != host_id:
            node_parts.append(frag.host_node)  # a neighbour appears as its host node only
            continue
        node_parts.append(frag.nodes)
        if frag.edges:
            edge_parts.append(frag.edges)
    for (src, dst, port), process in sorted(connects.items(), key=lambda kv: kv[0]):
        if wanted is not None and host_id not in (src, dst):
            continue
        edge = _edge(
            f"host:{src}", f"host:{dst}", "connects", f"|{port}", port=port, process=process
        )
        edge_parts.append(_encoder.encode(edge))
    return b'{"nodes":[' + b",".join(node_parts) + b'],"edges":[' + b",".join(edge_parts) + b"]}"


def build_graph(views: Sequence[HostView], incidents: Iterable[OpenIncident],
                host_id: str | None = None) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """The whole graph as Python objects (tests, offline use); the API assembles cached
    fragments into the same document."""
    by_host: dict[str, list[OpenIncident]] = defaultdict(list)
    for inc in incidents:
        by_host[inc.host_id].append(inc)
    frags = [(v.host_id, fragment(v, by_host.get(v.host_id, []))) for v in views]
    result: dict[str, list[dict[str, Any]]] = msgspec.json.decode(assemble(frags, host_id))
    return result


def build_topology(views: Sequence[HostView], incidents: Iterable[OpenIncident]) -> dict[str, Any]:
    overlay = _Overlay(incidents)
    hosts = []
    for v in views:
        snap = v.snapshot
        count, worst = overlay.host(v.host_id)
        services: set[str] = set()
        identities: set[str] = set()
        if snap:
            services = {norm_name(lp.process) for lp in snap.listening_ports if lp.process}
            identities = set(snap.logged_in_users)
            identities.update(
                p.user for p in snap.processes if p.user and norm_name(p.name) in services
            )
        hosts.append({
            "host_id": v.host_id, "hostname": v.hostname, "os": v.os, "kernel": v.kernel,
            "status": v.status, "last_seen_at": v.last_seen_at,
            "agent_version": snap.agent_version if snap else None,
            "services": len(services), "ports": len(snap.listening_ports) if snap else 0,
            "identities": len(identities), "open_incidents": count, "max_severity": worst,
        })  # fmt: skip
    return {"hosts": hosts}


def facts(host_id: str, hostname: str, snap: FactsSnapshot | wire.Snapshot | None) -> HostFacts:
    """What attack paths and the estate view need of a host: cheap next to its fragment.
    Ingest takes them from the snapshot it decoded anyway (FACTS_BLOB, store/estate.py);
    the graph from a stored body when none were stored for the host's latest snapshot."""
    if snap is None:
        return HostFacts(host_id, hostname)
    return HostFacts(
        host_id,
        hostname,
        ips=tuple(snap.ip_addresses),
        listening=tuple((lp.port, lp.process, lp.address) for lp in snap.listening_ports),
        conns=tuple((c.remote_address, c.remote_port, c.process) for c in snap.connections),
        keys=tuple((k.user, k.fingerprint) for k in snap.ssh_authorized_keys),
        logins=tuple(sorted(set(snap.logged_in_users))),
    )
