"""Billing against a small PayPal-speaking server on 127.0.0.1, and the noop default."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from kefal_lite.app import create_app
from kefal_lite.clock import FrozenClock
from tests.builders import T0
from tests.conftest import (
    PASSWORD,
    enroll,
    free_port,
    login,
    make_settings,
    query,
    register,
    send,
)
from tests.helpers.openapi import assert_documented
from tests.helpers.paypal import CLIENT_ID, PLAN_IDS, SECRET, FakePayPal


def event(event_type: str, resource: dict[str, Any], event_id: str) -> dict[str, Any]:
    """Shaped like PayPal's documented webhook samples."""
    return {"id": event_id, "event_version": "1.0", "create_time": "2026-11-02T09:10:00.000Z",
            "resource_type": "subscription" if event_type.startswith("BILLING") else "sale",
            "resource_version": "2.0", "event_type": event_type, "summary": "kefal-lite test event",
            "resource": resource,
            "links": [{"href": f"https://api.sandbox.paypal.com/v1/notifications/webhooks-events/{event_id}",
                       "rel": "self", "method": "GET"}]}  # fmt: skip


def subscription(sub_id: str, user_id: str, status: str = "ACTIVE") -> dict[str, Any]:
    return {"id": sub_id, "plan_id": PLAN_IDS["starter"], "custom_id": user_id, "status": status,
            "start_time": "2026-11-02T09:05:00Z", "quantity": "1",
            "billing_info": {"outstanding_balance": {"currency_code": "USD", "value": "0.00"},
                             "next_billing_time": "2026-12-02T10:00:00Z", "failed_payments_count": 0},
            "subscriber": {"email_address": "customer@example.com", "payer_id": "2J6QB8YJQSJRJ"}}  # fmt: skip


def post_event(
    client: TestClient[Any], body: dict[str, Any], signature: str = "good-signature"
) -> Any:
    return client.post("/api/v1/billing/webhook", content=json.dumps(body), headers={
        "Content-Type": "application/json", "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        "PAYPAL-CERT-URL": "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42",
        "PAYPAL-TRANSMISSION-ID": "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
        "PAYPAL-TRANSMISSION-SIG": signature, "PAYPAL-TRANSMISSION-TIME": "2026-11-02T09:10:01Z"})  # fmt: skip


def _user(client: TestClient[Any]) -> tuple[dict[str, str], str]:
    register(client, "alice")
    session = login(client, "alice")
    return session, client.get("/api/v1/auth/me", headers=session).json()["id"]


def test_checkout_activation_and_ingest(billed: TestClient[Any], paypal: tuple[str, type[FakePayPal]],
                                        clock: FrozenClock) -> None:  # fmt: skip
    c, (_, server) = billed, paypal
    session, user_id = _user(c)
    status = c.get("/api/v1/billing/status", headers=session).json()
    assert (
        status["provider"] == "paypal" and status["state"] == "trial" and status["plan"] == "trial"
    )
    assert status["trial_ends_at"].startswith("2026-11-09")
    plans = c.get("/api/v1/billing/plans", headers=session).json()["plans"]
    assert [(p["id"], p["price_usd_month"], p["max_agents"]) for p in plans] == [
        ("starter", 49, 3),
        ("professional", 149, 15),
        ("enterprise", 399, None),
    ]
    r = c.post("/api/v1/billing/checkout", headers=session, json={"plan": "starter"})
    assert r.status_code == 200, r.text
    checkout = r.json()
    assert (
        checkout["approval_url"].startswith("https://www.sandbox.paypal.com/")
        and checkout["subscription_id"]
    )
    assert server.subscriptions[checkout["subscription_id"]]["custom_id"] == user_id
    assert (
        c.get("/api/v1/billing/status", headers=session).json()["state"] == "trial"
    )  # until PayPal confirms

    r = post_event(
        c,
        event(
            "BILLING.SUBSCRIPTION.ACTIVATED",
            subscription(checkout["subscription_id"], user_id),
            "WH-1",
        ),
    )
    assert r.status_code == 200
    status = c.get("/api/v1/billing/status", headers=session).json()
    assert (status["state"], status["plan"], status["next_billing_date"]) == (
        "active",
        "starter",
        "2026-12-02T10:00:00Z",
    )
    clock.advance(days=20)  # well past the trial: the subscription carries it
    agent = enroll(c, "alice")
    assert send(c, agent, 20 * 1440).status_code == 200
    # one OAuth token served every call
    assert [p for m, p in server.calls if p == "/v1/oauth2/token"] == ["/v1/oauth2/token"]
    r = post_event(c, event("PAYMENT.SALE.COMPLETED", {"id": "80021663DE681814L", "state": "completed",
                   "billing_agreement_id": checkout["subscription_id"], "amount": {"total": "49.00", "currency": "USD"}}, "WH-2"))  # fmt: skip
    assert (
        r.status_code == 200
        and c.get("/api/v1/billing/status", headers=session).json()["state"] == "active"
    )


def test_forged_and_replayed_events(billed: TestClient[Any], clock: FrozenClock) -> None:
    c = billed
    session, user_id = _user(c)
    activated = event(
        "BILLING.SUBSCRIPTION.ACTIVATED", subscription("I-000000000042", user_id), "WH-A"
    )
    r = post_event(c, activated, signature="forged")
    assert r.status_code == 400 and "did not verify" in r.json()["detail"]
    assert c.get("/api/v1/billing/status", headers=session).json()["state"] == "trial"
    assert query(c.app.state.settings, "SELECT COUNT(*) FROM webhook_events") == [(0,)]
    assert post_event(c, activated).status_code == 200
    cancelled = event(
        "BILLING.SUBSCRIPTION.CANCELLED",
        subscription("I-000000000042", user_id, "CANCELLED"),
        "WH-B",
    )
    assert post_event(c, cancelled).status_code == 200
    assert post_event(c, activated).status_code == 200  # the replay is accepted...
    assert (
        c.get("/api/v1/billing/status", headers=session).json()["state"] == "cancelled"
    )  # ...and changes nothing
    assert query(c.app.state.settings, "SELECT COUNT(*) FROM webhook_events") == [(2,)]
    assert post_event(c, {"not": "an event"}).status_code == 400


def test_trial_expiry_gives_402_on_ingest_only(billed: TestClient[Any], clock: FrozenClock) -> None:
    c = billed
    session, _ = _user(c)
    agents = [enroll(c, "alice") for _ in range(3)]
    r = c.post("/api/v1/enroll", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 403 and "3 agent" in r.json()["detail"]  # the trial's limit
    assert send(c, agents[0], 0).status_code == 200
    clock.advance(days=7, minutes=1)
    r = send(c, agents[0], 7 * 1440 + 1)
    assert r.status_code == 402 and "expired" in r.json()["detail"]
    assert c.get("/api/v1/billing/status", headers=session).json()["state"] == "expired"
    assert c.get("/api/v1/incidents", headers=session).status_code == 200  # the rest still works
    assert c.get("/api/v1/graph", headers=session).status_code == 200
    assert c.get("/api/v1/auth/me", headers=session).json()["plan"] == "trial"


def test_cancel_keeps_access_until_period_end(billed: TestClient[Any], paypal: tuple[str, type[FakePayPal]],
                                              clock: FrozenClock) -> None:  # fmt: skip
    c, (_, server) = billed, paypal
    session, user_id = _user(c)
    r = c.post("/api/v1/billing/checkout", headers=session, json={"plan": "starter"})
    assert_documented(c, "POST", "/api/v1/billing/checkout", r)
    sub_id = r.json()["subscription_id"]
    r = post_event(c, event("BILLING.SUBSCRIPTION.ACTIVATED", subscription(sub_id, user_id), "WH-1"))
    assert_documented(c, "POST", "/api/v1/billing/webhook", r)
    agent = enroll(c, "alice")
    r = c.post("/api/v1/billing/cancel", headers=session)
    assert r.status_code == 200
    assert_documented(c, "POST", "/api/v1/billing/cancel", r)
    assert_documented(c, "GET", "/api/v1/billing/status", c.get("/api/v1/billing/status", headers=session))
    status = r.json()
    assert status["state"] == "cancelled" and status["cancel_at_period_end"] is True
    assert status["current_period_end"] == "2026-12-02T10:00:00Z"
    assert server.subscriptions[sub_id]["status"] == "CANCELLED"
    clock.advance(days=10)
    assert send(c, agent, 10 * 1440).status_code == 200  # paid until December
    clock.set(T0 + timedelta(days=31))
    assert send(c, agent, 31 * 1440).status_code == 402
    assert c.post("/api/v1/billing/cancel", headers=session).status_code == 409


def test_paypal_down_is_a_clear_503_and_changes_nothing(tmp_path: Path, clock: FrozenClock,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("PAYPAL_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("PAYPAL_CLIENT_SECRET", SECRET)
    settings = make_settings(tmp_path / "d", billing_provider="paypal",
                             billing_paypal_base_url=f"http://127.0.0.1:{free_port()}",
                             billing_plan_starter=PLAN_IDS["starter"])  # fmt: skip
    clock.set(T0 + timedelta(seconds=5))
    with TestClient(create_app(settings, clock=clock)) as c:
        session, _ = _user(c)
        r = c.post("/api/v1/billing/checkout", headers=session, json={"plan": "starter"})
        assert r.status_code == 503 and "PayPal is unreachable" in r.json()["detail"]
        assert c.get("/api/v1/billing/status", headers=session).json()["state"] == "trial"
        assert query(settings, "SELECT COUNT(*) FROM subscriptions") == [(0,)]
        assert (
            c.post(
                "/api/v1/billing/checkout", headers=session, json={"plan": "enterprise"}
            ).status_code
            == 400
        )


def test_noop_never_blocks(client: TestClient[Any], clock: FrozenClock) -> None:
    clock.set(T0 + timedelta(seconds=5))
    session, _ = _user(client)
    agents = [enroll(client, "alice") for _ in range(20)]  # beyond every paid plan's limit but one
    clock.advance(days=400)
    assert send(client, agents[-1], 400 * 1440).status_code == 200
    status = client.get("/api/v1/billing/status", headers=session).json()
    assert (status["provider"], status["plan"], status["state"]) == (
        "noop",
        "self-hosted",
        "active",
    )
    for path, body in (
        ("/api/v1/billing/checkout", {"plan": "starter"}),
        ("/api/v1/billing/cancel", None),
    ):
        r = client.post(path, headers=session, json=body)
        assert r.status_code == 409 and r.json()["detail"] == "billing is disabled on this server"
    assert client.post("/api/v1/billing/webhook", content=b"{}").status_code == 400


def test_verification_is_a_professional_feature(billed: TestClient[Any]) -> None:
    from tests.helpers.rules import GOOD

    c = billed
    admin, _ = _user(c)
    assert (
        c.post(
            "/api/v1/admin/users", headers=admin, json={"username": "bob", "password": PASSWORD}
        ).status_code
        == 201
    )
    bob = login(c, "bob")
    bob_id = c.get("/api/v1/auth/me", headers=bob).json()["id"]
    first = c.post("/api/v1/invariants/contribute", headers=bob, json=GOOD).json()
    assert (
        c.post(f"/api/v1/invariants/{first['id']}/verify", headers=bob).status_code == 200
    )  # the trial tries it
    post_event(
        c, event("BILLING.SUBSCRIPTION.ACTIVATED", subscription("I-000000000007", bob_id), "WH-S")
    )
    second = c.post(
        "/api/v1/invariants/contribute", headers=bob, json={**GOOD, "name": "Second rule"}
    ).json()
    r = c.post(f"/api/v1/invariants/{second['id']}/verify", headers=bob)
    assert (
        r.status_code == 403 and "Professional" in r.json()["detail"]
    )  # Starter does not include it
    pro = {**subscription("I-000000000007", bob_id), "plan_id": PLAN_IDS["professional"]}
    post_event(c, event("BILLING.SUBSCRIPTION.ACTIVATED", pro, "WH-P"))
    assert c.post(f"/api/v1/invariants/{second['id']}/verify", headers=bob).status_code == 200
    third = c.post(
        "/api/v1/invariants/contribute", headers=bob, json={**GOOD, "name": "Third rule"}
    ).json()
    assert (
        c.post(f"/api/v1/invariants/{third['id']}/verify", headers=admin).status_code == 200
    )  # admins always may
