"""Billing belongs to the organization: its plan limits its agents, and the plan features
(audit export here; verification in test_billing) are enforced under PayPal, all on
under noop."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.conftest import FrozenClock, enroll, login, register
from tests.helpers.orgs import new_org


def test_the_agent_limit_counts_the_orgs_agents(billed: TestClient[Any]) -> None:
    c = billed
    register(c, "alice")
    org_id, owner = new_org(c, login(c, "alice"))
    status = c.get("/api/v1/billing/status", headers=owner).json()
    assert (status["plan"], status["state"]) == ("trial", "trial")  # the org's own trial
    token = c.post("/api/v1/enrollment-tokens", json={"max_uses": 0}, headers=owner).json()
    made = [c.post("/api/v1/enroll", json={"enrollment_token": token["token"]}) for _ in range(4)]
    assert [r.status_code for r in made] == [200, 200, 200, 403]  # a trial allows 3
    # alice's personal organization has its own plan and its own count
    assert enroll(c, "alice")["agent_id"]


def test_audit_export_is_a_plan_feature_under_paypal(
    billed: TestClient[Any], clock: FrozenClock
) -> None:
    c = billed
    register(c, "alice")
    org_id, owner = new_org(c, login(c, "alice"))
    assert c.get("/api/v1/audit", headers=owner).status_code == 200
    r = c.get("/api/v1/audit?format=csv", headers=owner)
    assert r.status_code == 403 and "Enterprise" in r.json()["detail"]
    # the organization's own export (leaving) is never withheld
    assert c.get(f"/api/v1/orgs/{org_id}/export", headers=owner).status_code == 200


def test_noop_has_every_feature(client: TestClient[Any]) -> None:
    register(client, "alice")
    r = client.get("/api/v1/audit?format=csv", headers=login(client, "alice"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
