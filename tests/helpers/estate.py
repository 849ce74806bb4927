"""An estate with a known answer (hosts linked by keys, connections and logins) and the
check that a graph document really loads in Cytoscape."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from kefal_lite.clock import FrozenClock
from tests.builders import T0, port
from tests.conftest import enroll, send
from tests.tools import require

JS = Path(__file__).parent.parent / "js"

K1, K2, K3 = "SHA256:k1rootondb", "SHA256:k2deploy", "SHA256:k3backup"


def key(user: str, fingerprint: str) -> dict[str, str]:
    return {"user": user, "fingerprint": fingerprint, "comment": "c"}


def conn(address: str, remote_port: int, process: str = "python3") -> dict[str, Any]:
    return {"remote_address": address, "remote_port": remote_port, "local_port": 40000,
            "process": process}  # fmt: skip


# hostname -> snapshot fields. From jump: db by a root key (1 hop), app by a connection
# (1 hop), dev by a shared login (1 hop), backup by app's deploy key (2 hops), far by the
# backup key (3 hops). island is a near miss of each kind: a loopback-only port, an address
# two hosts claim, a different key, a different login.
ESTATE: dict[str, dict[str, Any]] = {
    "jump": dict(ip_addresses=["10.0.0.1"], logged_in_users=["ops"],
                 ssh_authorized_keys=[key("alice", K1)],
                 connections=[conn("10.0.0.2", 8080), conn("10.0.0.7", 6379),
                              conn("172.17.0.1", 80), conn("10.0.0.9", 22)]),
    "app": dict(ip_addresses=["10.0.0.2"], logged_in_users=[],
                add_ports=[port(8080, "gunicorn")], ssh_authorized_keys=[key("deploy", K2)],
                connections=[conn("10.0.0.3", 5432)]),
    "db": dict(ip_addresses=["10.0.0.3"], logged_in_users=[],
               add_ports=[port(5432, "postgres")], ssh_authorized_keys=[key("root", K1)]),
    "backup": dict(ip_addresses=["10.0.0.4"], logged_in_users=[],
                   ssh_authorized_keys=[key("root", K2), key("backup", K3)]),
    "dev": dict(ip_addresses=["10.0.0.5", "172.17.0.1"], logged_in_users=["ops"],
                ssh_authorized_keys=[]),
    "far": dict(ip_addresses=["10.0.0.6"], logged_in_users=[],
                ssh_authorized_keys=[key("root", K3)]),
    "island": dict(ip_addresses=["10.0.0.7", "172.17.0.1"], logged_in_users=["opsx"],
                   add_ports=[port(6379, "redis", "127.0.0.1")],
                   ssh_authorized_keys=[key("root", "SHA256:k1rootondbX")]),
}  # fmt: skip


def build_estate(c: TestClient[Any], user: str, clock: FrozenClock,
                 headers: dict[str, str]) -> dict[str, str]:  # fmt: skip
    """Ingest ESTATE for `user`; hostname -> host id."""
    clock.set(T0 + timedelta(seconds=5))
    for name, fields in ESTATE.items():
        r = send(c, enroll(c, user), 0, hostname=name, **fields)
        assert r.status_code == 200, r.text
    return hostnames(c, headers)


def hostnames(c: TestClient[Any], headers: dict[str, str]) -> dict[str, str]:
    topo = c.get("/api/v1/topology", headers=headers).json()["hosts"]
    return {h["hostname"]: h["host_id"] for h in topo}


def cytoscape_load(elements: dict[str, Any]) -> dict[str, Any]:
    node = require("node")
    if not (JS / "node_modules" / "cytoscape").exists():
        subprocess.run(
            [require("npm"), "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True
        )
    done = subprocess.run([node, str(JS / "cytoscape_check.mjs")], input=json.dumps(elements),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result
