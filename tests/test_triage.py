"""Suppressions, bulk actions, manual resolve and baseline acceptance, over real HTTP against a
real SQLite file."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar.testing import TestClient

from kefal_lite.clock import FrozenClock, iso
from kefal_lite.detect import state as host_state
from kefal_lite.detect.model import Finding
from kefal_lite.detect.triage import rule, split
from kefal_lite.store.db import Database
from kefal_lite.triage import SuppressionCache
from tests.builders import T0
from tests.conftest import enroll, query
from tests.test_ingest import EXPOSED_PG, send

MINER = [{"pid": 4242, "name": "xmrig", "user": "www-data", "exe": "/usr/bin/xmrig"}]


def _incidents(c: TestClient[Any], session: dict[str, str], status: str = "active") -> Any:
    return c.get(f"/api/v1/incidents?status={status}&limit=500", headers=session).json()["items"]


def _audit(c: TestClient[Any], session: dict[str, str], action: str) -> list[Any]:
    items: list[Any] = c.get(f"/api/v1/audit?action={action}", headers=session).json()["items"]
    return items


def _start(c: TestClient[Any], clock: FrozenClock) -> dict[str, str]:
    clock.set(T0 + timedelta(seconds=5))
    return enroll(c, "alice")


def test_suppression_from_an_incident_quiets_the_key_and_counts_on_the_host(
    open_client: TestClient[Any], alice: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    agent = _start(c, clock)
    send(c, agent, 0, add_ports=EXPOSED_PG)
    [inc] = _incidents(c, alice)
    # "not on this host", one click: the suppression, and the incident it came from resolved
    r = c.post("/api/v1/suppressions", headers=alice, json={
        "invariant_id": "database_exposed", "host_id": inc["host_id"],
        "reason": "the lab database", "incident_id": inc["id"]})  # fmt: skip
    assert r.status_code == 201, r.text
    sup = r.json()
    assert sup["active"] and sup["created_by"] == "alice" and "user_id" not in sup
    done = c.get(f"/api/v1/incidents/{inc['id']}", headers=alice).json()
    assert done["status"] == "resolved" and done["resolved_by"] == "suppression"
    assert done["history"][-1]["actor"] == "user:alice"

    # the same finding again: no incident, counted on the host; another finding still opens
    clock.advance(minutes=1)
    assert send(c, agent, 1, add_ports=EXPOSED_PG).json()["incidents_opened"] == 0
    clock.advance(minutes=1)
    r = send(c, agent, 2, add_ports=EXPOSED_PG, add_processes=MINER)
    assert r.json()["incidents_opened"] == 1
    assert [i["invariant_id"] for i in _incidents(c, alice)] == ["crypto_miner"]
    host = c.get(f"/api/v1/hosts/{inc['host_id']}", headers=alice).json()
    assert host["suppressed"] == 2
    [listed] = c.get("/api/v1/suppressions", headers=alice).json()["items"]
    assert listed["id"] == sup["id"] and listed["hits"] == 2 and listed["last_hit_at"]
    [created] = _audit(c, alice, "suppression_created")
    assert created["target"] == sup["id"] and created["detail"]["incident_id"] == inc["id"]

    # deleted: the finding opens an incident again
    assert c.delete(f"/api/v1/suppressions/{sup['id']}", headers=alice).status_code == 204
    assert c.delete(f"/api/v1/suppressions/{sup['id']}", headers=alice).status_code == 404
    assert len(_audit(c, alice, "suppression_deleted")) == 1  # the refused delete left no row
    clock.advance(minutes=1)
    assert send(c, agent, 3, add_ports=EXPOSED_PG).json()["incidents_opened"] == 1


def test_not_anywhere_glob_matches_every_host_and_only_the_subject(
    open_client: TestClient[Any], alice: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    agent = _start(c, clock)
    other = enroll(c, "alice")
    r = c.post("/api/v1/suppressions", headers=alice,
               json={"invariant_id": "crypto_miner", "subject_glob": "process:xmr*",
                     "reason": "our benchmark rig"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert send(c, agent, 0, add_processes=MINER).json()["incidents_opened"] == 0
    assert send(c, other, 0, add_processes=MINER).json()["incidents_opened"] == 0
    minerd = [{"pid": 77, "name": "minerd", "user": "www-data", "exe": "/usr/bin/minerd"}]
    clock.advance(minutes=1)
    assert send(c, agent, 1, add_processes=minerd).json()["incidents_opened"] == 1
    assert query(c.app.state.kefal.settings, "SELECT SUM(suppressed) FROM hosts")[0][0] == 2


def test_expired_suppression_stops_matching(
    open_client: TestClient[Any], alice: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    agent = _start(c, clock)
    until = iso(clock.now() + timedelta(hours=1))
    r = c.post(
        "/api/v1/suppressions",
        headers=alice,
        json={"invariant_id": "crypto_miner", "reason": "an hour", "expires_at": until},
    )
    assert r.status_code == 201 and r.json()["expires_at"] == until
    assert send(c, agent, 0, add_processes=MINER).json()["incidents_opened"] == 0
    clock.advance(hours=2)  # the server's clock, not the snapshot's, decides
    assert send(c, agent, 120, add_processes=MINER).json()["incidents_opened"] == 1
    assert [i["invariant_id"] for i in _incidents(c, alice)] == ["crypto_miner"]
    [listed] = c.get("/api/v1/suppressions", headers=alice).json()["items"]
    assert listed["active"] is False


def test_a_suppressed_finding_neither_bumps_nor_resolves_an_open_incident(
    open_client: TestClient[Any], alice: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    agent = _start(c, clock)
    send(c, agent, 0, add_ports=EXPOSED_PG)
    [inc] = _incidents(c, alice)
    r = c.post("/api/v1/suppressions", headers=alice,
               json={"host_id": inc["host_id"], "reason": "a lab box"})  # fmt: skip
    assert r.status_code == 201
    clock.advance(minutes=1)
    send(c, agent, 1, add_ports=EXPOSED_PG)
    after = c.get(f"/api/v1/incidents/{inc['id']}", headers=alice).json()
    # not counted, and not auto-resolved as if the exposure were gone: a person decides
    assert after["status"] == "open" and after["occurrences"] == 1
    assert after["last_seen_at"] == inc["last_seen_at"]


def test_suppression_input_is_checked_and_tenants_are_isolated(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    a_agent = _start(c, clock)
    b_agent = enroll(c, "bob")
    send(c, a_agent, 0, add_ports=EXPOSED_PG)
    send(c, b_agent, 0, add_processes=MINER)
    [a_inc] = _incidents(c, alice)
    [b_inc] = _incidents(c, bob)
    past = iso(clock.now() - timedelta(minutes=1))
    for body in (
        {"reason": "no selector"},
        {"invariant_id": "crypto_miner"},  # no reason
        {"invariant_id": "crypto_miner", "reason": "   "},
        {"subject_glob": "*", "reason": "everything"},
        {"subject_glob": "x" * 201, "reason": "long"},
        {"invariant_id": "crypto_miner", "reason": "r", "expires_at": past},
        {"invariant_id": "crypto_miner", "reason": "r", "extra": 1},
        {"invariant_id": "crypto_miner", "reason": "r", "expires_at": "tomorrow"},
    ):
        r = c.post("/api/v1/suppressions", headers=alice, json=body)
        assert r.status_code == 400, (body, r.text)
        assert isinstance(r.json()["detail"], list), r.text
    for body in (
        {"invariant_id": "no_such_rule", "reason": "r"},
        {"host_id": b_inc["host_id"], "reason": "bob's host"},
        {"invariant_id": "crypto_miner", "reason": "r", "incident_id": b_inc["id"]},
    ):
        r = c.post("/api/v1/suppressions", headers=alice, json=body)
        assert r.status_code == 404, (body, r.text)
        assert isinstance(r.json()["detail"], str)
    r = c.post("/api/v1/suppressions", headers=alice, json={
        "invariant_id": "crypto_miner", "reason": "r", "incident_id": a_inc["id"]})  # fmt: skip
    assert r.status_code == 409 and "would not cover" in r.json()["detail"]
    assert query(c.app.state.kefal.settings, "SELECT COUNT(*) FROM suppressions")[0][0] == 0
    assert c.get(f"/api/v1/incidents/{b_inc['id']}", headers=bob).json()["status"] == "open"
    assert _audit(c, alice, "suppression_created") == []

    # bob's suppression is invisible to alice and cannot be deleted by her
    r = c.post("/api/v1/suppressions", headers=bob,
               json={"host_id": b_inc["host_id"], "reason": "bob's"})  # fmt: skip
    assert r.status_code == 201
    assert c.get("/api/v1/suppressions", headers=alice).json() == {"items": [], "total": 0}
    assert c.delete(f"/api/v1/suppressions/{r.json()['id']}", headers=alice).status_code == 404
    assert c.get("/api/v1/suppressions", headers=bob).json()["total"] == 1
    # and it quiets only bob's findings: alice's same rule still fires
    clock.advance(minutes=1)
    assert send(c, a_agent, 1, add_processes=MINER).json()["incidents_opened"] == 1
    assert a_inc["status"] == "open"


def test_bulk_actions_per_id_results_and_isolation(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    a_agent = _start(c, clock)
    b_agent = enroll(c, "bob")
    send(c, a_agent, 0, add_ports=EXPOSED_PG, add_processes=MINER)
    send(c, b_agent, 0, add_processes=MINER)
    a1, a2 = (i["id"] for i in _incidents(c, alice))
    [b1] = (i["id"] for i in _incidents(c, bob))
    r = c.post("/api/v1/incidents/bulk", headers=alice,
               json={"ids": [a1, b1, "nope", a1], "action": "acknowledge"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert [(x["id"], x["result"]) for x in r.json()["results"]] == [
        (a1, "ok"), (b1, "not_found"), ("nope", "not_found")]  # fmt: skip
    assert r.json()["ok"] == 1
    assert c.get(f"/api/v1/incidents/{b1}", headers=bob).json()["status"] == "open"
    r = c.post("/api/v1/incidents/bulk", headers=alice,
               json={"ids": [a1, a2], "action": "acknowledge"})  # fmt: skip
    assert [x["result"] for x in r.json()["results"]] == ["conflict", "ok"]
    assert "acknowledged" in r.json()["results"][0]["detail"]
    r = c.post("/api/v1/incidents/bulk", headers=alice,
               json={"ids": [a1, a2], "action": "resolve", "reason": "patched"})  # fmt: skip
    assert [x["result"] for x in r.json()["results"]] == ["ok", "ok"]
    assert {i["resolved_by"] for i in _incidents(c, alice, "resolved")} == {"manual"}
    r = c.post("/api/v1/incidents/bulk", headers=alice, json={"ids": [a1], "action": "dismiss"})
    assert r.json()["results"][0]["result"] == "conflict"
    # each change its own audit row; refusals none
    assert len(_audit(c, alice, "incident_acknowledged")) == 2
    assert len(_audit(c, alice, "incident_resolved")) == 2
    assert _audit(c, alice, "incident_dismissed") == []
    for body in ({"ids": [], "action": "resolve"}, {"ids": ["x"] * 501, "action": "resolve"},
                 {"ids": [a1], "action": "delete"}, {"ids": ["x" * 65], "action": "resolve"}):  # fmt: skip
        r = c.post("/api/v1/incidents/bulk", headers=alice, json=body)
        assert r.status_code == 400 and isinstance(r.json()["detail"], list)


def test_bulk_dismiss_keeps_the_key_quiet(
    open_client: TestClient[Any], alice: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    agent = _start(c, clock)
    send(c, agent, 0, add_processes=MINER)
    ids = [i["id"] for i in _incidents(c, alice)]
    r = c.post("/api/v1/incidents/bulk", headers=alice,
               json={"ids": ids, "action": "dismiss", "reason": "known"})  # fmt: skip
    assert [x["result"] for x in r.json()["results"]] == ["ok"]
    assert _incidents(c, alice) == []
    [d] = _incidents(c, alice, "dismissed")
    assert d["dismiss_reason"] == "known"


def test_manual_resolve(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    agent = _start(c, clock)
    send(c, agent, 0, add_processes=MINER)
    [inc] = _incidents(c, alice)
    url = f"/api/v1/incidents/{inc['id']}/resolve"
    assert c.post(url, headers=bob).status_code == 404
    r = c.post(url, headers=alice, json={"reason": "killed it"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "resolved" and body["resolved_by"] == "manual" and body["resolved_at"]
    assert body["history"][-1]["detail"] == {"by": "manual", "reason": "killed it"}
    r = c.post(url, headers=alice)
    assert r.status_code == 409 and "resolved" in r.json()["detail"]
    assert len(_audit(c, alice, "incident_resolved")) == 1
    assert c.post(url, headers=alice, json={"reason": 5}).status_code == 400


def _new_port_incident(c: TestClient[Any], session: dict[str, str], agent: dict[str, str],
                       clock: FrozenClock) -> Any:  # fmt: skip
    for i in range(3):  # the learning snapshots
        send(c, agent, i)
        clock.advance(minutes=1)
    for i in (3, 4):  # a novelty alerts once it persists (novelty_persistence = 2)
        send(c, agent, i, add_ports=[{"port": 8081, "process": "sshd", "address": "0.0.0.0"}])
        clock.advance(minutes=1)
    [inc] = [i for i in _incidents(c, session) if i["invariant_id"] == "new_listening_port"]
    assert inc["subject"] == "port:8081/tcp"
    return inc


def test_baseline_accepts_a_novelty_into_resident_and_persisted_state(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    agent = _start(c, clock)
    inc = _new_port_incident(c, alice, agent, clock)
    svc = c.app.state.kefal
    memo = svc.ingestor._by_host_id[inc["host_id"]]
    # A baseline that does not hold the value yet (as when a novelty must persist before it
    # is learned): the action is what puts it there.
    held = memo.state.baselines["listening_ports"]
    memo.state = msgspec.structs.replace(memo.state, baselines={
        **memo.state.baselines, "listening_ports": tuple(v for v in held if v != "8081/tcp")})  # fmt: skip
    url = f"/api/v1/incidents/{inc['id']}/baseline"
    assert c.post(url, headers=bob).status_code == 404
    r = c.post(url, headers=alice)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "resolved" and r.json()["resolved_by"] == "baseline"
    assert "8081/tcp" in memo.state.baselines["listening_ports"]
    [(blob,)] = query(svc.settings, "SELECT state FROM hosts WHERE id = ?", inc["host_id"])
    assert "8081/tcp" in host_state.loads(blob).baselines["listening_ports"]
    [row] = _audit(c, alice, "incident_baselined")
    assert row["detail"] == {"field": "listening_ports", "value": "8081/tcp"}
    clock.advance(minutes=1)
    r = send(c, agent, 5, add_ports=[{"port": 8081, "process": "sshd", "address": "0.0.0.0"}])
    assert r.json()["incidents_opened"] == 0
    # done already: 409, state untouched
    r = c.post(url, headers=alice)
    assert r.status_code == 409 and "resolved" in r.json()["detail"]


def test_baseline_refuses_a_non_novelty_incident(
    open_client: TestClient[Any], alice: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    agent = _start(c, clock)
    send(c, agent, 0, add_ports=EXPOSED_PG)
    [inc] = _incidents(c, alice)
    r = c.post(f"/api/v1/incidents/{inc['id']}/baseline", headers=alice)
    assert r.status_code == 409
    assert "database_exposed" in r.json()["detail"] and "novel_value" in r.json()["detail"]
    assert c.get(f"/api/v1/incidents/{inc['id']}", headers=alice).json()["status"] == "open"
    assert _audit(c, alice, "incident_baselined") == []


def test_incident_list_defaults_to_what_needs_a_person(
    open_client: TestClient[Any], alice: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    agent = _start(c, clock)
    send(c, agent, 0, add_ports=EXPOSED_PG, add_processes=MINER)
    first, second = _incidents(c, alice)
    c.post(f"/api/v1/incidents/{first['id']}/acknowledge", headers=alice)
    c.post(f"/api/v1/incidents/{second['id']}/resolve", headers=alice)
    default = c.get("/api/v1/incidents", headers=alice).json()
    assert [i["id"] for i in default["items"]] == [first["id"]] and default["total"] == 1
    assert c.get("/api/v1/incidents?status=all", headers=alice).json()["total"] == 2
    assert c.get("/api/v1/incidents?status=resolved", headers=alice).json()["total"] == 1


# --- the pure matcher and the cache ----------------------------------------------------

NOW = datetime(2026, 11, 2, 9, 0)


def test_split_matches_invariant_host_glob_and_expiry() -> None:
    f1 = Finding("crypto_miner", "process:xmrig", "high", "t", {})
    f2 = Finding("new_root_process", "process:tar", "medium", "t", {})
    rules = (
        rule("s1", "crypto_miner", "h2", None, None),  # another host
        rule("s2", None, None, "process:ta?", None),
        rule("s3", "crypto_miner", None, "process:[xy]*", NOW),  # expired at NOW
    )
    out = split([f1, f2], rules, "h1", NOW)
    assert out.kept == [f1] and out.hits == {"s2": 1}
    assert out.held == frozenset({("new_root_process", "process:tar")})
    out = split([f1, f2], rules, "h1", NOW - timedelta(seconds=1))
    assert out.kept == [] and out.hits == {"s2": 1, "s3": 1}
    out = split([f1], rules, "h2", NOW)
    assert out.kept == [] and out.hits == {"s1": 1}
    # fnmatch is anchored and case-sensitive: no partial or case-folded match
    assert split([f1], (rule("s", None, None, "xmrig", None),), "h1", NOW).kept == [f1]
    assert split([f1], (rule("s", None, None, "process:XMRIG", None),), "h1", NOW).kept == [f1]


def test_cache_keeps_no_load_that_raced_a_change(tmp_path: Any) -> None:
    async def main() -> None:
        db = Database(tmp_path / "k.db")
        await db.start()
        try:
            cache = SuppressionCache(db)
            real_read = db.read

            async def read_then_change(fn: Any, *args: Any) -> Any:
                rows = await real_read(fn, *args)
                cache.invalidate("u1")  # a create committed while this load was in flight
                return rows

            db.read = read_then_change  # type: ignore[method-assign]
            assert await cache.rules("u1") == ()
            db.read = real_read  # type: ignore[method-assign]
            assert "u1" not in cache._rules  # the stale load was not kept
            assert await cache.rules("u1") == ()
            assert "u1" in cache._rules
        finally:
            await db.close()

    asyncio.run(main())
