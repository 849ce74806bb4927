"""MCP servers over HTTP: the estate-wide list (filters, tenants, unconfigured launchers),
the incidents the pack opens on ingest with their remediation, and the graph's nodes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from litestar.testing import TestClient

from kefal_lite import graph
from kefal_lite.clock import FrozenClock
from kefal_lite.snapshot import McpServer
from tests.builders import T0, proc
from tests.conftest import enroll, login, register, send

CFG = "/home/alice/.config/Claude/claude_desktop_config.json"


def srv(name: str, args: list[str], **kw: Any) -> dict[str, Any]:
    return {"client": kw.pop("client", "claude-desktop"), "name": name, "config_path": CFG,
            "command": "npx", "args": args, "user": "alice", **kw}  # fmt: skip


SERVERS = [
    srv("fs", ["-y", "@modelcontextprotocol/server-filesystem", "/"], paths=["/"]),
    srv("memory", ["-y", "@modelcontextprotocol/server-memory"]),
    srv("gh", ["-y", "@modelcontextprotocol/server-github"], client="cursor",
        env_names=["GITHUB_TOKEN"], secrets_inline=True, secret_in=["env:GITHUB_TOKEN"]),
]  # fmt: skip
PROCS = [
    proc("node", "alice", pid=700, cmdline="node /home/alice/.npm/_npx/ab/node_modules/.bin/"
         "mcp-server-filesystem /"),
    proc("uvx", "bob", pid=710, cmdline="uvx mcp-server-fetch"),
]  # fmt: skip


def setup(c: TestClient[Any], clock: FrozenClock, user: str = "alice") -> dict[str, str]:
    register(c, user)
    session = login(c, user)
    clock.set(T0 + timedelta(seconds=5))
    agent = enroll(c, user)
    r = send(c, agent, 0, hostname=f"{user}-laptop", mcp_servers=SERVERS, add_processes=PROCS)
    assert r.status_code == 200, r.text
    return session


def test_list_filters_and_links_running_processes(client: TestClient[Any],
                                                  clock: FrozenClock) -> None:  # fmt: skip
    session = setup(client, clock)
    page = client.get("/api/v1/mcp-servers", headers=session).json()
    assert page["total"] == 4
    items = {(i["client"], i["name"]): i for i in page["items"]}
    fs = items[("claude-desktop", "fs")]
    assert fs["configured"] and fs["risk"]["level"] == "high"
    assert {r["code"] for r in fs["risk"]["reasons"]} == {"fs_root", "fs_write"}
    assert [p["pid"] for p in fs["running"]] == [700]
    assert page["items"][0]["name"] == "fs"  # riskiest first
    fetch = items[(None, "mcp-server-fetch")]
    assert not fetch["configured"] and fetch["user"] == "bob" and fetch["command"] == "uvx"
    assert [p["pid"] for p in fetch["running"]] == [710]
    gh = items[("cursor", "gh")]
    assert gh["secrets_inline"] and gh["env_names"] == ["GITHUB_TOKEN"]
    high = client.get("/api/v1/mcp-servers?risk=high", headers=session).json()
    assert [i["name"] for i in high["items"]] == ["fs"]
    cursor = client.get("/api/v1/mcp-servers?client=cursor", headers=session).json()
    assert [i["name"] for i in cursor["items"]] == ["gh"]
    host_id = fs["host_id"]
    one = client.get(f"/api/v1/mcp-servers?host_id={host_id}", headers=session).json()
    assert one["total"] == 4
    r = client.get("/api/v1/mcp-servers?risk=extreme", headers=session)
    assert r.status_code == 400 and isinstance(r.json()["detail"], (str, list))


def test_another_tenant_sees_none_of_it(open_client: TestClient[Any],
                                        clock: FrozenClock) -> None:  # fmt: skip
    alice = setup(open_client, clock, "alice")
    host_id = open_client.get("/api/v1/mcp-servers", headers=alice).json()["items"][0]["host_id"]
    register(open_client, "bob")
    bob = login(open_client, "bob")
    assert open_client.get("/api/v1/mcp-servers", headers=bob).json() == {"items": [], "total": 0}
    r = open_client.get(f"/api/v1/mcp-servers?host_id={host_id}", headers=bob)
    assert r.status_code == 404 and r.json()["detail"] == "no such host"
    assert open_client.get("/api/v1/mcp-servers").status_code == 401


def test_ingest_opens_pack_incidents_with_the_entry_to_change(client: TestClient[Any],
                                                              clock: FrozenClock) -> None:  # fmt: skip
    session = setup(client, clock)
    incidents = client.get("/api/v1/incidents", headers=session).json()
    items = incidents["items"] if isinstance(incidents, dict) else incidents
    mine = {i["subject"]: i for i in items if i["subject"].startswith("mcp:")}
    assert set(mine) == {"mcp:claude-desktop:alice:fs", "mcp:cursor:alice:gh"}
    assert mine["mcp:claude-desktop:alice:fs"]["invariant_id"] == "mcp_broad_filesystem_scope"
    assert mine["mcp:cursor:alice:gh"]["invariant_id"] == "mcp_inline_secret"
    one = client.get(f"/api/v1/incidents/{mine['mcp:claude-desktop:alice:fs']['id']}",
                     headers=session).json()  # fmt: skip
    text = msgspec.json.encode(one).decode()
    assert "mcpServers > fs" in text and "PROJECT_DIR" in text


def test_graph_has_mcp_nodes_linked_to_host_and_identity(client: TestClient[Any],
                                                         clock: FrozenClock) -> None:  # fmt: skip
    session = setup(client, clock)
    g = client.get("/api/v1/graph?view=full", headers=session).json()
    nodes = {n["data"]["id"]: n["data"] for n in g["nodes"]}
    edges = {(e["data"]["source"], e["data"]["target"], e["data"]["type"]) for e in g["edges"]}
    mcp_nodes = {k: v for k, v in nodes.items() if v["type"] == "mcp_server"}
    host = next(k for k, v in nodes.items() if v["type"] == "host")
    hid = nodes[host]["host_id"]
    fs = f"mcp:{hid}:claude-desktop:alice:fs"
    assert set(mcp_nodes) == {fs, f"mcp:{hid}:claude-desktop:alice:memory",
                              f"mcp:{hid}:cursor:alice:gh",
                              f"mcp:{hid}:run:uvx:mcp-server-fetch"}  # fmt: skip
    assert mcp_nodes[fs]["risk_level"] == "high" and mcp_nodes[fs]["running_pids"] == [700]
    assert mcp_nodes[fs]["open_incidents"] == 1 and mcp_nodes[fs]["max_severity"] == "high"
    assert (host, fs, "has_mcp") in edges
    assert (f"identity:{hid}:alice", fs, "configures") in edges
    fetch = f"mcp:{hid}:run:uvx:mcp-server-fetch"
    assert not mcp_nodes[fetch]["configured"]
    assert (f"identity:{hid}:bob", fetch, "runs_as") in edges
    for s, t, _ in edges:
        assert s in nodes and t in nodes


def test_graph_fragment_without_mcp_is_unchanged() -> None:
    view = graph.HostView("h1", "web", "linux", "6", "online", "2026-01-01T00:00:00Z",
                          graph.GraphSnapshot(processes=[]))  # fmt: skip
    g = graph.build_graph([view], [])
    assert [n["data"]["type"] for n in g["nodes"]] == ["host"] and g["edges"] == []
    server = msgspec.convert(srv("x", ["mcp-shell"]), McpServer)
    snap = graph.DECODER.decode(msgspec.json.encode({"mcp_servers": [server]}))
    view = graph.HostView("h1", "web", "linux", "6", "online", "2026-01-01T00:00:00Z", snap)
    g = graph.build_graph([view], [])
    types = sorted(n["data"]["type"] for n in g["nodes"])
    assert types == ["host", "identity", "mcp_server"]
    assert g["nodes"][-1]["data"]["reasons"] == ["shell"] or any(
        n["data"].get("reasons") == ["shell"] for n in g["nodes"]
    )
