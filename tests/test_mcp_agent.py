"""The agent's MCP reader on real files, as each client writes them: where, which dialect
(JSON, JSON with comments, TOML), what is sent, what never is, and what is not opened."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kefal_lite import snapshot
from kefal_lite.agent import mcp
from kefal_lite.agent.toml import Parser
from kefal_lite.scrub import scrub_snapshot
from kefal_lite.snapshot import McpServer
from tests.builders import snap

# Real-looking credentials of every shape the reader knows (none is live).
SECRETS = {
    "aws": "AKIAQ3EGRT7VX2MPLW4K",
    "github": "ghp_7Xq2pLm9Rt4Kv8Nw3Zy6Bc1Df5Gh0Jk2Ls4Q",
    "github_pat": "github_pat_11ABCDEFG0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789abcdef",
    "slack": "xoxb-2648391755-5519283746152-Qw8eRt5yUi3oPa6sDf",
    "openai": "sk-proj-Tq8vW3xY6zA9bC2dE5fG8hJ1kL4mN7pQ0rS3tU6vW9x",
    "anthropic": "sk-ant-api03-Zx9Cv8Bn7Mq6Wp5Eo4Ri3Tu2Yl1Kj0Hg-aBcDeFgHiJ",
    "google": "AIzaSyD4f8G2h6J1k9L3m7N5p0Q8r2S6t4V1w3X",
    "password": "Tr0ub4dor&3-horse",
    "db_url_pw": "s3cr3t-DB-pass",
    "bearer": "mcp-live-9f8e7d6c5b4a3f2e1d0c",
    "flag": "9f8e7d6c5b4a3f2e1d0c-flagvalue",
}
PEM = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
       "\n-----END OPENSSH PRIVATE KEY-----")  # fmt: skip


def write(home: Path, rel: str, text: str) -> Path:
    path = home / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def collect(home: Path, os_name: str = "linux") -> tuple[list[McpServer], mcp.Reader]:
    reader = mcp.Reader(os_name)
    uid = None if os_name == "windows" else os.getuid()
    return reader.in_home(mcp.Home("alice", str(home), uid)), reader


def by_name(servers: list[McpServer]) -> dict[str, McpServer]:
    return {f"{s.client}/{s.name}": s for s in servers}


CLAUDE_DESKTOP = {
    "mcpServers": {
        "filesystem": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/alice/Desktop",
                     "/Users/alice/Downloads"],
        },
        "github": {
            "command": "docker",
            "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN",
                     "ghcr.io/github/github-mcp-server"],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": SECRETS["github"]},
        },
    }
}  # fmt: skip

VSCODE_SETTINGS = """{
    // editor settings first, as people keep them
    "editor.fontSize": 13,
    /* MCP, the pre-1.102 way: inside settings.json */
    "mcp": {
        "servers": {
            "fetch": {"type": "stdio", "command": "uvx", "args": ["mcp-server-fetch"],},
            "remote": {"type": "http", "url": "https://mcp.example.com/mcp",
                       "headers": {"Authorization": "Bearer ${input:token}"}},
        },
    },
}
"""

VSCODE_MCP_JSON = """{
  "inputs": [{"type": "promptString", "id": "pg", "password": true}],
  "servers": {
    "postgres": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-postgres",
                 "postgresql://app:%s@db.internal:5432/app"]}
  }
}
""" % SECRETS["db_url_pw"]  # noqa: UP031 - the braces are JSON's

CODEX_TOML = f"""
model = "o4-mini"

[mcp_servers.shell]
command = "npx"
args = ["-y", "@mkusaka/mcp-shell-server"]
env = {{ "OPENAI_API_KEY" = "{SECRETS["openai"]}" }}

[mcp_servers.docs]
command = "docs-server"
args = ["--port", "4000", '--root=/']
enabled = true

[mcp_servers.docs.env]
DOCS_TOKEN = "${{DOCS_TOKEN}}"

[mcp_servers.figma]
url = "https://mcp.figma.com/mcp"
bearer_token_env_var = "FIGMA_OAUTH_TOKEN"
http_headers = {{ "X-Figma-Region" = "us-east-1" }}
"""

ZED_SETTINGS = """// Zed settings
{
  "theme": "One Dark",
  "context_servers": {
    "old-style": {"command": {"path": "/usr/local/bin/mcp-sqlite", "args": ["--db", "/srv/app.db"],
                  "env": {"SQLITE_KEY": "%s"}}},
    "new-style": {"source": "custom", "command": "uvx", "args": ["mcp-server-git", "--repository", "~"],
                  "env": {}},
  },
}
""" % SECRETS["anthropic"]  # noqa: UP031

CONTINUE_JSON = {
    "models": [],
    "experimental": {"modelContextProtocolServers": [
        {"transport": {"type": "stdio", "command": "uvx", "args": ["mcp-server-sqlite",
                       "--db-path", "/home/alice/test.db"]}}]},
}  # fmt: skip

GEMINI = """{
  "theme": "GitHub",
  "mcpServers": {
    "remote-sse": {"url": "https://tools.example.org/sse", "headers": {"Authorization": "Bearer %s"}},
    "streamable": {"httpUrl": "https://api.example.org/mcp?api_key=%s", "timeout": 5000},
    "slack": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-slack", "--api-key", "%s"],
              "env": {"SLACK_BOT_TOKEN": "%s", "SLACK_TEAM_ID": "T01234567"}},
  }
}
""" % (SECRETS["bearer"], SECRETS["google"], SECRETS["flag"], SECRETS["slack"])  # noqa: UP031


def populate(home: Path) -> None:
    write(home, ".config/Claude/claude_desktop_config.json", json.dumps(CLAUDE_DESKTOP, indent=2))
    project = home / "src" / "shop"
    claude = {
        "numStartups": 12,
        "mcpServers": {"sentry": {"type": "http", "url": "https://mcp.sentry.dev/mcp"}},
        "projects": {
            str(project): {"allowedTools": [], "mcpServers": {
                "db": {"type": "stdio", "command": "npx",
                       "args": ["-y", "@bytebase/dbhub", "--dsn",
                                f"mysql://root:{SECRETS['password']}@localhost/shop"]}}},
            "/opt/elsewhere": {"mcpServers": {}},
        },
    }  # fmt: skip
    write(home, ".claude.json", json.dumps(claude))
    write(
        home,
        "src/shop/.mcp.json",
        json.dumps(
            {
                "mcpServers": {
                    "aws": {
                        "command": "uvx",
                        "args": ["awslabs.aws-api-mcp-server@latest"],
                        "env": {"AWS_ACCESS_KEY_ID": SECRETS["aws"], "AWS_REGION": "eu-west-1"},
                    }
                }
            }
        ),
    )
    write(
        home,
        "src/shop/.cursor/mcp.json",
        json.dumps(
            {"mcpServers": {"browser": {"command": "npx", "args": ["@playwright/mcp@latest"]}}}
        ),
    )
    write(
        home,
        ".cursor/mcp.json",
        json.dumps(
            {
                "mcpServers": {
                    "commander": {
                        "command": "npx",
                        "args": ["-y", "@wonderwhy-er/desktop-commander"],
                    },
                    "keyfile": {
                        "command": "node",
                        "args": ["/home/alice/mcp/index.js"],
                        "env": {"SSH_KEY": PEM},
                    },
                }
            }
        ),
    )
    write(home, ".config/Code/User/settings.json", VSCODE_SETTINGS)
    write(home, ".config/Code/User/mcp.json", VSCODE_MCP_JSON)
    write(home, ".codeium/windsurf/mcp_config.json", json.dumps({"mcpServers": {
        "docker": {"command": "docker", "args": ["run", "-i", "--rm", "-v",
                   "/var/run/docker.sock:/var/run/docker.sock", "mcp/docker"]},
        "hosted": {"serverUrl": "https://mcp.example.com/sse"}}}))  # fmt: skip
    write(home, ".config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/"
          "cline_mcp_settings.json", json.dumps({"mcpServers": {"memory": {
              "command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"],
              "disabled": False, "autoApprove": []}}}))  # fmt: skip
    write(home, ".config/zed/settings.json", ZED_SETTINGS)
    write(home, ".continue/config.json", json.dumps(CONTINUE_JSON))
    write(
        home,
        ".continue/mcpServers/brave.json",
        json.dumps(
            {
                "mcpServers": {
                    "brave": {
                        "command": "npx",
                        "args": ["-y", "@modelcontextprotocol/server-brave-search"],
                        "env": {"BRAVE_API_KEY": "${BRAVE_API_KEY}"},
                    }
                }
            }
        ),
    )
    write(home, ".codex/config.toml", CODEX_TOML)
    write(home, ".gemini/settings.json", GEMINI)


def test_every_client_format_is_read(tmp_path: Path) -> None:
    populate(tmp_path)
    servers, reader = collect(tmp_path)
    got = by_name(servers)
    assert set(got) == {
        "claude-desktop/filesystem", "claude-desktop/github", "claude-code/sentry",
        "claude-code/db", "claude-code/aws", "cursor/browser", "cursor/commander",
        "cursor/keyfile", "vscode/fetch", "vscode/remote", "vscode/postgres", "windsurf/docker",
        "windsurf/hosted", "cline/memory", "zed/old-style", "zed/new-style", "continue/server-1",
        "continue/brave", "codex/shell", "codex/docs", "codex/figma", "gemini-cli/remote-sse",
        "gemini-cli/streamable", "gemini-cli/slack",
    }, reader.files.skipped  # fmt: skip
    fs = got["claude-desktop/filesystem"]
    assert fs.transport == "stdio" and fs.command == "npx" and fs.user == "alice"
    assert fs.paths == ["/Users/alice/Desktop", "/Users/alice/Downloads"]
    assert fs.config_path == str(tmp_path / ".config/Claude/claude_desktop_config.json")
    assert not fs.secrets_inline and fs.env_names == []
    gh = got["claude-desktop/github"]
    assert gh.env_names == ["GITHUB_PERSONAL_ACCESS_TOKEN"] and gh.secrets_inline
    assert gh.secret_in == ["env:GITHUB_PERSONAL_ACCESS_TOKEN"]
    assert got["claude-code/sentry"].transport == "http"
    db = got["claude-code/db"]
    assert db.config_path.endswith(".claude.json#" + str(tmp_path / "src" / "shop"))
    assert db.secret_in == ["args"] and "mysql://root:***@localhost/shop" in db.args
    assert got["claude-code/aws"].secret_in == ["env:AWS_ACCESS_KEY_ID"]
    assert got["claude-code/aws"].config_path == str(tmp_path / "src/shop/.mcp.json")
    assert got["cursor/keyfile"].secret_in == ["env:SSH_KEY"]
    assert got["cursor/keyfile"].paths == []  # the script it runs is not a scope
    assert got["vscode/remote"].transport == "http" and not got["vscode/remote"].secrets_inline
    assert got["vscode/postgres"].secret_in == ["args"]
    assert got["windsurf/docker"].paths == ["/var/run/docker.sock"]
    assert got["windsurf/hosted"].transport == "sse"
    assert got["zed/old-style"].command == "/usr/local/bin/mcp-sqlite"
    assert got["zed/old-style"].paths == ["/srv/app.db"] and got["zed/old-style"].secrets_inline
    assert got["zed/new-style"].paths == ["~"]
    assert got["continue/server-1"].paths == ["/home/alice/test.db"]
    assert not got["continue/brave"].secrets_inline  # a ${VAR} reference is not a secret
    shell = got["codex/shell"]
    assert shell.args == ["-y", "@mkusaka/mcp-shell-server"] and shell.secret_in == [
        "env:OPENAI_API_KEY"
    ]
    docs = got["codex/docs"]
    assert docs.paths == ["/"] and docs.env_names == ["DOCS_TOKEN"] and not docs.secrets_inline
    figma = got["codex/figma"]
    assert figma.transport == "http" and figma.env_names == ["FIGMA_OAUTH_TOKEN"]
    assert got["gemini-cli/remote-sse"].secret_in == ["headers:Authorization"]
    assert got["gemini-cli/streamable"].secret_in == ["url"]
    slack = got["gemini-cli/slack"]
    assert set(slack.secret_in) == {"env:SLACK_BOT_TOKEN", "args"}
    assert slack.args[-2:] == ["--api-key", "***"]
    assert slack.env_names == ["SLACK_BOT_TOKEN", "SLACK_TEAM_ID"]
    # a project outside the home is not walked into; nothing else was skipped
    assert reader.files.skipped == [] and reader.files.denied == 0


def test_no_secret_value_is_ever_encoded(tmp_path: Path) -> None:
    populate(tmp_path)
    servers, _ = collect(tmp_path)
    body = snapshot.encode(snap(mcp_servers=servers))
    for name, value in [*SECRETS.items(), ("pem", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ")]:
        assert value.encode() not in body, name
        assert value[:12].encode() not in body, name  # nor a cut-off head of one
    assert b"PRIVATE KEY" not in body
    assert body.count(b'"secrets_inline":true') == 10


def test_windows_and_macos_layouts(tmp_path: Path) -> None:
    mac = tmp_path / "mac"
    write(
        mac,
        "Library/Application Support/Claude/claude_desktop_config.json",
        json.dumps(CLAUDE_DESKTOP),
    )
    write(mac, "Library/Application Support/Code/User/mcp.json", VSCODE_MCP_JSON)
    got = by_name(collect(mac, "darwin")[0])
    assert {"claude-desktop/filesystem", "vscode/postgres"} <= set(got)
    win = tmp_path / "win"
    write(win, "AppData/Roaming/Claude/claude_desktop_config.json", json.dumps({"mcpServers": {
        "fs": {"command": "npx.cmd", "args": ["-y", "@modelcontextprotocol/server-filesystem",
                                              "C:\\Users\\alice", "D:\\"]}}}))  # fmt: skip
    write(win, "AppData/Roaming/Zed/settings.json", ZED_SETTINGS)
    got = by_name(collect(win, "windows")[0])
    assert got["claude-desktop/fs"].paths == ["C:\\Users\\alice", "D:\\"]
    assert "zed/old-style" in got


def test_toml_fallback_reads_what_tomllib_reads() -> None:
    """Python 3.10 has no tomllib: the agent's own reader must agree on real configs."""
    tricky = (
        CODEX_TOML
        + '''
[mcp_servers."quoted name"]
command = 'C:\\tools\\srv.exe'
args = [
  "--a", # a comment in an array
  """multi
line""",
]
nums = [1, 2_000, 0x1f, 3.5, -2]
[[profiles]]
name = "one"
[[profiles]]
name = "two"
when = 1979-05-27T07:32:00Z
'''
    )
    assert Parser(tricky).document() == {**tomllib.loads(tricky), "profiles": [
        {"name": "one"}, {"name": "two", "when": "1979-05-27T07:32:00Z"}]}  # fmt: skip
    for bad in ("a = ", "[x\nb=1", 'a = "unterminated', "a = 1\na = 2", "a = [1 2]"):
        with pytest.raises(ValueError):
            Parser(bad).document()


def test_jsonc_keeps_strings_whole() -> None:
    text = '{"a": "http://x//y", "b": "/* not a comment */", "c": [1,2,],} // end'
    assert json.loads(mcp.strip_jsonc(text)) == {"a": "http://x//y", "b": "/* not a comment */",
                                                 "c": [1, 2]}  # fmt: skip


def test_what_is_not_opened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "mcp.json", json.dumps({"mcpServers": {"x": {"command": "x"}}}))
    home.mkdir()
    (home / ".cursor").symlink_to(elsewhere)  # a linked directory
    (home / ".codeium" / "windsurf").mkdir(parents=True)
    (home / ".codeium/windsurf/mcp_config.json").symlink_to(elsewhere / "mcp.json")
    (home / ".gemini").mkdir()
    os.mkfifo(home / ".gemini/settings.json")  # would block a plain open() forever
    write(home, ".lmstudio/mcp.json", "x" * (mcp.MAX_BYTES + 1))
    write(home, ".aws/amazonq/mcp.json", '{"mcpServers": {')
    servers, reader = collect(home)
    assert servers == []
    why = dict(reader.files.skipped)
    assert why[str(home / ".cursor")] == "a symbolic link; not followed"
    assert why[str(home / ".codeium/windsurf/mcp_config.json")] == "a symbolic link; not followed"
    assert why[str(home / ".gemini/settings.json")] == "not a regular file"
    assert why[str(home / ".lmstudio/mcp.json")].startswith("larger than")
    assert why[str(home / ".aws/amazonq/mcp.json")].startswith("not valid json")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_file_owned_by_someone_else_is_not_read(tmp_path: Path) -> None:
    path = write(tmp_path, ".cursor/mcp.json", json.dumps({"mcpServers": {"x": {"command": "x"}}}))
    os.chown(path, 12345, 12345)
    servers, reader = collect(tmp_path)
    assert servers == []
    assert "owned by uid 12345" in dict(reader.files.skipped)[str(path)]


def test_unchanged_files_are_not_parsed_again(tmp_path: Path) -> None:
    populate(tmp_path)
    reader = mcp.Reader("linux")
    home = mcp.Home("alice", str(tmp_path), os.getuid())
    first = reader.in_home(home)
    cached = dict(reader._cache)
    assert reader.in_home(home) == first
    assert all(reader._cache[k] is v for k, v in cached.items())  # the same parse objects
    write(tmp_path, ".cursor/mcp.json", json.dumps({"mcpServers": {}}))
    assert len(reader.in_home(home)) == len(first) - 2


def test_collector_sends_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kefal_lite.agent.collect import Collector

    populate(tmp_path)
    monkeypatch.setattr(mcp, "homes", lambda: [mcp.Home("alice", str(tmp_path), os.getuid())])
    sent = snapshot.decode(snapshot.encode(Collector("a1").collect()))
    assert len(sent.mcp_servers) == 24


# --- the wire: control characters and the server's own scrubbing -------------------------


def _wire(server: dict[str, Any]) -> bytes:
    data = msgspec.to_builtins(snap())
    data["mcp_servers"] = [server]
    return msgspec.json.encode(data)


def test_controls_in_user_text_are_replaced_and_in_agent_fields_refused() -> None:
    got = snapshot.decode(
        _wire(
            {
                "client": "cursor",
                "name": "a\rb",
                "config_path": "/h/\x1b[2J",
                "args": ["x\ny"],
                "env_names": ["A\x7f"],
                "user": "alice",
            }
        )
    )
    m = got.mcp_servers[0]
    assert (m.name, m.config_path, m.args, m.env_names) == ("a\ufffdb", "/h/\ufffd[2J",
                                                            ["x\ufffdy"], ["A\ufffd"])  # fmt: skip
    for field in ("client", "user"):
        bad = {"client": "cursor", "name": "n", "config_path": "/p", field: "x\ny"}
        with pytest.raises(msgspec.ValidationError, match=f"mcp_servers\\[0\\].{field}"):
            snapshot.decode(_wire(bad))
    with pytest.raises(msgspec.ValidationError):
        snapshot.decode(_wire({"client": "c", "name": "n", "config_path": "/p", "transport": "ws"}))
    with pytest.raises(msgspec.ValidationError):
        snapshot.decode(_wire({"client": "c", "name": "n", "config_path": "/p",
                               "args": ["a"] * 257}))  # fmt: skip


def test_ingest_masks_what_an_older_agent_sent() -> None:
    raw = _wire(
        {
            "client": "cursor",
            "name": "gh",
            "config_path": "/p",
            "command": "npx",
            "args": ["--token", SECRETS["github"]],
            "url": f"https://u:{SECRETS['password']}@h/",
        }
    )
    clean = scrub_snapshot(snapshot.decode(raw))
    body = snapshot.encode(clean)
    assert SECRETS["github"].encode() not in body and SECRETS["password"].encode() not in body
    m = clean.mcp_servers[0]
    assert m.secrets_inline and set(m.secret_in) == {"args", "url"}
    untouched = snapshot.decode(_wire({"client": "cursor", "name": "gh", "config_path": "/p"}))
    assert scrub_snapshot(untouched) is untouched
