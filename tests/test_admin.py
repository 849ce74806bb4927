"""Admin analytics, users and the audit trail."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from kefal_lite.clock import FrozenClock
from tests.builders import T0
from tests.conftest import EXPOSED_PG, PASSWORD, enroll, in_app, login, register, send
from tests.helpers.rules import GOOD


def _daily(c: TestClient[Any], admin: dict[str, str], days: int = 4) -> dict[str, dict[str, int]]:
    body = c.get(f"/api/v1/admin/dashboard?days={days}", headers=admin).json()
    return {d["date"]: {k: v for k, v in d.items() if k != "date"} for d in body["daily"]}


def test_counters_match_a_multi_day_run_before_and_after_pruning(
    open_client: TestClient[Any], clock: FrozenClock
) -> None:
    c = open_client
    clock.set(T0 + timedelta(seconds=5))  # 2026-11-02, in step with the snapshots
    register(c, "alice")
    admin = login(c, "alice")
    a1, a2 = enroll(c, "alice"), enroll(c, "alice")
    send(c, a1, 0, add_ports=EXPOSED_PG)  # 1 incident
    send(c, a1, 1, add_ports=EXPOSED_PG)  # a repeat, not a new incident
    send(c, a2, 0)
    clock.advance(days=1)  # 2026-11-03
    register(c, "bob")
    b1 = enroll(c, "bob")
    send(c, b1, 1440, logged_in_users=["root"])  # root_login
    send(c, a1, 1440, add_ports=EXPOSED_PG)  # a1 active again; incident still open
    clock.advance(days=1)  # 2026-11-04: quiet
    expected = {
        "2026-11-01": {"new_users": 0, "active_agents": 0, "snapshots": 0, "incidents": 0},
        "2026-11-02": {"new_users": 1, "active_agents": 2, "snapshots": 3, "incidents": 1},
        "2026-11-03": {"new_users": 1, "active_agents": 2, "snapshots": 2, "incidents": 1},
        "2026-11-04": {"new_users": 0, "active_agents": 0, "snapshots": 0, "incidents": 0},
    }
    assert _daily(c, admin) == expected
    # ...and they are what really happened
    items = c.get("/api/v1/incidents", headers=admin).json()["items"]
    items += c.get("/api/v1/incidents", headers=login(c, "bob")).json()["items"]
    per_day = Counter(i["first_seen_at"][:10] for i in items)
    assert {d: v["incidents"] for d, v in expected.items() if v["incidents"]} == dict(per_day)
    totals = c.get("/api/v1/admin/dashboard?days=4", headers=admin).json()["totals"]
    assert totals["users"] == 2 and totals["agents"] == 3 and totals["snapshots"] == 5
    assert totals["hosts_online"] == 3 and totals["hosts_silent"] == 0
    assert totals["open_incidents"] == {"critical": 1, "high": 0, "medium": 1, "low": 0}

    clock.advance(days=91)  # everything but each host's latest snapshot leaves retention
    assert in_app(c, c.app.state.kefal.monitor.prune) == 2
    after = _daily(c, admin, days=95)
    for day, values in expected.items():
        assert after[day] == values  # the counters do not depend on the history
    assert c.get("/api/v1/admin/dashboard", headers=admin).json()["totals"]["snapshots"] == 3
    assert len(c.get("/api/v1/admin/dashboard", headers=admin).json()["daily"]) == 30


ADMIN_ENDPOINTS = [
    ("GET", "/api/v1/admin/dashboard"),
    ("GET", "/api/v1/admin/users"),
    ("GET", "/api/v1/admin/users/{alice_id}"),
    ("POST", "/api/v1/admin/users"),
    ("GET", "/api/v1/admin/audit"),
]


@pytest.mark.parametrize("method, path", ADMIN_ENDPOINTS)
def test_admin_endpoints_are_for_admins(open_client: TestClient[Any], alice: dict[str, str],
                                        bob: dict[str, str], method: str, path: str) -> None:  # fmt: skip
    alice_id = open_client.get("/api/v1/auth/me", headers=alice).json()["id"]
    url = path.format(alice_id=alice_id)
    body = {"username": "carol", "password": PASSWORD} if method == "POST" else None
    as_bob = open_client.request(method, url, headers=bob, json=body)
    assert as_bob.status_code == 403 and "admin" in as_bob.json()["detail"]
    assert open_client.request(method, url, json=body).status_code == 401
    as_alice = open_client.request(method, url, headers=alice, json=body)
    assert as_alice.status_code == (201 if method == "POST" else 200), as_alice.text


def test_users_list_detail_and_create(open_client: TestClient[Any], alice: dict[str, str],
                                      bob: dict[str, str], clock: FrozenClock) -> None:  # fmt: skip
    c = open_client
    clock.set(T0 + timedelta(seconds=5))
    agent = enroll(c, "bob")
    send(c, agent, 0, add_ports=EXPOSED_PG)
    listing = c.get("/api/v1/admin/users", headers=alice).json()
    assert listing["total"] == 2
    bob_row = next(u for u in listing["items"] if u["username"] == "bob")
    assert {"id", "username", "email", "role", "plan", "billing_state", "agents", "last_active_at",
            "created_at"} <= set(bob_row)  # fmt: skip
    assert (
        bob_row["agents"] == 1
        and bob_row["plan"] == "self-hosted"
        and bob_row["billing_state"] == "active"
    )
    assert c.get("/api/v1/admin/users?q=BO", headers=alice).json()["total"] == 1
    assert c.get("/api/v1/admin/users?q=%25", headers=alice).json()["total"] == 0  # LIKE escaped
    detail = c.get(f"/api/v1/admin/users/{bob_row['id']}", headers=alice).json()
    assert set(detail) == {"user", "agents", "recent_incidents", "billing"}
    assert detail["user"]["username"] == "bob" and len(detail["agents"]) == 1
    assert [i["invariant_id"] for i in detail["recent_incidents"]] == ["database_exposed"]
    assert c.get("/api/v1/admin/users/nope", headers=alice).status_code == 404
    r = c.post(
        "/api/v1/admin/users",
        headers=alice,
        json={"username": "ops", "password": PASSWORD, "role": "admin"},
    )
    assert r.status_code == 201 and r.json()["role"] == "admin"
    assert (
        c.post(
            "/api/v1/admin/users", headers=alice, json={"username": "ops", "password": PASSWORD}
        ).status_code
        == 409
    )
    assert (
        c.post(
            "/api/v1/admin/users", headers=alice, json={"username": "x", "password": "short"}
        ).status_code
        == 400
    )
    assert login(c, "ops")


def test_every_audited_action_appears_once(
    open_client: TestClient[Any], clock: FrozenClock
) -> None:
    c = open_client
    clock.set(T0 + timedelta(seconds=5))
    register(c, "alice")
    admin = login(c, "alice")
    register(c, "bob")
    assert (
        c.post("/auth/login", json={"username": "bob", "password": "wrong password"}).status_code
        == 401
    )
    assert (
        c.post("/auth/login", json={"username": "ghost", "password": "wrong password"}).status_code
        == 401
    )
    bob = login(c, "bob")
    c.post(
        "/api/v1/auth/update-email",
        headers=bob,
        json={"email": "bob@example.org", "password": PASSWORD},
    )
    agent = enroll(c, "bob")
    c.post(f"/api/v1/agents/{agent['agent_id']}/rotate-token", headers=bob)
    send(c, enroll(c, "bob"), 0, add_ports=EXPOSED_PG)
    [inc] = c.get("/api/v1/incidents", headers=bob).json()["items"]
    c.post(f"/api/v1/incidents/{inc['id']}/acknowledge", headers=bob)
    c.post(f"/api/v1/incidents/{inc['id']}/dismiss", headers=bob, json={"reason": "lab"})
    c.delete(f"/api/v1/agents/{agent['agent_id']}", headers=bob)
    inv = c.post("/api/v1/invariants/contribute", headers=bob, json=GOOD).json()
    c.post(f"/api/v1/invariants/{inv['id']}/verify", headers=bob)
    c.post(f"/api/v1/invariants/{inv['id']}/retire", headers=admin)
    c.post("/api/v1/admin/users", headers=admin, json={"username": "carol", "password": PASSWORD})
    c.post(
        "/api/v1/auth/change-password",
        headers=bob,
        json={"current_password": PASSWORD, "new_password": "a new password!"},
    )
    bob = login(c, "bob", "a new password!")
    c.post("/auth/logout", headers=bob)

    rows = c.get("/api/v1/admin/audit?limit=500", headers=admin).json()["items"]
    counts = Counter(r["action"] for r in rows)
    for action in ("user_registered", "email_changed", "agent_token_rotated", "incident_acknowledged",
                   "incident_dismissed", "agent_revoked", "invariant_contributed", "invariant_verified",
                   "invariant_retired", "admin_user_created", "password_changed", "logout"):  # fmt: skip
        assert counts[action] == (2 if action == "user_registered" else 1), (action, counts)
    assert counts["login_failed"] == 2 and counts["agent_enrolled"] == 2 and counts["login"] == 3
    for r in rows:
        assert r["at"] and r["actor"] and r["action"]
    by_action = {r["action"]: r for r in rows}
    assert by_action["incident_acknowledged"]["target"] == inc["id"]
    assert by_action["agent_revoked"]["target"] == agent["agent_id"]
    assert (
        by_action["admin_user_created"]["actor"] == "alice"
        and by_action["admin_user_created"]["target"] == "carol"
    )
    ghost = [r for r in rows if r["action"] == "login_failed" and r["actor"] == "ghost"]
    assert (
        ghost[0]["user_id"] is None
        and ghost[0]["client"]
        and ghost[0]["detail"] == {"reason": "unknown user"}
    )

    # bob sees his own trail only
    own = c.get("/api/v1/audit?limit=500", headers=login(c, "bob", "a new password!")).json()[
        "items"
    ]
    assert own and all(
        r["user_id"] == rows[0]["user_id"] or r["actor"] in ("bob", "reset link") for r in own
    )
    assert not any(r["actor"] == "alice" for r in own)
    assert (
        c.get("/api/v1/audit?action=agent_revoked", headers=admin).json()["total"] == 0
    )  # alice did none

    # CSV export parses; no password or token anywhere in the trail
    export = c.get("/api/v1/admin/audit?format=csv", headers=admin)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(export.text)))
    total_now = c.get("/api/v1/admin/audit", headers=admin).json()["total"]
    assert len(parsed) == total_now and parsed[0].keys() >= {"at", "actor", "action", "target"}
    for secret in (PASSWORD, "a new password!", agent["token"], "not-bobs-password-1"):
        assert secret not in export.text
    later = (clock.now() + timedelta(hours=1)).isoformat()
    since = c.get("/api/v1/admin/audit", params={"since": later}, headers=admin)
    assert since.json()["total"] == 0
    assert c.get("/api/v1/admin/audit?since=yesterday", headers=admin).status_code == 400
