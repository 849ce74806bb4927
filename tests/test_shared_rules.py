"""Shared rules must not weaken anyone. The attack: a tenant contributed a 1-minute, low
agent_silent rule and verified it; the host was then marked silent once, at the shortest
threshold, and every tenant's silent hosts got only that low incident, never the builtin
high one. Timer kinds are not contributable, stored ones are withdrawn at startup, and
each silent rule keeps its own timer per host."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from kefal_lite.app import create_app
from kefal_lite.clock import FrozenClock
from kefal_lite.detect import predicates as p
from kefal_lite.detect.model import Invariant
from tests.builders import T0
from tests.conftest import (
    EXPOSED_PG,
    enroll,
    in_app,
    login,
    make_settings,
    query,
    register,
    send,
    setup,
)

SILENT_1MIN_LOW = {
    "name": "Agent quiet for a minute",
    "invariant_type": "temporal",
    "predicate": {"kind": "agent_silent", "params": {"minutes": 1}},
    "severity": "low",
    "metadata": {"description": "The agent did not report for one minute."},
}


def _incidents(client: TestClient[Any], session: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/api/v1/incidents?status=all", headers=session).json()["items"]
    return items


@pytest.mark.parametrize("predicate", [
    {"kind": "agent_silent", "params": {"minutes": 1}},
    {"kind": "clock_skew", "params": {"seconds": 5}},
    {"kind": "timestamp_not_monotonic"},
    {"kind": "uptime_decreased"},
    {"kind": "any_of", "params": {"predicates": [
        {"kind": "process_name_in", "params": {"names": ["ngrok"]}},
        {"kind": "agent_silent", "params": {"minutes": 1}}]}},
])  # fmt: skip
def test_timer_kinds_are_not_contributable(client: TestClient[Any],
                                           predicate: dict[str, Any]) -> None:  # fmt: skip
    register(client, "mallory")
    session = login(client, "mallory")
    r = client.post("/api/v1/invariants/contribute", headers=session,
                    json={**SILENT_1MIN_LOW, "predicate": predicate})  # fmt: skip
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "only the builtin" in detail
    assert query(client.app.state.settings, "SELECT COUNT(*) FROM invariants")[0][0] == 0


def test_contributed_one_minute_agent_silent_cannot_hide_the_builtin(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str], clock: FrozenClock
) -> None:
    """The reported attack, end to end: bob's rule is refused; alice's host still gets the
    builtin's high incident at 10 minutes, and nothing low before."""
    c = open_client
    r = c.post("/api/v1/invariants/contribute", headers=bob, json=SILENT_1MIN_LOW)
    assert r.status_code == 400 and "agent_silent" in r.json()["detail"]
    clock.set(T0 + timedelta(seconds=5))
    agent = enroll(c, "alice")
    assert send(c, agent, 0).status_code == 200
    svc = c.app.state.kefal
    clock.advance(minutes=2)
    assert in_app(c, svc.monitor.check_silent) == 0
    clock.advance(minutes=9)
    assert in_app(c, svc.monitor.check_silent) == 1
    [inc] = _incidents(c, alice)
    assert inc["invariant_id"] == "agent_silent" and inc["severity"] == "high"


def _plant(db: Path, owner: str, invariant_id: str, name: str, predicate: dict[str, Any],
           status: str, severity: str = "low") -> None:  # fmt: skip
    """A contribution as today's schema stored it, written straight into the file."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "INSERT INTO invariants (id, name, invariant_type, predicate, severity, metadata,"
            " source, status, contributed_by, report, created_at, verified_at)"
            " VALUES (?, ?, 'temporal', ?, ?, '{\"description\": \"x\"}', 'community', ?,"
            " (SELECT id FROM users WHERE username = ?), NULL, ?, ?)",
            (invariant_id, name, msgspec.json.encode(predicate).decode(), severity, status,
             owner, T0.isoformat(), T0.isoformat()),
        )  # fmt: skip
    conn.close()


def test_stored_timer_rules_are_withdrawn_at_startup_and_the_builtin_fires(
    tmp_path: Path, clock: FrozenClock
) -> None:
    settings = make_settings(tmp_path / "data")
    with TestClient(create_app(settings, clock=clock)) as c:
        session, agent = setup(c, clock)
    _plant(settings.db_path, "alice", "old-silent", "Quiet minute", SILENT_1MIN_LOW["predicate"],
           "active")  # fmt: skip
    _plant(settings.db_path, "alice", "old-skew", "Tiny skew",
           {"kind": "clock_skew", "params": {"seconds": 1}}, "pending")  # fmt: skip
    _plant(settings.db_path, "alice", "agent_silent-lookalike", "Ngrok",
           {"kind": "process_name_in", "params": {"names": ["ngrok"]}}, "pending")  # fmt: skip
    with TestClient(create_app(settings, clock=clock)) as c:
        svc = c.app.state.kefal
        assert "old-silent" not in svc.rules.catalog.by_id
        assert [r.id for r in svc.rules.catalog.silent_rules] == ["agent_silent"]
        rows = dict(
            (r[0], r[1:])
            for r in query(settings, "SELECT id, status, status_reason, retired_at FROM invariants")
        )
        assert rows["old-silent"][0] == "retired" and "agent_silent" in rows["old-silent"][1]
        assert rows["old-silent"][2] is not None
        assert rows["old-skew"][0] == "rejected" and "clock_skew" in rows["old-skew"][1]
        assert rows["agent_silent-lookalike"] == ("pending", None, None)  # allowed kinds stay
        audit = query(settings, "SELECT target FROM audit WHERE action = 'invariant_withdrawn'")
        assert sorted(t for (t,) in audit) == ["old-silent", "old-skew"]
        r = c.post("/api/v1/invariants/old-skew/verify", headers=login(c, "alice"))
        assert r.status_code == 400 and "clock_skew" in r.json()["detail"]
        assert send(c, agent, 1).status_code == 200
        clock.advance(minutes=3)
        assert in_app(c, svc.monitor.check_silent) == 0  # the planted 1-minute rule is gone
        clock.advance(minutes=9)
        assert in_app(c, svc.monitor.check_silent) == 1
        [inc] = _incidents(c, login(c, "alice"))
        assert inc["invariant_id"] == "agent_silent" and inc["severity"] == "high"


def _community(inv_id: str, predicate: p.AnyPredicate, severity: str = "low") -> Invariant:
    return Invariant(id=inv_id, name=f"community {inv_id}", invariant_type="structural",
                     predicate=predicate, severity=severity,  # type: ignore[arg-type]
                     source="community", contributed_by="mallory")  # fmt: skip


def test_each_silent_rule_keeps_its_own_timer(client: TestClient[Any], clock: FrozenClock) -> None:
    """Defence in depth: even with a shorter silent rule in force (put there past every
    check), the builtin's 10-minute high incident opens on time, once."""
    session, agent = setup(client, clock)
    send(client, agent, 0)
    svc = client.app.state.kefal
    short = msgspec.convert({"kind": "agent_silent", "params": {"minutes": 1}}, p.AnyPredicate)
    svc.rules.replace_community([_community("short-silent", short)])
    clock.advance(minutes=2)
    assert in_app(client, svc.monitor.check_silent) == 1  # the host went silent
    assert [i["invariant_id"] for i in _incidents(client, session)] == ["short-silent"]
    clock.advance(minutes=9)
    assert in_app(client, svc.monitor.check_silent) == 0  # silent already: not again
    by_rule = {i["invariant_id"]: i for i in _incidents(client, session)}
    assert (
        by_rule["agent_silent"]["severity"] == "high"
        and by_rule["agent_silent"]["status"] == "open"
    )
    assert by_rule["short-silent"]["severity"] == "low"
    in_app(client, svc.monitor.check_silent)
    assert len(_incidents(client, session)) == 2  # each fired once
    # back, then silent again: both timers start over
    send(client, agent, 12)
    assert {i["status"] for i in _incidents(client, session)} == {"resolved"}
    clock.advance(minutes=11)
    assert in_app(client, svc.monitor.check_silent) == 1
    opened = [i for i in _incidents(client, session) if i["status"] != "resolved"]
    assert sorted(i["invariant_id"] for i in opened) == ["agent_silent", "short-silent"]


def test_a_community_rule_with_a_builtins_subject_or_id_changes_nothing(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    """Incidents are keyed by (host, invariant, subject): a community rule reporting the same
    subject as a builtin opens its own incident, and dismissing it leaves the builtin's.
    A row carrying a builtin's id never replaces the builtin."""
    session, agent = setup(client, clock)
    svc = client.app.state.kefal
    same = msgspec.convert({"kind": "port_exposed", "params": {"ports": [5432]}}, p.AnyPredicate)
    svc.rules.replace_community([
        _community("pg-low", same),
        _community("database_exposed", same),  # a builtin's id: ignored
    ])  # fmt: skip
    assert svc.rules.catalog.by_id["database_exposed"].source == "builtin"
    send(client, agent, 0, add_ports=EXPOSED_PG)
    by_rule = {i["invariant_id"]: i for i in _incidents(client, session)}
    assert set(by_rule) == {"database_exposed", "pg-low"}
    assert by_rule["database_exposed"]["subject"] == by_rule["pg-low"]["subject"]
    assert by_rule["database_exposed"]["severity"] == "critical"
    r = client.post(f"/api/v1/incidents/{by_rule['pg-low']['id']}/dismiss", headers=session,
                    json={"reason": "noise"})  # fmt: skip
    assert r.status_code == 200, r.text
    clock.advance(minutes=1)
    send(client, agent, 1, add_ports=EXPOSED_PG)
    by_rule = {i["invariant_id"]: i for i in _incidents(client, session)}
    assert by_rule["database_exposed"]["status"] == "open"
    assert by_rule["database_exposed"]["occurrences"] == 2


def test_upgrade_from_schema_7_does_not_reopen_a_current_silence(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """A database from the release before per-rule timers: its silent host, whose builtin
    incident is open, is not counted silent again after the upgrade."""
    settings = make_settings(tmp_path / "data")
    with TestClient(create_app(settings, clock=clock)) as c:
        session, agent = setup(c, clock)
        send(c, agent, 0)
        clock.advance(minutes=11)
        assert in_app(c, c.app.state.kefal.monitor.check_silent) == 1
    conn = sqlite3.connect(settings.db_path)  # back to schema 7, as that release left it
    conn.executescript(  # organizations (16): tenant columns back to user_id, FKs to users
        "DROP TABLE api_keys; DROP TABLE invitations; DROP TABLE memberships; DROP TABLE orgs;"
        " DROP INDEX audit_by_org; ALTER TABLE audit DROP COLUMN org_id;"
        " ALTER TABLE invariants DROP COLUMN org_id;"
        + "".join(f" ALTER TABLE {t} RENAME COLUMN org_id TO user_id;" for t in (
            "agents", "hosts", "snapshots", "incidents", "channels", "subscriptions"))
        + " PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = replace(sql,"
        " 'REFERENCES orgs(id)', 'REFERENCES users(id)') WHERE type = 'table';"
        " PRAGMA writable_schema = OFF;"
    )
    conn.executescript(
        "DROP TABLE silent_timers; DROP INDEX hosts_by_seen;"
        " ALTER TABLE invariants DROP COLUMN status_reason; DROP TABLE suppressions;"
        " ALTER TABLE hosts DROP COLUMN suppressed; DROP TABLE enrollment_tokens;"
        " ALTER TABLE hosts DROP COLUMN host_group;"
        " ALTER TABLE incidents DROP COLUMN timer; DROP TABLE changes;"
        " DROP TABLE snapshot_segments; DROP TABLE sessions; DROP TABLE recovery_codes;"
        " DROP INDEX users_by_delete_after; ALTER TABLE users DROP COLUMN delete_after;"
        " ALTER TABLE hosts DROP COLUMN facts; ALTER TABLE hosts DROP COLUMN facts_of;"
        " PRAGMA user_version = 7;"
    )
    conn.close()
    clock.advance(minutes=5)
    with TestClient(create_app(settings, clock=clock)) as c:
        assert query(settings, "PRAGMA user_version")[0][0] >= 8
        assert in_app(c, c.app.state.kefal.monitor.check_silent) == 0
        [inc] = _incidents(c, login(c, "alice"))
        assert inc["invariant_id"] == "agent_silent" and inc["occurrences"] == 1
