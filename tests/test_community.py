"""Community invariants end to end: contribute, verify, fire for another tenant, retire, CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from kefal_lite.app import create_app
from kefal_lite.cli import main
from kefal_lite.clock import FrozenClock
from kefal_lite.detect import packs
from tests.builders import T0, as_json, snap
from tests.conftest import PASSWORD, enroll, login, make_settings, query, register, send
from tests.helpers.rules import GOOD

IN_FORCE = 32 + len(packs.active())  # the builtins and the default packs

NOISY = {**GOOD, "name": "Anything with sshd",
         "predicate": {"kind": "process_name_in", "params": {"names": ["sshd"]}}}  # fmt: skip
# macOS's /private/tmp is /tmp under another name; the engine compares canonical paths,
# so a rule written for the alias can never fire, and verification says so.
NEVER = {**GOOD, "name": "macOS temp alias",
         "predicate": {"kind": "process_in_suspicious_path", "params": {"suspicious_paths": ["/private/tmp"]}}}  # fmt: skip


def _count(client: TestClient[Any]) -> int:
    return int(query(client.app.state.settings, "SELECT COUNT(*) FROM invariants")[0][0])


def test_good_contribution_verifies_and_fires_for_another_tenant(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    r = c.post("/api/v1/invariants/contribute", headers=bob, json=GOOD)
    assert r.status_code == 201, r.text
    inv = r.json()
    assert (
        inv["status"] == "pending"
        and inv["source"] == "community"
        and inv["contributed_by"] == "bob"
    )
    assert (
        c.post(
            "/api/v1/invariants/contribute",
            headers=alice,
            json={**GOOD, "name": "busybox NETCAT listener"},
        ).status_code
        == 409
    )
    listing = c.get("/api/v1/invariants", headers=alice).json()
    assert listing["total"] == IN_FORCE  # not in force before verification
    pack = [i for i in listing["items"] if i["source"] == "pack"]
    assert len(pack) == len(packs.active()) and all(i["attack"] for i in pack)
    assert {i["metadata"]["pack"] for i in pack} == set(packs.DEFAULT_PACKS) and all(
        i["status"] == "active" for i in pack
    )
    assert [
        i["name"] for i in c.get("/api/v1/invariants?status=pending", headers=bob).json()["items"]
    ] == [GOOD["name"]]
    assert c.get("/api/v1/invariants?status=pending", headers=alice).json()["total"] == 0

    register(c, "carol")
    carol = login(
        c, "carol"
    )  # neither contributor nor admin: the contribution does not exist for her
    assert c.post(f"/api/v1/invariants/{inv['id']}/verify", headers=carol).status_code == 404
    r = c.post(f"/api/v1/invariants/{inv['id']}/verify", headers=bob)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "active"
    report = body["report"]
    assert (
        report["constructive"]["fired_on_violation"] is True
        and report["constructive"]["fired_on_clean"] is False
    )
    assert (
        report["red_team"]["false_positives"] == [] and report["red_team"]["corpus_snapshots"] >= 32
    )
    assert {"variant": "owner in upper case", "caught": True} in report["red_team"]["evasions"]
    assert report["llm"] is None
    assert c.post(f"/api/v1/invariants/{inv['id']}/verify", headers=bob).status_code == 409

    items = c.get("/api/v1/invariants", headers=alice).json()["items"]
    assert len(items) == IN_FORCE + 1
    [mine] = [i for i in items if i["source"] == "community"]
    assert (
        mine["status"] == "active"
        and mine["contributed_by"] == "bob"
        and mine["category"] == "community"
    )

    # alice's host, next snapshot, no restart: the community rule protects her too
    clock.set(T0 + timedelta(seconds=5))
    agent = enroll(c, "alice")
    r = send(c, agent, 0, add_ports=[{"port": 4444, "process": "busybox", "address": "0.0.0.0"}])
    assert r.json()["incidents_opened"] >= 1
    incs = [
        i
        for i in c.get("/api/v1/incidents", headers=alice).json()["items"]
        if i["invariant_id"] == inv["id"]
    ]
    assert len(incs) == 1
    assert incs[0]["contributed_by"] == "bob" and incs[0]["invariant_name"] == GOOD["name"]
    assert incs[0]["subject"] == "port:4444/tcp" and incs[0]["severity"] == "high"


def test_retire_stops_firing_and_keeps_incidents(open_client: TestClient[Any], alice: dict[str, str],
                                                 bob: dict[str, str], clock: FrozenClock) -> None:  # fmt: skip
    c = open_client
    inv = c.post("/api/v1/invariants/contribute", headers=bob, json=GOOD).json()
    c.post(f"/api/v1/invariants/{inv['id']}/verify", headers=bob)
    clock.set(T0 + timedelta(seconds=5))
    agent = enroll(c, "bob")
    busybox = [{"port": 4444, "process": "busybox", "address": "0.0.0.0"}]
    send(c, agent, 0, add_ports=busybox)
    assert (
        c.post(f"/api/v1/invariants/{inv['id']}/retire", headers=bob).status_code == 403
    )  # bob is no admin
    r = c.post(
        f"/api/v1/invariants/{inv['id']}/retire", headers=alice
    )  # alice, first user, is admin
    assert r.status_code == 200 and r.json()["status"] == "retired"
    assert c.post(f"/api/v1/invariants/{inv['id']}/retire", headers=alice).status_code == 409
    assert c.get("/api/v1/invariants", headers=bob).json()["total"] == IN_FORCE
    clock.advance(minutes=1)
    assert (
        send(
            c, agent, 1, add_ports=[{"port": 4445, "process": "socat", "address": "0.0.0.0"}]
        ).json()["incidents_opened"]
        == 0
    )
    incs = [
        i
        for i in c.get("/api/v1/incidents", headers=bob).json()["items"]
        if i["invariant_id"] == inv["id"]
    ]
    assert (
        len(incs) == 1 and incs[0]["status"] == "open"
    )  # kept, not resolved by a rule no longer in force


def test_noisy_contribution_is_rejected_naming_the_snapshot(client: TestClient[Any]) -> None:
    register(client, "alice")
    session = login(client, "alice")
    inv = client.post("/api/v1/invariants/contribute", headers=session, json=NOISY).json()
    body = client.post(f"/api/v1/invariants/{inv['id']}/verify", headers=session).json()
    assert body["status"] == "rejected"
    fps = body["report"]["red_team"]["false_positives"]
    assert fps and any(fp["snapshot"] == "ubuntu-web#0" for fp in fps)
    assert "ubuntu-web#0" in " ".join(body["report"]["reasons"])
    rejected = client.get("/api/v1/invariants?status=rejected", headers=session).json()["items"]
    assert [i["name"] for i in rejected] == [NOISY["name"]] and rejected[0]["report"][
        "passed"
    ] is False
    assert client.get("/api/v1/invariants", headers=session).json()["total"] == IN_FORCE


def test_contribution_that_cannot_fire_is_rejected(client: TestClient[Any]) -> None:
    register(client, "alice")
    session = login(client, "alice")
    inv = client.post("/api/v1/invariants/contribute", headers=session, json=NEVER)
    assert inv.status_code == 201, inv.text
    body = client.post(f"/api/v1/invariants/{inv.json()['id']}/verify", headers=session).json()
    assert body["status"] == "rejected"
    assert body["report"]["constructive"]["fired_on_violation"] is False
    assert "did not fire on its own constructive violation" in body["report"]["reasons"][0]


@pytest.mark.parametrize("change, where", [
    ({"predicate": {"kind": "rm_rf", "params": {}}}, ["body", "predicate", "kind"]),
    ({"predicate": {"kind": "port_exposed", "params": {"ports": ["5432"]}}}, ["body", "predicate", "params", "ports", 0]),
    ({"predicate": {"kind": "port_exposed", "params": {"ports": [70000]}}}, ["body", "predicate", "params", "ports", 0]),
    ({"predicate": {"kind": "port_exposed", "params": {"ports": [1], "also": 2}}}, ["body", "predicate", "params", "also"]),
    ({"extra": True}, ["body", "extra"]),
    ({"metadata": {"description": "x", "evil": "y"}}, ["body", "metadata", "evil"]),
    ({"severity": "apocalyptic"}, ["body", "severity"]),
    ({"invariant_type": "vibes"}, ["body", "invariant_type"]),
    ({"name": "x" * 10_000_000}, ["body", "name"]),
    ({"name": "<script>"}, ["body", "name"]),
    ({"predicate": {"kind": "process_cmdline_contains", "params": {"patterns": ["nc.*-e"]}}}, ["body", "predicate", "params"]),
    ({"predicate": {"kind": "any_of", "params": {"predicates": [{"kind": "any_of", "params": {"predicates": []}}]}}},
     ["body", "predicate", "params", "predicates", 0, "kind"]),
])  # fmt: skip
def test_malformed_contributions_are_400_and_not_stored(client: TestClient[Any], change: dict[str, Any],
                                                        where: list[Any]) -> None:  # fmt: skip
    register(client, "alice")
    session = login(client, "alice")
    r = client.post("/api/v1/invariants/contribute", headers=session, json={**GOOD, **change})
    assert r.status_code == 400, r.text[:300]
    assert r.json()["detail"][0]["loc"] == where
    assert _count(client) == 0


def test_builtin_names_are_taken(client: TestClient[Any]) -> None:
    register(client, "alice")
    session = login(client, "alice")
    r = client.post(
        "/api/v1/invariants/contribute", headers=session, json={**GOOD, "name": "Crypto_Miner"}
    )
    assert r.status_code == 409 and _count(client) == 0


def test_cli_test_command_on_files(tmp_path: Path) -> None:
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps(GOOD))
    quiet = tmp_path / "quiet.json"
    quiet.write_bytes(as_json(snap(0)))
    loud = tmp_path / "loud.json"
    loud.write_text(
        "["
        + as_json(snap(1)).decode()
        + ","
        + as_json(
            snap(2, add_ports=[{"port": 4444, "process": "socat", "address": "0.0.0.0"}])
        ).decode()
        + "]"
    )
    r = CliRunner().invoke(main, ["invariants", "test", str(rule), str(quiet), str(loud)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("quiet.json#0 (web-01") and lines[0].endswith("quiet")
    assert "loud.json#1" in r.output and "FIRES [high] port:4444/tcp" in r.output
    assert '"process": "socat"' in r.output and "1 finding(s) over 2 file(s)" in r.output
    r = CliRunner().invoke(main, ["invariants", "test", str(rule), "--verify"])
    assert r.exit_code == 0 and '"passed": true' in r.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**GOOD, "predicate": {"kind": "nope"}}))
    r = CliRunner().invoke(main, ["invariants", "test", str(bad), str(quiet)])
    assert r.exit_code != 0 and "kind" in r.output


def test_export_and_import_between_servers(tmp_path: Path, clock: FrozenClock) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    with TestClient(create_app(make_settings(one), clock=clock)) as c:
        register(c, "alice")
        session = login(c, "alice")
        for rule in (
            GOOD,
            {
                **GOOD,
                "name": "Tunnel: bore",
                "predicate": {"kind": "process_name_in", "params": {"names": ["bore"]}},
            },
        ):
            inv = c.post("/api/v1/invariants/contribute", headers=session, json=rule).json()
            assert (
                c.post(f"/api/v1/invariants/{inv['id']}/verify", headers=session).json()["status"]
                == "active"
            )
    pack = tmp_path / "pack.json"
    r = CliRunner().invoke(main, ["--data-dir", str(one), "invariants", "export", "-o", str(pack)])
    assert r.exit_code == 0, r.output
    data = json.loads(pack.read_text())
    assert data["format"] == "kefal-lite/invariants/1" and len(data["invariants"]) == 2
    # tamper with one so that re-verification on the receiving side rejects it
    data["invariants"][1]["predicate"]["params"]["names"] = ["sshd"]
    pack.write_text(json.dumps(data))
    # the second server's own store (on PostgreSQL, its own schema; on SQLite, its file)
    runner = CliRunner(env={"KEFAL_DATABASE_URL": make_settings(two).database_url or None})
    assert runner.invoke(main, ["--data-dir", str(two), "user", "add", "ops", "--admin", "--password-stdin"],
                         input=PASSWORD + "\n").exit_code == 0  # fmt: skip
    r = runner.invoke(
        main, ["--data-dir", str(two), "invariants", "import", str(pack), "--owner", "ops"]
    )
    assert r.exit_code == 0, r.output
    assert "active: Busybox netcat listener" in r.output and "rejected: Tunnel: bore" in r.output
    again = runner.invoke(
        main, ["--data-dir", str(two), "invariants", "import", str(pack), "--owner", "ops"]
    )
    assert "skipped: Busybox netcat listener" in again.output
    with TestClient(create_app(make_settings(two), clock=clock)) as c:
        items = c.get("/api/v1/invariants", headers=login(c, "ops")).json()["items"]
        core = {inv.id for inv in packs.active()}
        [imported] = [i for i in items if i["source"] == "pack" and i["id"] not in core]
        assert imported["name"] == GOOD["name"] and imported["contributed_by"] == "ops"
