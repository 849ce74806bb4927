"""MCP server nodes of one host's graph fragment (graph.py calls this). Pure.

`mcp_server` nodes hang off their host (`has_mcp`) and off the identity whose
configuration holds them (`configures`); a process running an MCP launcher that no
configuration names becomes a node with `configured: false`, linked to the identity
running it (`runs_as`). Ids derive from host id, client, account and name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec

from kefal_lite.detect import mcp


class GraphMcp(msgspec.Struct, frozen=True, gc=False):
    """The parts of a snapshot's McpServer the graph reads."""

    client: str
    name: str
    transport: str = "stdio"
    command: str | None = None
    args: list[str] = []
    url: str | None = None
    paths: list[str] = []
    secrets_inline: bool = False
    user: str | None = None


class ProcLike(Protocol):
    @property
    def pid(self) -> int: ...
    @property
    def user(self) -> str | None: ...
    @property
    def cmdline(self) -> str | None: ...


Elements = list[dict[str, Any]]


def _edge(source: str, target: str, kind: str) -> dict[str, Any]:
    return {"data": {"id": f"{kind}|{source}|{target}", "source": source, "target": target,
                     "type": kind}}  # fmt: skip


def elements(hid: str, host_node: str, servers: Sequence[GraphMcp], procs: Sequence[ProcLike],
             identity: Callable[[str], str],
             marks: dict[str, tuple[int, str | None]]) -> tuple[Elements, Elements]:  # fmt: skip
    nodes: Elements = []
    edges: Elements = []
    if not servers and not procs:
        return nodes, edges
    running = mcp.link(servers, procs)
    users = {p.pid: p.user for p in procs}
    seen: set[str] = set()
    for i, m in enumerate(servers):
        subject = mcp.subject_value(m)
        node_id = f"mcp:{hid}:{subject}"
        if node_id in seen:
            continue
        seen.add(node_id)
        rk = mcp.risk(m)
        count, worst = marks.get(f"mcp:{subject}", (0, None))
        nodes.append({"data": {
            "id": node_id, "label": m.name, "type": "mcp_server", "open_incidents": count,
            "max_severity": worst, "host_id": hid, "client": m.client, "user": m.user,
            "transport": m.transport, "configured": True, "risk_score": rk.score,
            "risk_level": rk.level, "reasons": [r.code for r in rk.reasons],
            "running_pids": running.by_server.get(i, []),
        }})  # fmt: skip
        edges.append(_edge(host_node, node_id, "has_mcp"))
        if m.user:
            edges.append(_edge(identity(m.user), node_id, "configures"))
    for pid, kind, package in running.unconfigured:
        node_id = f"mcp:{hid}:run:{kind}:{package}"
        if node_id not in seen:
            seen.add(node_id)
            nodes.append({"data": {
                "id": node_id, "label": package, "type": "mcp_server", "open_incidents": 0,
                "max_severity": None, "host_id": hid, "client": None, "user": users.get(pid),
                "transport": "stdio", "configured": False, "launcher": kind,
                "running_pids": [pid],
            }})  # fmt: skip
            edges.append(_edge(host_node, node_id, "has_mcp"))
        else:
            for n in nodes:
                if n["data"]["id"] == node_id:
                    n["data"]["running_pids"].append(pid)
        user = users.get(pid)
        if user:
            edge = _edge(identity(user), node_id, "runs_as")
            if edge not in edges:
                edges.append(edge)
    return nodes, edges
