"""The wire contract against a hostile host: what cannot reach a remediation command is
refused or made harmless at decode, and times that would poison host state are a 400."""

from __future__ import annotations

import json
import zlib
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from kefal_lite import snapshot
from kefal_lite.clock import FrozenClock
from kefal_lite.config import Settings
from tests.builders import T0, base, proc
from tests.conftest import counts, query, setup


def post(client: TestClient[Any], agent: dict[str, str], data: dict[str, Any]) -> Any:
    return client.post("/api/v1/ingest", content=json.dumps(data).encode(),
                       headers={"Authorization": f"Bearer {agent['token']}"})  # fmt: skip


def body(agent: dict[str, str], i: int = 0, **fields: Any) -> dict[str, Any]:
    data = base(i, agent["agent_id"])
    data.update(fields)
    return data


@pytest.mark.parametrize("field, value, loc", [
    ("kernel", "6.2\ntouch /tmp/P", ["body", "kernel"]),
    ("hostname", "web\r\n", ["body", "hostname"]),
    ("logged_in_users", ["x\x15reboot"], ["body", "logged_in_users", 0]),
    ("listening_ports", [{"port": 5432, "protocol": ";reboot"}], ["body", "listening_ports", 0, "protocol"]),
    ("listening_ports", [{"port": 5432, "address": "0.0.0.0\x7f"}], ["body", "listening_ports", 0, "address"]),
    ("users", [{"name": "root", "groups": ["a\u009bb"]}], ["body", "users", 0, "groups", 0]),
    ("ssh_authorized_keys", [{"user": "a\nb", "fingerprint": "f"}], ["body", "ssh_authorized_keys", 0, "user"]),
    ("uptime_seconds", 10**30, ["body", "uptime_seconds"]),
])  # fmt: skip
def test_hostile_root_fields_are_a_400_that_changes_nothing(
    client: TestClient[Any], clock: FrozenClock, settings: Settings,
    field: str, value: Any, loc: list[Any],
) -> None:  # fmt: skip
    _, agent = setup(client, clock)
    r = post(client, agent, body(agent, **{field: value}))
    assert r.status_code == 400, r.text
    assert r.json()["detail"][0]["loc"] == loc
    assert counts(settings) == (0, 0, 0)


def test_controls_in_what_any_user_controls_are_made_visible_not_refused(
    client: TestClient[Any], clock: FrozenClock, settings: Settings
) -> None:
    # An unprivileged user names a process "a\nb": refusing the snapshot would blind the host.
    _, agent = setup(client, clock)
    evil = proc("x\ntouch /tmp/P", "www-data", pid=900, exe="/tmp/x\r\x1b[2J",
                cmdline="sh -c 'a\nb'")  # fmt: skip
    data = body(agent, processes=[*base()["processes"], evil],
                ssh_authorized_keys=[{"user": "alice", "fingerprint": "SHA256:a", "comment": "c\x15d"}])  # fmt: skip
    r = post(client, agent, data)
    assert r.status_code == 200, r.text
    [(stored,)] = query(settings, "SELECT body FROM snapshots")
    snap = snapshot.decode(zlib.decompress(stored))  # stored as accepted: sanitised
    p = next(p for p in snap.processes if p.pid == 900)
    assert (p.name, p.exe, p.cmdline) == (
        "x\ufffdtouch /tmp/P",
        "/tmp/x\ufffd\ufffd[2J",
        "sh -c 'a\ufffdb'",
    )
    assert snap.ssh_authorized_keys[0].comment == "c\ufffdd"


def test_escaped_backslashes_are_not_controls() -> None:
    raw = json.dumps(base() | {"processes": [proc("a", exe="C:\\new\\temp\\b.exe")]}).encode()
    assert b"\\\\new" in raw and not snapshot._may_have_controls(raw)
    assert snapshot.decode(raw).processes[0].exe == "C:\\new\\temp\\b.exe"
    with pytest.raises(msgspec.ValidationError, match=r"\$\.kernel"):
        snapshot.decode(json.dumps(base() | {"kernel": "C:\\\n"}).encode())


@pytest.mark.parametrize("field, when, ok", [
    ("timestamp", timedelta(days=400 * 365 * 20), False),  # year ~9999: poisoned host state
    ("timestamp", timedelta(hours=25), False),
    ("timestamp", timedelta(hours=23), True),
    ("sent_at", timedelta(days=3), False),
])  # fmt: skip
def test_timestamps_ahead_of_the_server_are_refused(
    client: TestClient[Any], clock: FrozenClock, settings: Settings,
    field: str, when: timedelta, ok: bool,
) -> None:  # fmt: skip
    _, agent = setup(client, clock)
    now = clock.now()
    try:
        stamp = (now + when).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:
        stamp = "9999-12-31T23:59:59Z"
    r = post(client, agent, body(agent, **{field: stamp}))
    assert (r.status_code == 200) is ok, r.text
    if not ok:
        assert r.json()["detail"][0]["loc"] == ["body", field]
        assert counts(settings) == (0, 0, 0)
        # and the host's next, honest snapshot is accepted as new, not as a replay
        assert post(client, agent, body(agent, 0)).json()["incidents_opened"] == 0


def test_year_9999_and_year_1_are_refused_not_500(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    _, agent = setup(client, clock)
    for stamp in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"):
        r = post(client, agent, body(agent, timestamp=stamp))
        assert r.status_code == 400, r.text
    assert T0 < clock.now()
