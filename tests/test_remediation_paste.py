"""Remediation commands as a person pastes them: run under bash on this machine, against real
files, processes and sockets the test starts (issue 18, "Remediation that works when pasted")."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

from kefal_lite.detect import packs
from kefal_lite.remediate import templates as t

MCP_RULES = {inv.id: inv for inv in packs.PACKS["mcp"]}


def bash(script: str, cwd: Path) -> str:
    done = subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=30, check=True)  # fmt: skip
    return done.stdout


# --- the MCP fixes' last check tests what was changed -----------------------------------


def test_scope_fix_check_counts_the_old_argument_not_the_name(tmp_path: Path) -> None:
    # The entry is kept and its command also contains "files": grep -c of the name found 2.
    cfg = tmp_path / "mcp.json"
    cfg.write_text(json.dumps({"mcpServers": {"files": {
        "command": "/opt/files/bin/mcp-files", "args": ["--root", "/"]}}}))  # fmt: skip
    ev = {"client": "claude-code", "name": "files", "config_path": str(cfg),
          "key_path": ["mcpServers", "files"], "paths": ["/"]}  # fmt: skip
    actions = t.render(MCP_RULES["mcp_broad_filesystem_scope"], "mcp:claude-code:a:files", ev,
                       "linux")  # fmt: skip
    check = actions[2].commands[-1]
    assert bash(check, tmp_path).strip() == "1"  # before the fix: the old argument is there
    project = tmp_path / "project"
    project.mkdir()
    fix = [c.replace("'<one project directory>'", f"'{project}'") for c in actions[1].commands]
    bash("\n".join(fix), tmp_path)
    assert json.loads(cfg.read_text())["mcpServers"]["files"]["args"] == ["--root", str(project)]
    assert bash(check, tmp_path).strip() == "0"
    assert "prints 0" in actions[2].why


def test_drop_fix_check_counts_the_entry(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[mcp_servers.shell]\ncommand = "bash"\n\n[mcp_servers.other]\n'
                   'command = "shell-helper"\n')  # fmt: skip
    ev = {"client": "codex", "name": "shell", "config_path": str(cfg), "config_format": "toml",
          "key_path": ["mcp_servers", "shell"], "running_pids": []}  # fmt: skip
    actions = t.render(MCP_RULES["mcp_shell_access"], "mcp:codex:a:shell", ev, "linux")
    check = actions[2].commands[-1]
    assert bash(check, tmp_path).strip() == "1"
    bash("\n".join(actions[1].commands), tmp_path)
    assert tomllib.loads(cfg.read_text()) == {"mcp_servers": {"other": {"command": "shell-helper"}}}
    assert bash(check, tmp_path).strip() == "0"
