"""The estate view: one node per host, host-to-host edges, compound nodes per group. Pure.

At 200 hosts the per-host graph is ~4,000 nodes nobody can read; this view draws what a
person asks of an estate first: which hosts, how exposed, how bad, and what links them.

Nodes: `group` (compound: the user-set group of a host, else its IPv4 /24 or IPv6 /64),
`host` (with `parent`, `exposed_ports` for its size, `max_severity` for its colour) and
`credential` (a key or account shared by more than HUB_AT hosts: one hub node instead of
a clique of n(n-1)/2 edges; a deploy key on 1,000 hosts would otherwise be 500,000).
Edges: `connects` (host -> host, by paths.connection_steps, so the graph and the attack
paths agree), `shares_key` and `shares_login` (between two hosts, ids in sorted order),
`key_on` and `login_on` (hub -> host).
"""

from __future__ import annotations

import functools
import ipaddress
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import msgspec

from kefal_lite.detect.engine import is_loopback
from kefal_lite.detect.model import SEVERITY_RANK
from kefal_lite.paths import HostFacts, connection_steps

HUB_AT = 5  # a credential on more hosts than this is drawn as one hub node


class EstateHost(msgspec.Struct, frozen=True):
    facts: HostFacts
    os: str | None
    status: str
    last_seen_at: str
    group: str | None  # set by a person; None: grouped by subnet
    open_incidents: int
    max_severity: str | None


@functools.lru_cache(maxsize=65_536)
def subnet(ips: tuple[str, ...]) -> str | None:
    """The network a host is first addressed in: IPv4 /24 before IPv6 /64, skipping
    loopback, link-local and unspecified addresses."""
    v6 = None
    for text in ips:
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            continue
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
            continue
        if ip.version == 4:
            return str(ipaddress.ip_network(f"{ip}/24", strict=False))
        v6 = v6 or str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return v6


def group_of(host: EstateHost) -> tuple[str, str]:
    """(kind, name) of the compound node a host is drawn in."""
    if host.group:
        return "group", host.group
    net = subnet(host.facts.ips)
    return ("subnet", net) if net else ("subnet", "no address")


def _worst(a: str | None, b: str | None) -> str | None:
    if b is None:
        return a
    return b if a is None or SEVERITY_RANK[b] > SEVERITY_RANK[a] else a


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def build(hosts: Sequence[EstateHost]) -> dict[str, list[dict[str, Any]]]:
    """Cytoscape elements of the estate view, in a deterministic order."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    host_nodes: list[dict[str, Any]] = []
    for h in hosts:
        f = h.facts
        kind, name = group_of(h)
        gid = f"group:{kind}:{name}"
        g = groups.get((kind, name))
        if g is None:
            g = groups[(kind, name)] = {"id": gid, "label": name, "type": "group",
                                        "kind": kind, "hosts": 0, "open_incidents": 0,
                                        "max_severity": None}  # fmt: skip
        g["hosts"] += 1
        g["open_incidents"] += h.open_incidents
        g["max_severity"] = _worst(g["max_severity"], h.max_severity)
        exposed = {p for p, _, addr in f.listening if is_loopback(addr) is False}
        host_nodes.append({"data": {
            "id": f"host:{f.host_id}", "label": f.hostname, "type": "host", "parent": gid,
            "host_id": f.host_id, "hostname": f.hostname, "os": h.os, "status": h.status,
            "last_seen_at": h.last_seen_at, "ip_addresses": list(f.ips), "group": h.group,
            "open_incidents": h.open_incidents, "max_severity": h.max_severity,
            "exposed_ports": len(exposed), "ports": len({p for p, _, _ in f.listening}),
            "services": len({proc for _, proc, _ in f.listening if proc}),
        }})  # fmt: skip
    nodes.extend({"data": g} for _, g in sorted(groups.items()))
    nodes.extend(host_nodes)

    facts = [h.facts for h in hosts]
    links: dict[tuple[str, str], list[int]] = defaultdict(list)
    for src, steps in connection_steps(facts).items():
        for step in steps:
            links[(src, step.to_host_id)].append(step.port or 0)
    for (src, dst), ports in sorted(links.items()):
        ports = sorted(set(ports))
        label = ",".join(map(str, ports[:3])) + ("…" if len(ports) > 3 else "")
        edges.append({"data": {"id": f"connects|host:{src}|host:{dst}", "source": f"host:{src}",
                               "target": f"host:{dst}", "type": "connects", "ports": ports,
                               "label": label}})  # fmt: skip

    key_hosts: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    login_hosts: dict[str, set[str]] = defaultdict(set)
    for f in facts:
        for account, fingerprint in f.keys:
            key_hosts[fingerprint][f.host_id].add(account)
        for account in f.logins:
            login_hosts[account].add(f.host_id)
    shared_keys: dict[tuple[str, str], dict[str, Any]] = {}
    for fingerprint, on in sorted(key_hosts.items()):
        if len(on) < 2:
            continue
        if len(on) > HUB_AT:
            hub = f"credential:key:{fingerprint}"
            root = sum("root" in accounts for accounts in on.values())
            nodes.append({"data": {"id": hub, "type": "credential", "kind": "ssh_key",
                                   "label": f"{fingerprint[:19]}… on {len(on)} hosts",
                                   "fingerprint": fingerprint, "hosts": len(on), "root_on": root,
                                   "open_incidents": 0, "max_severity": None}})  # fmt: skip
            for hid, accounts in sorted(on.items()):
                edges.append({"data": {"id": f"key_on|{hub}|host:{hid}", "source": hub,
                                       "target": f"host:{hid}", "type": "key_on",
                                       "accounts": sorted(accounts),
                                       "root": "root" in accounts}})  # fmt: skip
            continue
        ids = sorted(on)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                e = shared_keys.setdefault((a, b), {"fingerprints": [], "root": False})
                e["fingerprints"].append(fingerprint)
                e["root"] = e["root"] or "root" in on[a] or "root" in on[b]
    for (a, b), e in sorted(shared_keys.items()):
        edges.append({"data": {"id": f"shares_key|host:{a}|host:{b}", "source": f"host:{a}",
                               "target": f"host:{b}", "type": "shares_key", **e}})  # fmt: skip
    shared_logins: dict[tuple[str, str], list[str]] = defaultdict(list)
    for account, on_hosts in sorted(login_hosts.items()):
        if len(on_hosts) < 2:
            continue
        if len(on_hosts) > HUB_AT:
            hub = f"credential:login:{account}"
            nodes.append({"data": {"id": hub, "type": "credential", "kind": "login",
                                   "label": f"{account} on {len(on_hosts)} hosts",
                                   "account": account, "hosts": len(on_hosts),
                                   "open_incidents": 0, "max_severity": None}})  # fmt: skip
            for hid in sorted(on_hosts):
                edges.append({"data": {"id": f"login_on|{hub}|host:{hid}", "source": hub,
                                       "target": f"host:{hid}", "type": "login_on"}})  # fmt: skip
            continue
        ids = sorted(on_hosts)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                shared_logins[_pair(a, b)].append(account)
    for (a, b), names in sorted(shared_logins.items()):
        edges.append({"data": {"id": f"shares_login|host:{a}|host:{b}", "source": f"host:{a}",
                               "target": f"host:{b}", "type": "shares_login",
                               "accounts": names}})  # fmt: skip
    return {"nodes": nodes, "edges": edges}
