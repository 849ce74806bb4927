"""GET /api/v1/mcp-servers: the MCP servers of the caller's hosts, from each host's latest
snapshot, with their risk, the reasons for it and the processes running them."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import get
from litestar.params import QueryParameter

from kefal_lite.api.deps import USER, CurrentUser, Org, Svc
from kefal_lite.detect import mcp
from kefal_lite.errors import NotFound
from kefal_lite.snapshot import McpServer
from kefal_lite.store import hosts
from kefal_lite.store.hosts import Host

Level = Literal["low", "medium", "high", "critical"]


class _Proc(msgspec.Struct, frozen=True, gc=False):
    pid: int
    name: str
    user: str | None = None
    cmdline: str | None = None


class _Snap(msgspec.Struct, frozen=True):
    """The parts of a stored snapshot this list reads; decoding skips the rest."""

    processes: list[_Proc] = []
    mcp_servers: list[McpServer] = []


_DECODER = msgspec.json.Decoder(_Snap)


class Reason(msgspec.Struct, frozen=True):
    code: str
    weight: int
    text: str


class Risk(msgspec.Struct, frozen=True):
    score: int
    level: Level
    reasons: list[Reason]


class Running(msgspec.Struct, frozen=True):
    pid: int
    name: str
    user: str | None
    cmdline: str | None


class McpServerItem(msgspec.Struct, frozen=True):
    host_id: str
    hostname: str
    # false: a process runs an MCP server through a known launcher and no client on the
    # host is configured with it (name is then the package or image, command the launcher)
    configured: bool
    client: str | None
    name: str
    user: str | None
    transport: str
    command: str | None
    args: list[str]
    url: str | None
    paths: list[str]
    env_names: list[str]
    secrets_inline: bool
    secret_in: list[str]
    config_path: str | None
    risk: Risk
    running: list[Running]


class McpServerPage(msgspec.Struct, frozen=True):
    items: list[McpServerItem]
    total: int


def _risk(rk: mcp.Risk) -> Risk:
    return Risk(rk.score, rk.level, [Reason(r.code, r.weight, r.text) for r in rk.reasons])  # type: ignore[arg-type]


def _run(p: _Proc) -> Running:
    return Running(p.pid, p.name, p.user, p.cmdline)


def host_servers(host: Host) -> list[McpServerItem]:
    """One host's configured servers and unconfigured running ones."""
    if not host.latest:
        return []
    try:
        snap = _DECODER.decode(host.latest)
    except msgspec.DecodeError:  # stored as ingested, so it decoded once already
        return []
    by_pid = {p.pid: p for p in snap.processes}
    running = mcp.link(snap.mcp_servers, snap.processes)
    out = []
    for i, m in enumerate(snap.mcp_servers):
        pids = running.by_server.get(i, [])
        out.append(McpServerItem(
            host.id, host.hostname, True, m.client, m.name, m.user, m.transport, m.command,
            m.args, m.url, m.paths, m.env_names, m.secrets_inline, m.secret_in, m.config_path,
            _risk(mcp.risk(m)), [_run(by_pid[pid]) for pid in pids if pid in by_pid],
        ))  # fmt: skip
    for pid, kind, package in running.unconfigured:
        proc = by_pid[pid]
        argv = mcp.cmd_words(proc.cmdline or "")
        seen = McpServer(client="", name=package, config_path="", command=argv[0] if argv
                         else kind, args=argv[1:256])  # fmt: skip
        out.append(McpServerItem(
            host.id, host.hostname, False, None, package, proc.user, "stdio", kind, seen.args,
            None, [], [], False, [], None, _risk(mcp.risk(seen)), [_run(proc)],
        ))  # fmt: skip
    return out


def _matches(item: McpServerItem, risk: Level | None, client: str | None) -> bool:
    if risk is not None and mcp.LEVEL_RANK[item.risk.level] < mcp.LEVEL_RANK[risk]:
        return False
    return client is None or item.client == client


@get("/api/v1/mcp-servers", dependencies=USER)
async def list_mcp_servers(
    user: CurrentUser, org: Org,
    svc: Svc,
    risk: Annotated[Level | None, QueryParameter(description="this risk level or higher")] = None,
    client: Annotated[
        str | None, QueryParameter(max_length=64, description="claude-desktop, cursor, ...")
    ] = None,
    host_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
) -> McpServerPage:
    """MCP servers on the caller's hosts (and MCP launchers running unconfigured), riskiest
    first, each with its risk score, level and reasons (docs/mcp.md)."""
    if host_id is not None:
        host = await svc.db.read(hosts.get, org.org_id, host_id)
        if host is None:
            raise NotFound("no such host")
        rows = [host]
    else:
        rows = await svc.db.read(hosts.list_for_user, org.org_id)
    items = [i for h in rows for i in host_servers(h) if _matches(i, risk, client)]
    items.sort(key=lambda i: (-i.risk.score, i.hostname, i.client or "~", i.name))
    return McpServerPage(items, len(items))


handlers = [list_mcp_servers]
