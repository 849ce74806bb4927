"""The mcp pack: the risk table (docs/mcp.md), each rule firing and staying quiet on the
near-miss beside it, novelty after learning, processes linked to the server they run, and
the remediation edits run for real on config files."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kefal_lite.detect import packs
from kefal_lite.detect.builtins import BUILTINS
from kefal_lite.detect.engine import Catalog, evaluate
from kefal_lite.detect.mcp import launcher, link, risk, scope_of
from kefal_lite.detect.state import HostState
from kefal_lite.remediate import mcp as rm
from kefal_lite.remediate import templates as t
from kefal_lite.snapshot import McpServer
from tests.builders import T0, proc, snap

CATALOG = Catalog((*BUILTINS, *packs.active()))
MCP_RULES = {inv.id: inv for inv in packs.PACKS["mcp"]}


def server(name: str = "s", *, command: str | None = "npx", args: list[str] | None = None,
           **kw: Any) -> McpServer:  # fmt: skip
    kw.setdefault("client", "claude-desktop")
    kw.setdefault("config_path", "/home/alice/.config/Claude/claude_desktop_config.json")
    kw.setdefault("user", "alice")
    return McpServer(name=name, command=command, args=args or [], **kw)


# (case, server, expected reason codes, expected level)
RISK_TABLE: list[tuple[str, McpServer, set[str], str]] = [
    ("memory server: nothing", server(args=["-y", "@modelcontextprotocol/server-memory"]),
     set(), "low"),
    ("shell server", server(args=["-y", "@mkusaka/mcp-shell-server"]), {"shell"}, "high"),
    ("desktop commander: shell and writes",
     server(args=["-y", "@wonderwhy-er/desktop-commander"]), {"shell", "fs_write"}, "high"),
    ("docker socket mounted",
     server(command="docker", args=["run", "-i", "-v", "/var/run/docker.sock:/var/run/docker.sock",
                                    "mcp/docker"], paths=["/var/run/docker.sock"]),
     {"docker_socket", "fs_write"}, "high"),
    ("postgres dsn", server(args=["-y", "@modelcontextprotocol/server-postgres",
                                  "postgresql://ro@db/app"]), {"database"}, "medium"),
    ("filesystem on a project", server(args=["-y", "@modelcontextprotocol/server-filesystem",
                                             "/home/alice/src/shop"],
                                       paths=["/home/alice/src/shop"]), {"fs_write"}, "medium"),
    ("filesystem read-only on a project",
     server(args=["@modelcontextprotocol/server-filesystem", "--read-only", "/srv/docs"],
            paths=["/srv/docs"]), set(), "low"),
    ("filesystem at /", server(args=["-y", "@modelcontextprotocol/server-filesystem", "/"],
                               paths=["/"]), {"fs_write", "fs_root"}, "high"),
    ("filesystem at ~", server(args=["mcp-server-filesystem", "~"], paths=["~"]),
     {"fs_write", "fs_home"}, "high"),
    ("a home root by path", server(command="node", args=["/opt/x/index.js", "/home/alice"],
                                   paths=["/home/alice"]), {"fs_home"}, "medium"),
    ("windows profile", server(command="npx.cmd", args=["C:\\Users\\alice"],
                               paths=["C:\\Users\\alice"]), {"fs_home"}, "medium"),
    ("windows drive root", server(command="srv.exe", paths=["D:\\"]), {"fs_root"}, "medium"),
    ("/etc", server(command="srv", paths=["/etc"]), {"fs_system"}, "medium"),
    ("~/.ssh", server(command="srv", paths=["~/.ssh"]), {"fs_system"}, "medium"),
    ("inline secret", server(args=["-y", "@modelcontextprotocol/server-memory"],
                             secrets_inline=True), {"inline_secret"}, "medium"),
    ("fetch", server(command="uvx", args=["mcp-server-fetch"]), {"network"}, "low"),
    ("github is not git", server(args=["@modelcontextprotocol/server-github"]), {"network"},
     "low"),
    ("git writes", server(command="uvx", args=["mcp-server-git"]), {"fs_write"}, "medium"),
    ("remote server", server(command=None, transport="http", url="https://mcp.sentry.dev/mcp"),
     {"remote"}, "low"),
    ("loopback http server", server(command=None, transport="sse",
                                    url="http://127.0.0.1:8931/sse"), set(), "low"),
    ("shell with a secret: critical", server(args=["mcp-shell"], secrets_inline=True),
     {"shell", "inline_secret"}, "critical"),
    ("everything: capped at 100",
     server(args=["desktop-commander", "postgres", "mcp-server-fetch"], paths=["/"], secrets_inline=True),
     {"shell", "fs_write", "fs_root", "inline_secret", "database", "network"}, "critical"),
]  # fmt: skip


@pytest.mark.parametrize("case", RISK_TABLE, ids=[c[0] for c in RISK_TABLE])
def test_risk_table(case: tuple[str, McpServer, set[str], str]) -> None:
    _, srv, codes, level = case
    got = risk(srv)
    assert {r.code for r in got.reasons} == codes
    assert got.level == level
    assert got.score == min(100, sum(r.weight for r in got.reasons))
    assert all(r.text for r in got.reasons)


def test_scopes_that_are_not_broad() -> None:
    for path in ("/home/alice/src", "~/projects/x", "/srv/data", "C:\\Users\\alice\\code", "."):
        assert scope_of(path) is None, path


# --- the pack's rules: fire, and the near-miss beside each ------------------------------


def findings(servers: list[McpServer], i: int = 0, state: HostState | None = None,
             **kw: Any) -> tuple[list[Any], HostState]:  # fmt: skip
    s = snap(i, mcp_servers=servers, **kw)
    return evaluate(s, state or HostState(), CATALOG, T0 + timedelta(minutes=i))


def rules_hit(servers: list[McpServer]) -> set[str]:
    out: set[str] = set()
    for f in findings(servers)[0]:
        out.add(f.invariant_id)
        out.update(r["invariant_id"] for r in f.evidence.get("rules", []))
    return out & set(MCP_RULES)


PACK_CASES = {
    "mcp_shell_access": (server(args=["-y", "@wonderwhy-er/desktop-commander"]),
                         server(args=["-y", "@modelcontextprotocol/server-memory"])),
    "mcp_broad_filesystem_scope": (
        server(args=["@modelcontextprotocol/server-filesystem", "/Users/alice"],
               paths=["/Users/alice"]),
        server(args=["@modelcontextprotocol/server-filesystem", "/Users/alice/Desktop"],
               paths=["/Users/alice/Desktop"])),
    "mcp_inline_secret": (server(args=["mcp-server-memory"], secrets_inline=True,
                                 env_names=["OPENAI_API_KEY"], secret_in=["env:OPENAI_API_KEY"]),
                          server(args=["mcp-server-memory"], env_names=["OPENAI_API_KEY"])),
}  # fmt: skip


@pytest.mark.parametrize("rule", sorted(PACK_CASES))
def test_pack_rule_fires_and_the_near_miss_does_not(rule: str) -> None:
    fire, near = PACK_CASES[rule]
    assert rule in rules_hit([fire])
    assert rule not in rules_hit([near])


def test_one_server_one_incident_with_every_rule() -> None:
    bad = server("cmd", args=["desktop-commander", "/"], paths=["/"], secrets_inline=True)
    found = [f for f in findings([bad])[0] if f.subject.startswith("mcp:")]
    assert len(found) == 1
    f = found[0]
    assert f.subject == "mcp:claude-desktop:alice:cmd" and f.severity == "high"
    assert {r["invariant_id"] for r in f.evidence["rules"]} == {
        "mcp_shell_access", "mcp_broad_filesystem_scope", "mcp_inline_secret"}  # fmt: skip
    assert f.evidence["key_path"] == ["mcpServers", "cmd"]
    assert f.evidence["risk"]["level"] == "critical"
    assert "alice's claude-desktop MCP server 'cmd' can run commands" in f.title


def test_pack_is_listed_and_active_by_default() -> None:
    assert packs.DEFAULT_PACKS == ("core", "mcp") and len(BUILTINS) == 32
    for inv in packs.PACKS["mcp"]:
        assert inv.source == "pack" and inv.metadata["pack"] == "mcp" and inv.attack


def test_invariants_api_lists_the_pack(client: Any) -> None:
    from tests.conftest import login, register

    register(client, "alice")
    headers = login(client, "alice")
    body = client.get("/api/v1/invariants?limit=500", headers=headers).json()
    items = body["items"] if isinstance(body, dict) else body
    mine = {i["id"]: i for i in items if i.get("source") == "pack"}
    assert set(MCP_RULES) <= set(mine)
    assert sum(1 for i in items if i.get("source") == "builtin") == 32


def test_a_new_server_after_learning_is_novel_and_judged_by_its_risk() -> None:
    base = [server("memory", args=["mcp-server-memory"])]
    state = HostState()
    for i in range(4):  # learning
        found, state = findings(base, i, state)
        assert not [f for f in found if f.invariant_id == "mcp_server_new"]
    quiet = server("notes", args=["mcp-server-memory"])
    loud = server("box", args=["mcp-shell"])
    seen: dict[str, Any] = {}
    for i in range(4, 6):  # persistence: the second sighting alerts
        found, state = findings([*base, quiet, loud], i, state)
        for f in found:
            for r in [f, *[type(f)(**{**{k: getattr(f, k) for k in f.__struct_fields__},
                                      "invariant_id": x["invariant_id"]})
                           for x in f.evidence.get("rules", [])]]:  # fmt: skip
                if r.invariant_id == "mcp_server_new":
                    seen[f.subject] = f
    assert set(seen) == {"mcp:claude-desktop:alice:notes", "mcp:claude-desktop:alice:box"}
    found, state = findings([*base, quiet, loud], 6, state)
    assert not any(f.invariant_id == "mcp_server_new" for f in found)  # baseline now


def test_new_server_severity() -> None:
    state = HostState()
    for i in range(4):
        _, state = findings([], i, state)
    notes = server("notes", args=["mcp-server-memory"])
    box = server("box", command="uvx", args=["mcp-server-fetch"], secrets_inline=True)
    for i in range(4, 6):
        found, state = findings([notes, box], i, state)
    novel = {f.subject: r["severity"] for f in found
             for r in f.evidence.get("rules", [{"invariant_id": f.invariant_id,
                                                "severity": f.severity}])
             if r["invariant_id"] == "mcp_server_new"}  # fmt: skip
    assert novel == {
        "mcp:claude-desktop:alice:notes": "low",
        "mcp:claude-desktop:alice:box": "medium",
    }  # a credential inline: raised


# --- processes that run MCP servers --------------------------------------------------


@pytest.mark.parametrize("cmdline,expected", [
    ("npx -y @modelcontextprotocol/server-filesystem /tmp",
     ("npx", "@modelcontextprotocol/server-filesystem")),
    ("npm exec --yes -- @modelcontextprotocol/server-github@2025.4.8",
     ("npx", "@modelcontextprotocol/server-github")),
    ("node /home/a/.npm/_npx/9b1c/node_modules/.bin/mcp-server-filesystem /tmp",
     ("npx", "mcp-server-filesystem")),
    ("uvx mcp-server-fetch==2025.1.1", ("uvx", "mcp-server-fetch")),
    ("uv tool run --from mcp-server-git mcp-server-git --repository .", ("uvx", "mcp-server-git")),
    ("docker run -i --rm -e GITHUB_TOKEN -v /a:/b mcp/github:latest", ("docker", "mcp/github")),
    ("docker run -i --rm ghcr.io/github/github-mcp-server", ("docker", "ghcr.io/github/github-mcp-server")),
    ("npx -y cowsay hello", None),
    ("docker run -d nginx:latest", None),
    ("uvx ruff check", None),
    ("python3 -m http.server", None),
])  # fmt: skip
def test_launchers(cmdline: str, expected: tuple[str, str] | None) -> None:
    assert launcher(cmdline.split()) == expected


def test_processes_link_to_their_server_and_the_unconfigured_are_told() -> None:
    fs = server("fs", args=["-y", "@modelcontextprotocol/server-filesystem", "/tmp"])
    gh = server("gh", command="docker", args=["run", "-i", "--rm", "mcp/github"])
    procs = [
        proc("npm exec @modelcontextprotocol/server-filesystem", "alice", pid=900,
             cmdline="npm exec @modelcontextprotocol/server-filesystem /tmp"),
        proc("node", "alice", pid=901, cmdline="node /home/alice/.npm/_npx/1/node_modules/.bin/"
             "mcp-server-filesystem /tmp"),
        proc("uvx", "bob", pid=950, cmdline="uvx mcp-server-fetch"),
        proc("bash", "alice", pid=960, cmdline="bash -c echo mcp"),
    ]  # fmt: skip
    s = snap(mcp_servers=[fs, gh], add_processes=procs)
    running = link(s.mcp_servers, s.processes)
    assert running.by_server == {0: [900, 901]}
    assert running.unconfigured == [(950, "uvx", "mcp-server-fetch")]


# --- the remediation edits, run on real files -------------------------------------------


def run(program: str, *args: str) -> None:
    subprocess.run([sys.executable, "-c", program, *args], check=True, timeout=30)


def test_json_edits_on_a_real_claude_config(tmp_path: Path) -> None:
    path = tmp_path / ".claude.json"
    doc = {"numStartups": 3, "mcpServers": {"keep": {"command": "x"}}, "projects": {
        "/p": {"mcpServers": {"fs": {"command": "npx", "args": ["-y", "pkg", "/"],
                                     "env": {"TOKEN": "ghp_x", "OTHER": "1"}}}}}}  # fmt: skip
    path.write_text(json.dumps(doc))
    keys = ["projects", "/p", "mcpServers", "fs"]
    run(rm.JSON_SWAP, str(path), "/", "/home/alice/src/p", *keys)
    run(rm.JSON_UNSET, str(path), "TOKEN", "${TOKEN}", *keys)
    got = json.loads(path.read_text())
    fs = got["projects"]["/p"]["mcpServers"]["fs"]
    assert fs["args"] == ["-y", "pkg", "/home/alice/src/p"]
    assert fs["env"] == {"TOKEN": "${TOKEN}", "OTHER": "1"}
    run(rm.JSON_UNSET, str(path), "OTHER", "", *keys)
    run(rm.JSON_DROP, str(path), *keys)
    got = json.loads(path.read_text())
    assert got["projects"]["/p"]["mcpServers"] == {} and got["mcpServers"] == {
        "keep": {"command": "x"}
    }
    settings = tmp_path / "settings.json"
    settings.write_text('{\n  // comment\n  "mcp": {"servers": {"a": {}}}\n}')
    with pytest.raises(subprocess.CalledProcessError):
        run(rm.JSON_DROP, str(settings), "mcp", "servers", "a")
    assert "// comment" in settings.read_text()  # not parseable: left as it was


def test_toml_edits_on_a_real_codex_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('model = "o3"\n\n[mcp_servers.shell]\ncommand = "npx"\nargs = ["-y", "/"]\n'
                    'env = { "A" = "1", "OPENAI_API_KEY" = "sk-x" }\n\n[mcp_servers.shell.env2]\n'
                    'X = "1"\n\n[mcp_servers."other"]\ncommand = "o"\nargs = ["/"]\n'
                    'OPENAI_API_KEY = "keep"\n')  # fmt: skip
    run(rm.TOML_SWAP, str(path), "shell", "/", "/srv/p")
    run(rm.TOML_UNSET, str(path), "shell", "OPENAI_API_KEY")
    got = tomllib.loads(path.read_text())
    assert got["mcp_servers"]["shell"]["args"] == ["-y", "/srv/p"]
    assert got["mcp_servers"]["shell"]["env"] == {"A": "1"}
    assert got["mcp_servers"]["other"] == {"command": "o", "args": ["/"], "OPENAI_API_KEY": "keep"}
    run(rm.TOML_DROP, str(path), "shell")
    assert tomllib.loads(path.read_text()) == {"model": "o3", "mcp_servers": {"other": {
        "command": "o", "args": ["/"], "OPENAI_API_KEY": "keep"}}}  # fmt: skip


def test_templates_name_the_entry_to_change() -> None:
    inv = MCP_RULES["mcp_inline_secret"]
    ev = {"client": "codex", "name": "shell", "config_path": "/home/a/.codex/config.toml",
          "config_format": "toml", "key_path": ["mcp_servers", "shell"],
          "secret_in": ["env:OPENAI_API_KEY"]}  # fmt: skip
    actions = t.render(inv, "mcp:codex:a:shell", ev, "linux")
    assert "[mcp_servers.shell] table in /home/a/.codex/config.toml" in actions[0].why
    assert 'env_vars = ["OPENAI_API_KEY"]' in actions[1].why
    assert actions[1].commands[1].endswith("/home/a/.codex/config.toml shell OPENAI_API_KEY")
