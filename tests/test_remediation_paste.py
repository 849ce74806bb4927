"""Remediation commands as a person pastes them: run under bash on this machine, against real
files, processes and sockets the test starts (issue 18, "Remediation that works when pasted")."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kefal_lite.detect import packs
from kefal_lite.detect import predicates as p
from kefal_lite.detect.builtins import BUILTINS
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


# --- deleted binaries, databases as root, firewalls --------------------------------------

BY_ID = {inv.id: inv for inv in BUILTINS}


def _cmds(actions: list[t.Action]) -> list[str]:
    return [c for a in actions for c in a.commands]


def test_deleted_binary_is_read_through_proc_and_inspected_before_the_kill() -> None:
    ev = {"pid": 4242, "name": "kworkerd", "exe": "/memfd:kworkerd (deleted)",
          "rules": [{"invariant_id": "crypto_miner", "evidence": {"pid": 4343}}]}  # fmt: skip
    cmds = _cmds(t.render(BY_ID["deleted_binary_running"], "process:kworkerd", ev, "linux"))
    assert (
        "sudo sha256sum /proc/4242/exe && sudo cp /proc/4242/exe"
        " /root/kefal-quarantine/pid-4242.exe" in cmds
    )
    assert any(c.startswith("sudo sha256sum /proc/4343/exe") for c in cmds)
    assert not any("memfd" in c for c in cmds)  # the dead path is never read
    kill = next(i for i, c in enumerate(cmds) if "kill -KILL" in c)
    assert cmds[kill] == "sudo kill -STOP 4242 4343 && sudo kill -KILL 4242 4343"
    for pid in (4242, 4343):  # which unit owned it, and the copy, before anything is killed
        assert cmds.index(f"systemctl status {pid} 2>/dev/null | head -3") < kill
        assert next(i for i, c in enumerate(cmds) if f"/proc/{pid}/exe &&" in c) < kill
    # a path that is still there: still the running image, through /proc
    ev = {"pid": 77, "name": "x", "exe": "/tmp/x (deleted)"}
    cmds = _cmds(t.render(BY_ID["deleted_binary_running"], "process:x", ev, "linux"))
    assert not any("sha256sum -- '/tmp/x" in c or "sha256sum /tmp/x" in c for c in cmds)


PLACEHOLDER = re.compile(r"<[A-Za-z][\w-]*>")


def test_database_as_root_fills_in_the_unit_and_account() -> None:
    for name, user in (("postgres", "postgres"), ("mysqld", "mysql"), ("redis-server", "redis"),
                       ("mongod", "mongodb"), ("elasticsearch", "elasticsearch")):  # fmt: skip
        cmds = _cmds(t.render(BY_ID["database_running_as_root"], f"process:{name}",
                              {"pid": 4242, "name": name}, "linux"))  # fmt: skip
        assert not [c for c in cmds if PLACEHOLDER.search(c.split("#")[0])], cmds
        assert any(c.startswith("UNIT=$(systemctl status 4242 ") for c in cmds)
        assert (
            f"DB_USER={user}  # the usual account for this database; change it if yours"
            " differs" in cmds
        )
    cmds = _cmds(t.render(BY_ID["database_running_as_root"], "process:oddb",
                          {"pid": 4242, "name": "oddb"}, "linux"))  # fmt: skip
    assert "DB_USER=''" in cmds  # to be chosen: empty, and every change checks it
    assert all(
        c.startswith(("#", "UNIT=", "DB_USER=", "test -n", "systemctl cat", "ps ")) for c in cmds
    )


def test_firewall_follows_the_address_and_the_os_family() -> None:
    inv = BY_ID["database_exposed"]
    ev = {"port": 5432, "protocol": "tcp", "address": "127.0.0.1"}
    fw = t.render(inv, "port:5432/tcp", ev, "linux")[1]
    assert fw.title.startswith("Nothing to firewall") and "127.0.0.1" in fw.why
    assert not [c for c in fw.commands if "ufw" in c or "nft" in c or "firewall-cmd" in c]
    ev["address"] = "0.0.0.0"
    rocky = t.render(inv, "port:5432/tcp", ev, "Rocky Linux 9.3")[1]
    assert rocky.commands == [
        "sudo firewall-cmd --permanent --add-rich-rule='rule port port=5432"
        " protocol=tcp reject' && sudo firewall-cmd --reload"
    ]
    assert "firewalld" in rocky.why
    ubuntu = t.render(inv, "port:5432/tcp", ev, "Ubuntu 24.04 LTS")[1]
    assert "then sudo ufw deny 5432/tcp; else sudo nft" in ubuntu.commands[0]
    assert "firewall-cmd" not in ubuntu.commands[0] and "Debian/Ubuntu" in ubuntu.why
    arch = t.render(inv, "port:5432/tcp", ev, "Arch Linux")[1]
    assert (
        "ufw" not in arch.commands[0]
        and "nft add rule inet kefal input tcp dport 5432 drop" in arch.commands[0]
        and "nftables" in arch.why
    )
    plain = t.render(inv, "port:5432/tcp", ev, "linux")[1]
    assert all(w in plain.commands[0] for w in ("ufw", "firewall-cmd", "nft"))
    assert "not known" in plain.why


def test_outbound_blocks_the_remote_address_never_the_port() -> None:
    inv = BY_ID["novel_outbound_connection"]
    ev = {"value": "curl:4444", "socket": {"remote_address": "203.0.113.9", "remote_port": 4444,
                                           "protocol": "tcp"}}  # fmt: skip
    for os_ in ("linux", "Ubuntu 22.04", "Fedora 40", "darwin", "windows"):
        cmds = _cmds(t.render(inv, "peer:curl:4444", ev, os_))
        assert any("203.0.113.9" in c for c in cmds), cmds
        assert not any("deny out 4444" in c or "<remote-ip>" in c for c in cmds), cmds
    ev["socket"]["remote_address"] = "127.0.0.1"
    block = t.render(inv, "peer:curl:4444", ev, "linux")[1]
    assert block.title.startswith("Nothing to block") and "ufw" not in block.commands[0]


# --- every POSIX command parses; the read-only steps really run ---------------------------

# Realistic evidence, with every key a template reads; the kinds' templates get the same.
EVIDENCE: dict[str, Any] = {
    "pid": 4242, "name": "nginx", "exe": "/usr/sbin/nginx", "user": "alice", "port": 8080,
    "protocol": "tcp", "address": "0.0.0.0", "process": "nginx", "value": "nginx:443",
    "hostname": "web1", "fingerprint": "SHA256:abc", "comment": "alice@laptop",
    "socket": {"address": "0.0.0.0", "port": 8080, "protocol": "tcp",
               "remote_address": "203.0.113.9", "remote_port": 443},
    "client": "claude-code", "config_path": "/home/alice/.claude.json",
    "key_path": ["mcpServers", "fs"], "paths": ["/"], "secret_in": ["env:TOKEN"],
    "running_pids": [4242], "kernel_changed": True, "kernel": "6.1", "previous_kernel": "6.0",
}  # fmt: skip
TEMPLATES: dict[str, t.Template] = {f"builtin:{k}": v for k, v in t.BY_INVARIANT.items()}
TEMPLATES |= {f"kind:{k.__name__}": v for k, v in t.BY_KIND.items()}
TEMPLATES |= {f"novel:{k}": v for k, v in t._NOVEL_BY_FIELD.items()}


def _rendered(os_: str) -> list[tuple[str, str]]:
    out = []
    for label, template in TEMPLATES.items():
        for ev in (EVIDENCE, {**EVIDENCE, "pid": None, "exe": "/memfd:x (deleted)"}):
            ctx = t.Ctx(BY_ID["crypto_miner"], "process:nginx", ev, os_)
            out += [(label, c) for a in template(ctx) for c in a.commands]
    return out


@pytest.mark.parametrize("os_", ["linux", "darwin"])
def test_every_posix_command_parses_under_bash(os_: str) -> None:
    bad = []
    for label, cmd in dict.fromkeys(_rendered(os_)):
        done = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True,
                              timeout=10)  # fmt: skip
        if done.returncode != 0:
            bad.append((label, cmd, done.stderr.strip()))
        # `<unit>` parses (a redirect from a file "unit"): outside a comment it never appears
        if not cmd.lstrip().startswith("#") and PLACEHOLDER.search(cmd.split("  #")[0]):
            bad.append((label, cmd, "placeholder read as a redirect"))
    assert not bad, "\n".join(map(str, bad))


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[tuple[int, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                             "127.0.0.1"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "http.server did not start"
                time.sleep(0.05)
        yield proc.pid, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


READ_ONLY = re.compile(r"^(sudo )?(ps |ss |ls -l /proc/|sha256sum /proc/)")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and ss are Linux's")
def test_read_only_steps_run_against_a_real_process_and_socket(
    web_server: tuple[int, int], tmp_path: Path
) -> None:
    pid, port = web_server
    # sudo may be missing (a root container) or ask for a password: run as ourselves,
    # which owns the server and may read its /proc entries
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (shim / "sudo").chmod(0o755)
    ev = {"pid": pid, "name": "python3", "exe": os.path.realpath(sys.executable),
          "port": port, "protocol": "tcp", "address": "0.0.0.0",
          "socket": {"address": "0.0.0.0", "port": port, "protocol": "tcp"}}  # fmt: skip
    ran: list[str] = []
    for kind in (p.PortOwnerIn, p.ProcessExeDeleted, p.PortListening):
        ctx = t.Ctx(BY_ID["crypto_miner"], f"port:{port}/tcp", ev, "linux")
        for a in t.BY_KIND[kind](ctx):
            for cmd in a.commands:
                step = cmd.split(" && ")[0]
                if not READ_ONLY.match(step):
                    continue
                done = subprocess.run(["bash", "-c", step], capture_output=True, text=True,
                                      timeout=30, env={**os.environ,
                                                       "PATH": f"{shim}:{os.environ['PATH']}"})  # fmt: skip
                assert done.returncode == 0, (step, done.stderr)
                assert (
                    str(pid) in done.stdout
                    or str(port) in done.stdout
                    or ("sha256sum" in step and len(done.stdout.split()[0]) == 64)
                ), (step, done.stdout)
                ran.append(step)
    kinds = {"ps ", "ss ", "ls -l /proc/", "sha256sum /proc/"}
    assert {k for k in kinds for s in ran if k in s} == kinds, ran
