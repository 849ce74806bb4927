"""DELETE /api/v1/auth/me: the account is disabled at once, a login within 30 days brings
it back, and after 30 days the periodic maintenance purges it and what only it owned."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

import pyotp
from click.testing import CliRunner
from litestar.testing import TestClient

from kefal_lite.cli import main
from kefal_lite.clock import FrozenClock, iso
from kefal_lite.config import Settings
from tests.builders import T0
from tests.conftest import EXPOSED_PG, PASSWORD, enroll, in_app, login, query, register, send
from tests.helpers.rules import GOOD


def _delete(client: TestClient[Any], headers: dict[str, str], **body: Any) -> Any:
    return client.request("DELETE", "/api/v1/auth/me", headers=headers, json=body)


def _me(client: TestClient[Any], headers: dict[str, str]) -> int:
    return client.get("/api/v1/auth/me", headers=headers).status_code


def _login(client: TestClient[Any], username: str, **extra: Any) -> Any:
    return client.post("/auth/login", json={"username": username, "password": PASSWORD, **extra})


def _prune(client: TestClient[Any]) -> None:
    in_app(client, client.app.state.kefal.monitor.prune)


def test_deletion_disables_at_once_and_a_login_within_30_days_cancels_it(
    client: TestClient[Any], settings: Settings, clock: FrozenClock
) -> None:
    register(client, "alice")
    a, b = login(client, "alice"), login(client, "alice")
    agent = enroll(client, "alice")
    r = _delete(client, a, password="not the password")
    assert r.status_code == 400 and r.json() == {"detail": "the password is wrong"}
    assert _me(client, a) == 200 and _me(client, b) == 200

    r = _delete(client, a, password=PASSWORD)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "disabled", "purge_after": iso(clock.now() + timedelta(days=30))}
    assert _me(client, a) == 401 and _me(client, b) == 401  # every session, at once
    assert send(client, agent).status_code == 401  # its agents are refused too
    listing = CliRunner().invoke(main, ["--data-dir", str(settings.data_path), "user", "list"])
    assert f"disabled deleted (purged after {r.json()['purge_after']})" in listing.output

    clock.advance(days=29, hours=23)
    _prune(client)  # not due yet
    r = _login(client, "alice")
    assert r.status_code == 200, r.text
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert _me(client, headers) == 200
    assert query(settings, "SELECT disabled, delete_after FROM users") == [(0, None)]
    clock.advance(days=2)
    _prune(client)
    assert _me(client, headers) == 200  # the deletion stays cancelled
    actions = [r[0] for r in query(settings, "SELECT action FROM audit ORDER BY id")]
    assert actions[-3:] == ["account_deletion_requested", "account_deletion_cancelled", "login"]


def test_an_admin_disable_is_not_undone_by_a_login(
    client: TestClient[Any], settings: Settings
) -> None:
    """Only the owner's own deletion is cancelled by logging in; the operator's disable
    also stops a pending purge (the account is kept, disabled)."""
    register(client, "alice")
    assert _delete(client, login(client, "alice"), password=PASSWORD).status_code == 200
    result = CliRunner().invoke(main, ["--data-dir", str(settings.data_path), "user",
                                       "disable", "alice"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _login(client, "alice").status_code == 401
    assert query(settings, "SELECT disabled, delete_after FROM users") == [(1, None)]


def test_with_mfa_on_deletion_takes_the_otp_too(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    register(client, "alice")
    headers = login(client, "alice")
    secret = client.post("/api/v1/auth/mfa/setup", headers=headers).json()["secret"]
    code = pyotp.TOTP(secret).at(clock.now())
    assert client.post("/api/v1/auth/mfa/enable", headers=headers, json={"otp": code}).is_success
    clock.advance(seconds=30)
    r = _delete(client, headers, password=PASSWORD)
    assert r.status_code == 400 and r.json() == {"detail": "otp required"}
    r = _delete(client, headers, password=PASSWORD, otp="000000")
    assert r.status_code == 400 and r.json() == {"detail": "the code does not match"}
    r = _delete(client, headers, password=PASSWORD, otp=pyotp.TOTP(secret).at(clock.now()))
    assert r.status_code == 200 and _me(client, headers) == 401
    # coming back takes the second factor as any login does
    assert _login(client, "alice").json() == {"detail": "otp required"}
    clock.advance(seconds=30)
    assert _login(client, "alice", otp=pyotp.TOTP(secret).at(clock.now())).status_code == 200


def _tenant(client: TestClient[Any], name: str, clock: FrozenClock) -> dict[str, Any]:
    """An account with some of everything a person owns."""
    register(client, name, email=f"{name}@example.org")
    headers = login(client, name)
    agent = enroll(client, name)
    assert send(client, agent, 0, add_ports=EXPOSED_PG).status_code == 200
    assert send(client, agent, 1, add_ports=EXPOSED_PG, logged_in_users=["root"]).status_code \
        == 200  # fmt: skip
    [inc, *_] = client.get("/api/v1/incidents", headers=headers).json()["items"]
    assert client.post(f"/api/v1/incidents/{inc['id']}/acknowledge", headers=headers).is_success
    r = client.post("/api/v1/suppressions", headers=headers, json={
        "invariant_id": "database_exposed", "reason": "the lab"})  # fmt: skip
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/enrollment-tokens", headers=headers, json={"name": "roll-out"})
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/invariants/contribute", headers=headers,
                    json={**GOOD, "name": f"{GOOD['name']} by {name}"})  # fmt: skip
    assert r.status_code in (200, 201), r.text
    assert client.post("/api/v1/auth/forgot-password", json={"email": f"{name}@example.org"}
                       ).is_success  # fmt: skip
    [(user_id,)] = query(client.app.state.kefal.settings,
                         "SELECT id FROM users WHERE username = ?", name)  # fmt: skip
    return {"headers": headers, "agent": agent, "id": user_id}


def _rows_of(settings: Settings, user_id: str) -> dict[str, int]:
    """Rows tied to the user in every table that has a user_id, org_id (the personal
    organization's id is the user's) or contributed_by column, and in those tied to its
    hosts, agents or incidents: whatever a later migration adds."""
    conn = sqlite3.connect(settings.db_path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        found: dict[str, int] = {}
        for table in tables:
            columns = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            where = []
            if "user_id" in columns:
                where.append("user_id = :u")
            if "org_id" in columns:
                where.append("org_id = :u")
            if "contributed_by" in columns:
                where.append("contributed_by = :u")
            if table in ("users", "orgs"):
                where.append("id = :u")
            if "host_id" in columns:
                where.append("host_id IN (SELECT id FROM hosts WHERE org_id = :u)")
            if "agent_id" in columns and table != "daily_active_agents":
                where.append("agent_id IN (SELECT id FROM agents WHERE org_id = :u)")
            if "incident_id" in columns:
                where.append("incident_id IN (SELECT id FROM incidents WHERE org_id = :u)")
            if where:
                sql = f"SELECT COUNT(*) FROM {table} WHERE " + " OR ".join(where)
                found[table] = conn.execute(sql, {"u": user_id}).fetchone()[0]
        return found
    finally:
        conn.close()


def test_purge_after_30_days_removes_the_account_and_its_data_only(
    open_client: TestClient[Any], clock: FrozenClock
) -> None:
    c = open_client
    settings: Settings = c.app.state.kefal.settings
    clock.set(T0 + timedelta(seconds=5))
    alice, bob = _tenant(c, "alice", clock), _tenant(c, "bob", clock)
    before_alice, before_bob = _rows_of(settings, alice["id"]), _rows_of(settings, bob["id"])
    for table in ("agents", "hosts", "snapshots", "incidents", "incident_events", "changes",
                  "suppressions", "enrollment_tokens", "invariants", "password_resets",
                  "sessions", "audit"):  # fmt: skip
        assert before_alice[table] > 0 and before_bob[table] > 0, table
    bobs_incidents = c.get("/api/v1/incidents?status=all", headers=bob["headers"]).json()
    # an organization alice made and is alone in has no one left to manage it: it goes too
    solo = c.post("/api/v1/orgs", json={"name": "Solo"}, headers=alice["headers"])
    assert solo.status_code == 201, solo.text
    assert send(c, alice["agent"], 2).status_code == 200  # its token is in the cache now

    assert _delete(c, alice["headers"], password=PASSWORD).status_code == 200
    clock.advance(days=30, seconds=-1)
    _prune(c)
    assert query(settings, "SELECT COUNT(*) FROM users WHERE id = ?", alice["id"]) == [(1,)]
    clock.advance(seconds=2)
    _prune(c)

    after = _rows_of(settings, alice["id"])
    assert after.pop("audit") > before_alice["audit"]  # the trail stays, and says so
    assert after == dict.fromkeys(after, 0)
    assert query(settings, "SELECT DISTINCT actor FROM audit WHERE user_id = ? AND actor"
                 " NOT IN ('retention', 'reset link')", alice["id"]) == [("alice",)]  # fmt: skip
    [(detail,)] = query(settings, "SELECT detail FROM audit WHERE action = 'account_purged'")
    assert '"snapshots"' in detail and '"users":1' in detail
    assert _login(c, "alice").status_code == 401
    assert query(settings, "SELECT COUNT(*) FROM orgs WHERE id = ?", solo.json()["id"]) == [(0,)]
    assert send(c, alice["agent"], 3).status_code == 401  # not a cached token's 500

    # the other tenant is untouched (maintenance folded its finished hour into a segment)
    bobs = _rows_of(settings, bob["id"])
    assert bobs.pop("snapshot_segments") == 1 and bobs.pop("snapshots") == 1
    assert bobs == {k: v for k, v in before_bob.items() if k not in ("snapshot_segments",
                                                                    "snapshots")}  # fmt: skip
    assert _me(c, bob["headers"]) == 200
    assert c.get("/api/v1/incidents?status=all", headers=bob["headers"]).json() == bobs_incidents
    assert send(c, bob["agent"], 2).status_code == 200
    # the name is free again
    register(c, "alice")


def test_a_running_subscription_must_be_cancelled_first(billed: TestClient[Any]) -> None:
    c = billed
    register(c, "alice")
    session = login(c, "alice")
    user_id = c.get("/api/v1/auth/me", headers=session).json()["id"]
    r = c.post("/api/v1/billing/checkout", headers=session, json={"plan": "starter"})
    assert r.status_code == 200, r.text
    # what PayPal's activation webhook does (test_billing goes through the webhook itself);
    # the subscription is the personal organization's, whose id is the user's
    conn = sqlite3.connect(c.app.state.kefal.settings.db_path)
    with conn:
        conn.execute("INSERT INTO subscriptions (org_id, plan, state, provider_id,"
                     " current_period_end, next_billing_date, updated_at) VALUES (?, 'starter',"
                     " 'active', ?, '2026-12-02T10:00:00Z', '2026-12-02T10:00:00Z', ?)",
                     (user_id, r.json()["subscription_id"], "2026-11-02T09:10:00.000Z"))  # fmt: skip
    conn.close()
    assert c.get("/api/v1/billing/status", headers=session).json()["state"] == "active"
    r = _delete(c, session, password=PASSWORD)
    assert r.status_code == 409 and "cancel it under Billing first" in r.json()["detail"]
    assert _me(c, session) == 200
    assert c.post("/api/v1/billing/cancel", headers=session).status_code == 200
    assert _delete(c, session, password=PASSWORD).status_code == 200
