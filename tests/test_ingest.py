"""Ingest over HTTP, end to end against a real SQLite file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
from litestar.testing import TestClient

from kefal_lite.app import create_app
from kefal_lite.clock import FrozenClock
from kefal_lite.config import Settings
from tests.builders import T0, as_json, snap
from tests.conftest import (  # noqa: F401 - EXPOSED_PG, LOCAL_PG, counts: still imported from here
    EXPOSED_PG,
    LOCAL_PG,
    PASSWORD,
    counts,
    enroll,
    free_port,
    in_app,
    login,
    make_settings,
    query,
    register,
    send,
    setup,
)


def test_ingest_opens_dedups_and_auto_resolves(client: TestClient[Any], clock: FrozenClock) -> None:
    session, agent = setup(client, clock)
    r = send(client, agent, 0, add_ports=EXPOSED_PG)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "accepted" and body["incidents_opened"] == 1 and body["snapshot_id"]

    [inc] = client.get("/api/v1/incidents", headers=session).json()["items"]
    assert inc["invariant_id"] == "database_exposed" and inc["subject"] == "port:5432/tcp"
    assert inc["severity"] == "critical" and inc["status"] == "open" and inc["attack"] == "T1190"
    assert inc["evidence"]["address"] == "0.0.0.0" and inc["hostname"] == "web-01"
    assert inc["snapshot_id"] == body["snapshot_id"] and inc["occurrences"] == 1
    assert inc["remediation"]["mode"] == "auto"  # Mode 1: queued with the incident
    assert inc["remediation"]["status"] in ("pending", "proposed")

    clock.advance(minutes=1)
    r = send(client, agent, 1, add_ports=EXPOSED_PG)
    assert r.json()["incidents_opened"] == 0
    [inc] = client.get("/api/v1/incidents", headers=session).json()["items"]
    assert inc["occurrences"] == 2 and inc["last_seen_at"] > inc["first_seen_at"]

    clock.advance(minutes=1)
    send(client, agent, 2, add_ports=LOCAL_PG)
    detail = client.get(f"/api/v1/incidents/{inc['id']}", headers=session).json()
    assert (
        detail["status"] == "resolved" and detail["resolved_by"] == "auto" and detail["resolved_at"]
    )
    assert [
        h["action"] for h in detail["history"] if not h["action"].startswith("remediation")
    ] == [
        "opened",
        "resolved",
    ]

    # exposed again later: a new incident, not the resolved one reopened
    clock.advance(minutes=1)
    assert send(client, agent, 3, add_ports=EXPOSED_PG).json()["incidents_opened"] == 1
    assert client.get("/api/v1/incidents?status=open", headers=session).json()["total"] == 1
    assert client.get("/api/v1/incidents?status=all", headers=session).json()["total"] == 2
    # the default is what still needs a person: the resolved one is not listed
    assert client.get("/api/v1/incidents", headers=session).json()["total"] == 1

    [agent_row] = client.get("/api/v1/agents", headers=session).json()["items"]
    assert agent_row["hostname"] == "web-01" and agent_row["agent_version"] == "0.1.0"
    assert agent_row["last_seen_at"]


def test_event_incidents_stay_open_until_a_person_acts(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    session, agent = setup(client, clock)
    for i in range(3):
        send(client, agent, i)
    # a novel value alerts once it persisted for two snapshots
    assert (
        send(client, agent, 3, logged_in_users=["alice", "mallory"]).json()["incidents_opened"] == 0
    )
    assert (
        send(client, agent, 4, logged_in_users=["alice", "mallory"]).json()["incidents_opened"] == 1
    )
    send(client, agent, 5)  # mallory gone again
    [inc] = client.get("/api/v1/incidents", headers=session).json()["items"]
    assert inc["invariant_id"] == "new_login_user" and inc["status"] == "open"


def test_failures_change_nothing(
    client: TestClient[Any], clock: FrozenClock, settings: Settings
) -> None:
    _, agent = setup(client, clock)
    good = as_json(snap(0, agent_id=agent["agent_id"]))
    auth = {"Authorization": f"Bearer {agent['token']}"}
    r = client.post("/api/v1/ingest", content=good)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert (
        client.post(
            "/api/v1/ingest", content=good, headers={"Authorization": "Bearer kfa_nope"}
        ).status_code
        == 401
    )
    other = as_json(snap(0, agent_id="someone-else"))
    r = client.post("/api/v1/ingest", content=other, headers=auth)
    assert r.status_code == 403 and isinstance(r.json()["detail"], str)
    r = client.post("/api/v1/ingest", content=b'{"agent_id": 5}', headers=auth)
    assert r.status_code == 400
    locs = [d["loc"] for d in r.json()["detail"]]
    assert locs == [["body", "agent_id"]]
    data = msgspec.json.decode(good)
    data["processes"][0]["pid"] = "x"
    r = client.post("/api/v1/ingest", content=msgspec.json.encode(data), headers=auth)
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["body", "processes", 0, "pid"]
    data["processes"][0]["pid"] = 1
    data["listening_ports"][0]["port"] = 70000
    r = client.post("/api/v1/ingest", content=msgspec.json.encode(data), headers=auth)
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == [
        "body",
        "listening_ports",
        0,
        "port",
    ]
    assert client.post("/api/v1/ingest", content=b"not json", headers=auth).status_code == 400
    big = msgspec.json.decode(good)
    big["processes"] = big["processes"] * 3000
    r = client.post("/api/v1/ingest", content=msgspec.json.encode(big), headers=auth)
    assert r.status_code == 413
    assert counts(client.app.state.settings) == (0, 0, 0)


def test_payment_required_changes_nothing(client: TestClient[Any], clock: FrozenClock) -> None:
    class Lapsed:
        name = "test-lapsed"

        async def may_ingest(self, user_id: str) -> bool:
            return False

    _, agent = setup(client, clock)
    client.app.state.kefal.billing = Lapsed()
    r = send(client, agent, 0, add_ports=EXPOSED_PG)
    assert r.status_code == 402 and "expired" in r.json()["detail"]
    assert counts(client.app.state.settings) == (0, 0, 0)


def test_revoked_and_rotated_tokens_fail_from_the_next_request(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    session, agent = setup(client, clock)
    assert send(client, agent, 0).status_code == 200  # now cached
    rotated = client.post(
        f"/api/v1/agents/{agent['agent_id']}/rotate-token", headers=session
    ).json()
    assert send(client, agent, 1).status_code == 401
    assert send(client, rotated, 1).status_code == 200
    assert client.delete(f"/api/v1/agents/{agent['agent_id']}", headers=session).status_code == 204
    assert send(client, rotated, 2).status_code == 401


def test_tenants_never_see_each_others_hosts_or_incidents(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    clock.set(T0 + timedelta(seconds=5))
    a_agent = enroll(c, "alice")
    b_agent = enroll(c, "bob")
    send(c, a_agent, 0, add_ports=EXPOSED_PG)
    send(c, b_agent, 0, add_processes=[{"pid": 9, "name": "xmrig", "user": "bob"}])
    a_items = c.get("/api/v1/incidents", headers=alice).json()["items"]
    b_items = c.get("/api/v1/incidents", headers=bob).json()["items"]
    assert [i["invariant_id"] for i in a_items] == ["database_exposed"]
    assert [i["invariant_id"] for i in b_items] == ["crypto_miner"]
    a_inc = a_items[0]
    assert c.get(f"/api/v1/incidents/{a_inc['id']}", headers=bob).status_code == 404
    assert c.post(f"/api/v1/incidents/{a_inc['id']}/acknowledge", headers=bob).status_code == 404
    assert c.post(f"/api/v1/incidents/{a_inc['id']}/dismiss", headers=bob).status_code == 404
    assert c.get(f"/api/v1/hosts/{a_inc['host_id']}", headers=bob).status_code == 404
    assert c.get(f"/api/v1/incidents?host_id={a_inc['host_id']}", headers=bob).json()["total"] == 0
    assert c.get(f"/api/v1/incidents/{a_inc['id']}", headers=alice).json()["status"] == "open"


def test_acknowledge_dismiss_and_illegal_transitions(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    session, agent = setup(client, clock)
    send(client, agent, 0, add_ports=EXPOSED_PG)
    [inc] = client.get("/api/v1/incidents", headers=session).json()["items"]
    url = f"/api/v1/incidents/{inc['id']}"
    r = client.post(url + "/acknowledge", headers=session)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert client.post(url + "/acknowledge", headers=session).status_code == 409
    # acknowledged still counts repeats
    clock.advance(minutes=1)
    assert send(client, agent, 1, add_ports=EXPOSED_PG).json()["incidents_opened"] == 0
    expires = (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = client.post(
        url + "/dismiss", headers=session, json={"reason": "lab box", "expires_at": expires}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "dismissed" and body["dismiss_reason"] == "lab box"
    people = [h for h in body["history"] if not h["action"].startswith("remediation")]
    assert [h["action"] for h in people] == ["opened", "acknowledged", "dismissed"]
    assert people[1]["actor"] == "user:alice"
    assert client.post(url + "/dismiss", headers=session).status_code == 409
    assert client.post(url + "/acknowledge", headers=session).status_code == 409
    # the key stays quiet until the dismissal expires
    clock.advance(minutes=1)
    assert send(client, agent, 2, add_ports=EXPOSED_PG).json()["incidents_opened"] == 0
    clock.advance(hours=1)
    assert send(client, agent, 63, add_ports=EXPOSED_PG).json()["incidents_opened"] == 1
    r = client.post(url + "/dismiss", headers=session, json={"unknown": 1})
    assert r.status_code == 400
    assert client.post("/api/v1/incidents/nope/acknowledge", headers=session).status_code == 404


def test_list_filters_and_pagination(client: TestClient[Any], clock: FrozenClock) -> None:
    session, agent = setup(client, clock)
    send(client, agent, 0, add_ports=EXPOSED_PG, logged_in_users=["alice", "root"],
         add_processes=[{"pid": 9, "name": "ngrok", "user": "alice"}])  # fmt: skip
    all_items = client.get("/api/v1/incidents", headers=session).json()
    assert all_items["total"] == 3
    assert client.get("/api/v1/incidents?severity=medium", headers=session).json()["total"] == 2
    assert client.get("/api/v1/incidents?severity=critical", headers=session).json()["total"] == 1
    page = client.get("/api/v1/incidents?limit=2&offset=2", headers=session).json()
    assert page["total"] == 3 and len(page["items"]) == 1
    assert client.get("/api/v1/incidents?status=bogus", headers=session).status_code == 400
    assert client.get("/api/v1/incidents?severity=urgent", headers=session).status_code == 400


def test_silent_agent_timer_and_stale_incidents(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    session, agent = setup(client, clock)
    send(client, agent, 0, add_ports=EXPOSED_PG)
    svc = client.app.state.kefal
    clock.advance(minutes=9)
    assert in_app(client, svc.monitor.check_silent) == 0
    clock.advance(minutes=2)
    assert in_app(client, svc.monitor.check_silent) == 1
    assert in_app(client, svc.monitor.check_silent) == 0  # once
    items = {
        i["invariant_id"]: i
        for i in client.get("/api/v1/incidents", headers=session).json()["items"]
    }
    assert items["agent_silent"]["status"] == "open" and items["agent_silent"]["severity"] == "high"
    assert items["agent_silent"]["subject"] == f"agent:{agent['agent_id']}"
    assert items["database_exposed"]["status"] == "stale"
    assert client.get("/api/v1/incidents?status=stale", headers=session).json()["total"] == 1
    host = client.get(f"/api/v1/hosts/{items['agent_silent']['host_id']}", headers=session).json()
    assert host["status"] == "silent"

    clock.advance(minutes=1)
    send(client, agent, 12, add_ports=EXPOSED_PG)
    items = {
        i["invariant_id"]: i
        for i in client.get("/api/v1/incidents?status=all", headers=session).json()["items"]
    }
    assert (
        items["agent_silent"]["status"] == "resolved"
        and items["agent_silent"]["resolved_by"] == "auto"
    )
    assert items["database_exposed"]["status"] == "open"


def test_host_detail(client: TestClient[Any], clock: FrozenClock) -> None:
    session, agent = setup(client, clock)
    send(client, agent, 0, add_ports=EXPOSED_PG)
    [inc] = client.get("/api/v1/incidents", headers=session).json()["items"]
    host = client.get(f"/api/v1/hosts/{inc['host_id']}", headers=session).json()
    assert host["hostname"] == "web-01" and host["agent_id"] == agent["agent_id"]
    assert host["status"] == "online"
    assert {p["port"] for p in host["latest_snapshot"]["listening_ports"]} == {22, 80, 5432}
    assert [i["id"] for i in host["open_incidents"]] == [inc["id"]]
    assert client.get("/api/v1/hosts/nope", headers=session).status_code == 404


def test_retention_prunes_history_but_keeps_the_latest(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    session, agent = setup(client, clock)
    send(client, agent, 0)
    clock.advance(days=3)
    send(client, agent, 3 * 1440)
    clock.advance(days=88)  # past retention.changes_days (90) for the first snapshot
    settings = client.app.state.settings
    assert in_app(client, client.app.state.kefal.monitor.prune) == 1
    assert counts(settings)[1] == 1
    assert query(settings, "SELECT COUNT(*) FROM snapshot_segments") == [(0,)]
    [agent_row] = client.get("/api/v1/agents", headers=session).json()["items"]
    host_id = query(settings, "SELECT id FROM hosts")[0][0]
    assert client.get(f"/api/v1/hosts/{host_id}", headers=session).json()["latest_snapshot"]
    assert agent_row["status"] == "active"


def test_restart_keeps_baselines(tmp_path: Path, clock: FrozenClock) -> None:
    settings = make_settings(tmp_path / "d")
    clock.set(T0)
    with TestClient(create_app(settings, clock=clock)) as client:
        register(client, "alice")
        agent = enroll(client, "alice")
        for i in range(3):
            assert send(client, agent, i, logged_in_users=["alice", "bob"]).status_code == 200
    with TestClient(create_app(settings, clock=clock)) as client:
        session = login(client, "alice")
        # the learned values are still known: no novelty storm after a restart
        assert (
            send(client, agent, 3, logged_in_users=["alice", "bob"]).json()["incidents_opened"] == 0
        )
        eve = ["alice", "bob", "eve"]
        assert send(client, agent, 4, logged_in_users=eve).json()["incidents_opened"] == 0
        assert send(client, agent, 5, logged_in_users=eve).json()["incidents_opened"] == 1
        [inc] = client.get("/api/v1/incidents", headers=session).json()["items"]
        assert inc["subject"] == "user:eve"


def test_saturated_writer_answers_503_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """With a one-slot write queue and 40 agents posting at once, some get 503 + Retry-After
    (and would resend); every snapshot that got a 200 is in the database, and no other."""
    data = tmp_path / "data"
    env = {**os.environ, "KEFAL_DATA_DIR": str(data), "KEFAL_DATABASE_WRITE_QUEUE_MAX": "1"}
    subprocess.run([sys.executable, "-m", "kefal_lite", "user", "add", "alice", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, env=env, check=True, capture_output=True)  # fmt: skip
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "kefal_lite", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        agents = [httpx.post(f"{url}/api/v1/enroll", json={"username": "alice", "password": PASSWORD}).json()
                  for _ in range(40)]  # fmt: skip

        async def flood() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as c:
                return await asyncio.gather(*(
                    c.post(f"{url}/api/v1/ingest", content=as_json(snap(0, agent_id=a["agent_id"])),
                           headers={"Authorization": f"Bearer {a['token']}"})
                    for a in agents for _ in range(3)
                ))  # fmt: skip

        answers = asyncio.run(flood())
    finally:
        server.terminate()
        server.wait(timeout=30)
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 503}, codes
    busy = [r for r in answers if r.status_code == 503]
    assert busy, "a one-slot queue under 120 concurrent posts should refuse some"
    assert all(r.headers.get("retry-after") for r in busy)
    accepted = {r.json()["snapshot_id"] for r in answers if r.status_code == 200}
    settings = make_settings(data)
    stored = {row[0] for row in query(settings, "SELECT id FROM snapshots")}
    assert stored == accepted


def test_snapshot_history_is_stored_compressed_and_read_back_as_ingested(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    import zlib

    session, agent = setup(client, clock)
    raw = as_json(snap(0, agent_id=agent["agent_id"]))
    r = client.post(
        "/api/v1/ingest", content=raw, headers={"Authorization": f"Bearer {agent['token']}"}
    )
    [(body,)] = query(client.app.state.settings, "SELECT body FROM snapshots")
    assert body[:1] == b"\x78" and len(body) < len(raw) / 2 and zlib.decompress(body) == raw
    host_id = query(client.app.state.settings, "SELECT id FROM hosts")[0][0]
    latest = client.get(f"/api/v1/hosts/{host_id}", headers=session).json()["latest_snapshot"]
    assert latest == msgspec.json.decode(raw) and r.json()["snapshot_id"]


def test_learning_is_by_server_time_and_count(tmp_path: Path, clock: FrozenClock) -> None:
    """With learning_minutes=60, three snapshots are not enough: a new listener in the first
    hour joins the baseline quietly; after the hour, one that persists opens an incident.
    The host page says until when it learns."""
    settings = make_settings(tmp_path / "d", detection_learning_minutes=60)
    new_port = [{"port": 8081, "process": "nginx", "address": "0.0.0.0"}]
    later_port = [{"port": 8082, "process": "nginx", "address": "0.0.0.0"}]
    with TestClient(create_app(settings, clock=clock)) as client:
        session, agent = setup(client, clock)
        for i in range(5):
            clock.advance(minutes=1)
            assert send(client, agent, i, add_ports=new_port if i >= 3 else []).json()[
                "incidents_opened"] == 0  # fmt: skip
        host_id = query(settings, "SELECT id FROM hosts")[0][0]
        host = client.get(f"/api/v1/hosts/{host_id}", headers=session).json()
        assert host["learning"] is True
        assert host["learning_until"].startswith(
            (T0 + timedelta(minutes=61)).strftime("%Y-%m-%dT%H:%M")
        )
        clock.advance(minutes=60)
        both = new_port + later_port
        assert send(client, agent, 65, add_ports=both).json()["incidents_opened"] == 0  # persisting
        assert send(client, agent, 66, add_ports=both).json()["incidents_opened"] == 1
        [inc] = client.get("/api/v1/incidents", headers=session).json()["items"]
        assert inc["subject"] == "port:8082/tcp" and inc["severity"] == "medium"
        assert (
            inc["title"]
            == "nginx (pid 420, www-data) listens on 0.0.0.0:8082/tcp, a port this host never opened"
        )
        assert client.get(f"/api/v1/hosts/{host_id}", headers=session).json()["learning"] is False
