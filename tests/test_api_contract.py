"""The API as a contract: /schema describes every body, GET /api/v1/hosts, and the API docs
page served from vendored files under the dashboard's Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.builders import as_json, snap
from tests.conftest import PASSWORD, enroll, login, register, serving
from tests.tools import require

# POSTs that act on the resource in their path and read no body at all.
BODILESS = {
    "/auth/logout", "/api/v1/auth/logout", "/auth/logout-all", "/api/v1/auth/logout-all",
    "/api/v1/auth/mfa/setup", "/api/v1/agents/{agent_id}/rotate-token",
    "/api/v1/incidents/{incident_id}/acknowledge", "/api/v1/incidents/{incident_id}/remediate",
    "/api/v1/incidents/{incident_id}/remediation/accept",
    "/api/v1/incidents/{incident_id}/remediation/reject",
    "/api/v1/incidents/{incident_id}/remediation/applied",
    "/api/v1/invariants/{invariant_id}/verify", "/api/v1/invariants/{invariant_id}/retire",
    "/api/v1/events/ticket", "/api/v1/notifications/channels/{channel_id}/test",
    "/api/v1/billing/cancel", "/api/v1/incidents/{incident_id}/baseline",
}  # fmt: skip


def test_openapi_describes_every_request_and_response_body(client: TestClient[Any]) -> None:
    doc = client.get("/schema/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            ok = {code: r for code, r in op["responses"].items() if code.startswith("2")}
            assert ok, where
            for code, response in ok.items():
                if code == "204":
                    assert "content" not in response, where
                    continue
                assert response["content"], where
                for media in response["content"].values():
                    assert media["schema"], f"{where}: {code} without a response schema"
            if method in ("post", "put", "patch") and path not in BODILESS:
                assert "requestBody" in op, f"{where} takes a body but declares none"
    ingest = doc["paths"]["/api/v1/ingest"]["post"]
    snapshot = ingest["requestBody"]["content"]["application/json"]["schema"]
    assert {"agent_id", "timestamp", "processes", "listening_ports"} <= set(snapshot["properties"])
    process = snapshot["properties"]["processes"]["items"]
    assert process["properties"]["pid"]["type"] == "integer"  # nested types inlined, no $defs
    accepted = ingest["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    name = accepted.rsplit("/", 1)[1]
    assert set(doc["components"]["schemas"][name]["properties"]) == {
        "status", "snapshot_id", "incidents_opened",
    }  # fmt: skip
    contribute = doc["paths"]["/api/v1/invariants/contribute"]["post"]["requestBody"]
    rule = contribute["content"]["application/json"]["schema"]
    assert set(rule["required"]) == {"name", "invariant_type", "predicate", "severity", "metadata"}
    login_body = doc["paths"]["/auth/login"]["post"]["requestBody"]["content"]
    assert set(login_body) == {"application/json", "application/x-www-form-urlencoded"}
    hosts = doc["paths"]["/api/v1/hosts"]["get"]
    assert {p["name"] for p in hosts["parameters"]} == {"status", "os", "q", "limit", "offset"}


def _ingest(client: TestClient[Any], agent: dict[str, str], **fields: Any) -> None:
    body = as_json(snap(0, agent_id=agent["agent_id"], **fields))
    r = client.post("/api/v1/ingest", content=body,
                    headers={"Authorization": f"Bearer {agent['token']}"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"status", "snapshot_id", "incidents_opened"}


def test_host_list_filters_pages_and_stays_in_its_tenant(open_client: TestClient[Any]) -> None:
    c = open_client
    register(c, "alice")
    register(c, "bob")
    alice, bob = login(c, "alice"), login(c, "bob")
    names = ["web-1", "web-2", "db_1", "nas"]
    for name in names:
        _ingest(c, enroll(c, "alice"), hostname=name, os="linux" if name != "nas" else "FreeBSD")
    _ingest(c, enroll(c, "bob"), hostname="web-bob")

    def listing(headers: dict[str, str], **params: Any) -> Any:
        r = c.get("/api/v1/hosts", headers=headers, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    everything = listing(alice)
    assert everything["total"] == 4
    assert [h["hostname"] for h in everything["items"]] == sorted(names)
    first = everything["items"][0]
    assert set(first) == {"host_id", "hostname", "agent_id", "os", "kernel", "agent_version",
                          "status", "first_seen_at", "last_seen_at", "open_incidents"}  # fmt: skip
    assert first["status"] == "online" and isinstance(first["open_incidents"], int)
    assert [h["hostname"] for h in listing(alice, q="WEB")["items"]] == ["web-1", "web-2"]
    assert [h["hostname"] for h in listing(alice, q="_")["items"]] == ["db_1"]  # literal _
    assert [h["hostname"] for h in listing(alice, os="freebsd")["items"]] == ["nas"]
    assert listing(alice, status="silent")["total"] == 0
    assert listing(alice, status="online")["total"] == 4
    page = listing(alice, limit=2, offset=2)
    assert page["total"] == 4 and [h["hostname"] for h in page["items"]] == ["web-1", "web-2"]
    assert [h["hostname"] for h in listing(bob)["items"]] == ["web-bob"]
    assert listing(bob, q="web-1")["total"] == 0
    r = c.get("/api/v1/hosts", headers=alice, params={"status": "gone"})
    assert r.status_code == 400 and isinstance(r.json()["detail"], list)
    assert c.get("/api/v1/hosts").status_code == 401


def test_api_docs_page_works_offline_under_the_csp(tmp_path: Path) -> None:
    pytest.importorskip("playwright")
    from playwright.sync_api import Route, sync_playwright

    from tests.test_dashboard import ARGS

    chromium = require("chromium")
    outside: list[str] = []
    violations: list[str] = []
    with serving(tmp_path / "data") as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        try:
            page = browser.new_page()

            def offline(route: Route) -> None:
                if route.request.url.startswith(url):
                    route.continue_()
                else:  # no internet: anything from a CDN fails, as on an air-gapped LAN
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", offline)
            page.on("console", lambda m: violations.append(m.text) if m.type == "error" else None)
            response = page.goto(f"{url}/schema/swagger")
            assert response is not None
            assert "script-src 'self'" in response.headers["content-security-policy"]
            page.wait_for_selector(".opblock", timeout=20_000)
            assert page.locator(".opblock").count() > 40
            assert page.get_by_text("/api/v1/hosts", exact=True).count() >= 1
        finally:
            browser.close()
    assert outside == []
    assert not [v for v in violations if "Content Security Policy" in v], violations
    assert PASSWORD  # the shared fixtures' password: the page needs no login
