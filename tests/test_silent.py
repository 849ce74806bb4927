"""The silent-host timer: what it does when a snapshot lands between its read and its write,
and that a timer rule is recognised by its kind, not by the builtin's id."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from kefal_lite.clock import FrozenClock, iso
from kefal_lite.monitor import _went_silent
from kefal_lite.store import hosts
from kefal_lite.store.incidents import NewFinding
from tests.builders import T0
from tests.conftest import EXPOSED_PG, enroll, in_app, login, query, register, send


def _start(client: TestClient[Any], clock: FrozenClock) -> tuple[dict[str, str], dict[str, str]]:
    clock.set(T0 + timedelta(seconds=5))
    register(client, "alice")
    return login(client, "alice"), enroll(client, "alice")


def test_a_snapshot_between_the_timers_read_and_its_write_keeps_the_host_online(
    client: TestClient[Any], clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, agent = _start(client, clock)
    send(client, agent, 0)
    svc = client.app.state.kefal
    clock.advance(minutes=11)
    read = hosts.silent_past
    landed: list[int] = []

    def read_then_a_snapshot(conn: Any, invariant_id: str, cutoff: str) -> Any:
        due = read(conn, invariant_id, cutoff)
        if due and not landed:  # the agent reports after the timer read, before it writes
            landed.append(send(client, agent, 11).status_code)
        return due

    monkeypatch.setattr(hosts, "silent_past", read_then_a_snapshot)
    assert in_app(client, svc.monitor.check_silent) == 0
    assert landed == [200]
    incidents = client.get("/api/v1/incidents?status=all", headers=session).json()["items"]
    assert [i["invariant_id"] for i in incidents if i["invariant_id"] == "agent_silent"] == []
    host_id = query(svc.settings, "SELECT id FROM hosts")[0][0]
    assert client.get(f"/api/v1/hosts/{host_id}", headers=session).json()["status"] == "online"
    assert query(svc.settings, "SELECT COUNT(*) FROM host_notices") == [(0,)]  # no silent/back pair


def test_a_timer_rule_of_any_id_is_about_the_host(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    """A silence rule that is not the builtin (a pack's 5-minute one, say): its incident is
    never "stale" and it notifies as host.silent, like the builtin's."""
    session, agent = _start(client, clock)
    send(client, agent, 0, add_ports=EXPOSED_PG)
    svc = client.app.state.kefal
    clock.advance(minutes=11)
    now = iso(clock.now())
    [host] = in_app(client, svc.db.read, hosts.silent_past, "quiet_5m", now)
    finding = NewFinding(
        invariant_id="quiet_5m", invariant_name="quiet_5m", category="availability",
        severity="high", state_like=True, attack=None, contributed_by=None,
        subject=f"agent:{agent['agent_id']}", title="quiet", evidence={}, timer=True,
    )  # fmt: skip
    assert in_app(client, svc.db.write, _went_silent, host, [finding], now, False) is True
    items = {
        i["invariant_id"]: i["status"]
        for i in client.get("/api/v1/incidents", headers=session).json()["items"]
    }
    assert items == {"quiet_5m": "open", "database_exposed": "stale"}
    # notified as the host going silent (rate-limited per host), not as a new incident
    assert query(svc.settings, "SELECT COUNT(*) FROM host_notices") == [(1,)]
