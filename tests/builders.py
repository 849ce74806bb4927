"""Snapshot builders for tests: a small clean Linux host, changed field by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from kefal_lite.snapshot import Snapshot

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def proc(name: str, user: str = "root", *, pid: int = 500, exe: str | None = "",
         cmdline: str | None = None, cpu: float = 0.0, ppid: int = 1) -> dict[str, Any]:  # fmt: skip
    return {"pid": pid, "name": name, "user": user, "cpu_percent": cpu,
            "exe": f"/usr/bin/{name}" if exe == "" else exe,
            "cmdline": name if cmdline is None else cmdline, "ppid": ppid}  # fmt: skip


def port(number: int, process: str | None, address: str | None = "0.0.0.0",
         protocol: str = "tcp") -> dict[str, Any]:  # fmt: skip
    return {"port": number, "protocol": protocol, "process": process, "address": address}


BASE_PROCESSES = [
    proc("systemd", pid=1, exe="/usr/lib/systemd/systemd", ppid=0),
    proc("kthreadd", pid=2, exe=None, ppid=0),
    proc("kworker/0:1-events", pid=30, exe=None, ppid=2, cmdline=""),
    proc("sshd", pid=400, exe="/usr/sbin/sshd", cmdline="sshd: /usr/sbin/sshd -D"),
    proc("cron", pid=410, exe="/usr/sbin/cron"),
    proc("nginx", "www-data", pid=420, exe="/usr/sbin/nginx", cmdline="nginx: worker process"),
]
BASE_USERS = [
    {"name": "root", "uid": 0, "groups": ["root"], "shell": "/bin/bash"},
    {"name": "www-data", "uid": 33, "groups": ["www-data"], "shell": "/usr/sbin/nologin"},
    {"name": "alice", "uid": 1000, "groups": ["alice", "sudo"], "shell": "/bin/bash"},
]


def base(i: int = 0, agent_id: str = "agent-1") -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "timestamp": (T0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hostname": "web-01",
        "os": "linux",
        "kernel": "6.8.0-49-generic",
        "uptime_seconds": 100_000 + 60 * i,
        "ip_addresses": ["192.168.1.20"],
        "processes": list(BASE_PROCESSES),
        "listening_ports": [port(22, "sshd"), port(80, "nginx")],
        "logged_in_users": ["alice"],
        "connections": [],
        "users": list(BASE_USERS),
        "ssh_authorized_keys": [{"user": "alice", "fingerprint": "SHA256:aaaa", "comment": "a@l"}],
        "agent_version": "0.1.0",
    }


def snap(i: int = 0, *, add_processes: list[dict[str, Any]] | None = None,
         add_ports: list[dict[str, Any]] | None = None, **fields: Any) -> Snapshot:  # fmt: skip
    data = base(i, fields.pop("agent_id", "agent-1"))
    data.update(fields)
    data["processes"] = data["processes"] + (add_processes or [])
    data["listening_ports"] = data["listening_ports"] + (add_ports or [])
    return msgspec.convert(data, Snapshot)


def as_json(snapshot: Snapshot) -> bytes:
    return msgspec.json.encode(snapshot)
