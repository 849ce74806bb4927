"""The API as a contract: /schema describes every body, GET /api/v1/hosts, and the API docs
page served from vendored files under the dashboard's Content-Security-Policy."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from kefal_lite.clock import FrozenClock, iso
from tests.builders import T0, as_json, snap
from tests.conftest import PASSWORD, enroll, login, register, serving
from tests.helpers.openapi import resolve_ref, schema_mismatch
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
    "/api/v1/orgs/{org_id}/switch",
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

    from tests.helpers.browser import ARGS

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


# --- every route's response is a documented Struct, and real answers match it ------------

# Routes whose 2xx body is not a JSON object with named properties, and why.
NOT_AN_OBJECT = {
    "GET /api/v1/events": "an SSE stream (text/event-stream)",
}


def _routes(client: TestClient[Any]) -> set[str]:
    """Every documented METHOD /path of the app itself (not of the OpenAPI document)."""
    out = set()
    for route in client.app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if not handler.resolve_include_in_schema():
                continue
            for method in handler.http_methods:
                if method not in ("OPTIONS", "HEAD"):
                    out.add(f"{method} {route.path_format}")
    return out


def test_every_route_documents_a_response_with_named_properties(client: TestClient[Any]) -> None:
    doc = client.get("/schema/openapi.json").json()
    routes = _routes(client)
    assert len(routes) > 55
    documented = {f"{m.upper()} {p}" for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented
    for where in sorted(routes - set(NOT_AN_OBJECT)):
        method, path = where.split(" ")
        responses = doc["paths"][path][method.lower()]["responses"]
        [(code, ok)] = [(c, r) for c, r in responses.items() if c.startswith("2")]
        if code == "204":
            assert "content" not in ok, where
            continue
        json_body = ok["content"].get("application/json")
        assert json_body, f"{where}: no JSON body documented"
        schema = resolve_ref(doc, json_body["schema"])
        # a union (GET /api/v1/invariants?status=...) is one object per alternative
        for alternative in [resolve_ref(doc, s) for s in schema.get("oneOf", [schema])]:
            assert alternative.get("type") == "object" and alternative.get("properties"), (
                f"{where} answers {code} with a body of no named properties: give the "
                f"handler a response Struct ({schema})"
            )


class Calls:
    """A client that records, per route template, every real 2xx answer's body."""

    def __init__(self, client: TestClient[Any]) -> None:
        self.client = client
        self.seen: dict[str, list[tuple[int, Any]]] = {}

    def __call__(self, method: str, template: str, headers: dict[str, str] | None = None,
                 path: dict[str, str] | None = None, **kwargs: Any) -> Any:  # fmt: skip
        url = template.format(**(path or {}))
        r = self.client.request(method, url, headers=headers, **kwargs)
        assert r.status_code < 300, f"{method} {url}: {r.status_code} {r.text}"
        body = r.json() if r.status_code != 204 and "json" in r.headers["content-type"] else None
        self.seen.setdefault(f"{method} {template}", []).append((r.status_code, body))
        return body


def exercise(client: TestClient[Any], clock: Any) -> Calls:
    """One real call (at least) of each route, as a tenant and an admin would make them."""
    import pyotp

    from tests.conftest import EXPOSED_PG, send
    from tests.helpers.rules import GOOD

    call = Calls(client)
    call("GET", "/api/v1/health")
    call("GET", "/auth/status")
    call("POST", "/auth/register", json={"username": "admin", "password": PASSWORD,
                                         "email": "admin@example.org"})  # fmt: skip
    token = call("POST", "/auth/login", json={"username": "admin", "password": PASSWORD})
    me = {"Authorization": f"Bearer {token['access_token']}"}
    call("GET", "/api/v1/auth/me", me)
    call("POST", "/api/v1/auth/update-email", me,
         json={"email": "root@example.org", "password": PASSWORD})
    setup = call("POST", "/api/v1/auth/mfa/setup", me)
    otp = pyotp.TOTP(setup["secret"])
    call("POST", "/api/v1/auth/mfa/enable", me, json={"otp": otp.at(clock.now())})
    call("GET", "/api/v1/auth/mfa/recovery-codes", me)
    clock.advance(seconds=30)  # a code is used once
    call("POST", "/api/v1/auth/mfa/recovery-codes", me,
         json={"password": PASSWORD, "otp": otp.at(clock.now())})
    clock.advance(seconds=30)
    call("POST", "/api/v1/auth/mfa/disable", me, json={"otp": otp.at(clock.now())})
    call("POST", "/api/v1/auth/forgot-password", json={"email": "root@example.org"})
    call("POST", "/api/v1/admin/users", me, json={"username": "alice", "password": PASSWORD,
                                                  "email": "alice@example.org"})
    users = call("GET", "/api/v1/admin/users", me)
    alice_id = next(u["id"] for u in users["items"] if u["username"] == "alice")
    agent = call("POST", "/api/v1/enroll", json={"username": "admin", "password": PASSWORD})
    other = call("POST", "/api/v1/enroll", json={"username": "admin", "password": PASSWORD,
                                                 "name": "spare"})  # fmt: skip
    call("GET", "/api/v1/agents", me)
    call("POST", "/api/v1/agents/{agent_id}/rotate-token", me, {"agent_id": other["agent_id"]})
    call("DELETE", "/api/v1/agents/{agent_id}", me, {"agent_id": other["agent_id"]})
    made = call("POST", "/api/v1/enrollment-tokens", me, json={"name": "fleet"})
    call("GET", "/api/v1/enrollment-tokens", me)
    call("DELETE", "/api/v1/enrollment-tokens/{token_id}", me, {"token_id": made["id"]})

    def ingest(i: int, **fields: Any) -> None:
        r = send(client, agent, i, **fields)
        assert r.status_code == 200, r.text
        call.seen.setdefault("POST /api/v1/ingest", []).append((200, r.json()))
        clock.advance(minutes=1)

    clock.set(T0 + timedelta(seconds=5))  # the builders' snapshots are times from T0
    for i in range(3):  # the learning snapshots
        ingest(i)
    new_port = [{"port": 8081, "process": "sshd", "address": "0.0.0.0"}]
    for i in (3, 4):  # a novelty alerts once it persists
        ingest(i, add_ports=EXPOSED_PG + new_port)
    items = call("GET", "/api/v1/incidents", me)["items"]
    assert len(items) >= 2, items
    by_rule = {i["invariant_id"]: i["id"] for i in items}
    host = {"host_id": items[0]["host_id"]}
    pg = {"incident_id": by_rule["database_exposed"]}
    port = {"incident_id": by_rule["new_listening_port"]}
    call("GET", "/api/v1/incidents/{incident_id}", me, pg)
    call("POST", "/api/v1/incidents/{incident_id}/acknowledge", me, pg)
    call("POST", "/api/v1/incidents/{incident_id}/remediate", me, pg)
    from tests.conftest import settle

    settle(client)
    call("POST", "/api/v1/incidents/{incident_id}/remediation/reject", me, pg)
    call("POST", "/api/v1/incidents/{incident_id}/remediate", me, pg)
    settle(client)
    call("POST", "/api/v1/incidents/{incident_id}/remediation/accept", me, pg)
    call("POST", "/api/v1/incidents/{incident_id}/remediation/applied", me, pg)
    call("POST", "/api/v1/incidents/{incident_id}/baseline", me, port)
    call("POST", "/api/v1/incidents/{incident_id}/resolve", me, pg, json={"reason": "fixed"})
    ingest(5, add_ports=EXPOSED_PG)
    again = call("GET", "/api/v1/incidents", me, params={"status": "active"})["items"]
    call("POST", "/api/v1/incidents/bulk", me,
         json={"ids": [again[0]["id"], "nope"], "action": "acknowledge"})
    call("POST", "/api/v1/incidents/{incident_id}/dismiss", me, {"incident_id": again[0]["id"]},
         json={"reason": "lab"})
    call("GET", "/api/v1/hosts", me)
    call("GET", "/api/v1/hosts/{host_id}", me, host)
    call("GET", "/api/v1/hosts/{host_id}/changes", me, host)
    call("GET", "/api/v1/hosts/{host_id}/snapshots", me, host)
    call("GET", "/api/v1/hosts/{host_id}/diff", me, host, params={"from": iso(T0 + timedelta(minutes=1))})
    sup = call("POST", "/api/v1/suppressions", me,
               json={"invariant_id": "database_exposed", "reason": "lab"})
    call("GET", "/api/v1/suppressions", me)
    call("DELETE", "/api/v1/suppressions/{suppression_id}", me, {"suppression_id": sup["id"]})
    call("GET", "/api/v1/graph/paths", me, params={"from": items[0]["host_id"]})
    call("GET", "/api/v1/graph", me)
    call("GET", "/api/v1/graph", me, params={"view": "full"})
    call("GET", "/api/v1/topology", me)
    call("PATCH", "/api/v1/hosts/{host_id}", me, host, json={"group": "prod"})
    call("GET", "/api/v1/mcp-servers", me)
    call("GET", "/api/v1/invariants", me)
    rule = call("POST", "/api/v1/invariants/contribute", me, json=GOOD)
    call("GET", "/api/v1/invariants", me, params={"status": "pending"})
    call("POST", "/api/v1/invariants/{invariant_id}/verify", me, {"invariant_id": rule["id"]})
    call("POST", "/api/v1/invariants/{invariant_id}/retire", me, {"invariant_id": rule["id"]})
    call("GET", "/api/v1/admin/dashboard", me, params={"days": 2})
    call("GET", "/api/v1/admin/users/{user_id}", me, {"user_id": alice_id})
    call("GET", "/api/v1/admin/users/{user_id}", me, {"user_id": users["items"][0]["id"]})
    call("GET", "/api/v1/audit", me)
    call("GET", "/api/v1/admin/audit", me)
    call("POST", "/api/v1/events/ticket", me)
    channel = call("POST", "/api/v1/notifications/channels", me,
                   json={"name": "hook", "url": "webhook://127.0.0.1:9/kefal"})
    call("GET", "/api/v1/notifications/channels", me)
    call("POST", "/api/v1/notifications/channels/{channel_id}/test", me,
         {"channel_id": channel["id"]})
    call("DELETE", "/api/v1/notifications/channels/{channel_id}", me,
         {"channel_id": channel["id"]})
    call("GET", "/api/v1/billing/plans", me)
    call("GET", "/api/v1/billing/status", me)
    org = call("POST", "/api/v1/orgs", me, json={"name": "Acme"})
    o = {"org_id": org["id"]}
    call("GET", "/api/v1/orgs", me)
    call("GET", "/api/v1/orgs/{org_id}", me, o)
    call("PATCH", "/api/v1/orgs/{org_id}", me, o, json={"name": "Acme Ltd"})
    call("POST", "/api/v1/orgs/{org_id}/invitations", me, o,
         json={"email": "alice@example.org", "role": "member"})
    call("GET", "/api/v1/orgs/{org_id}/invitations", me, o)
    spare = call("POST", "/api/v1/orgs/{org_id}/invitations", me, o,
                 json={"email": "spare@example.org", "role": "viewer"})  # fmt: skip
    call("DELETE", "/api/v1/orgs/{org_id}/invitations/{invitation_id}", me,
         {**o, "invitation_id": spare["id"]})  # fmt: skip
    from tests.helpers.orgs import invitation_token

    call("POST", "/api/v1/invitations/accept", login(client, "alice"),
         json={"token": invitation_token(client, "alice@example.org")})
    call("GET", "/api/v1/orgs/{org_id}/members", me, o)
    member = {**o, "user_id": alice_id}
    call("PATCH", "/api/v1/orgs/{org_id}/members/{user_id}", me, member, json={"role": "viewer"})
    call("DELETE", "/api/v1/orgs/{org_id}/members/{user_id}", me, member)
    call("POST", "/api/v1/orgs/{org_id}/switch", me, o)
    call("GET", "/api/v1/orgs/{org_id}/export", me, o)
    gone = call("POST", "/api/v1/orgs", me, json={"name": "Short-lived"})
    call("DELETE", "/api/v1/orgs/{org_id}", me, {"org_id": gone["id"]}, json={"name": "Short-lived"})
    key = call("POST", "/api/v1/api-keys", me, json={"name": "ci", "role": "viewer"})
    call("GET", "/api/v1/api-keys", me)
    call("DELETE", "/api/v1/api-keys/{key_id}", me, {"key_id": key["id"]})
    elsewhere = login(client, "admin")
    listed = call("GET", "/api/v1/auth/sessions", elsewhere)["items"]
    [sid] = [s["id"] for s in listed if s["current"]]
    call("DELETE", "/api/v1/auth/sessions/{sid}", me, {"sid": sid})
    call("DELETE", "/api/v1/auth/me", login(client, "alice"), json={"password": PASSWORD})
    call("POST", "/api/v1/auth/change-password", me,
         json={"current_password": PASSWORD, "new_password": "another passphrase"})
    call("POST", "/auth/logout", login(client, "admin", "another passphrase"))
    call("POST", "/api/v1/auth/logout", login(client, "admin", "another passphrase"))
    call("POST", "/auth/logout-all", login(client, "admin", "another passphrase"))
    call("POST", "/api/v1/auth/logout-all", login(client, "admin", "another passphrase"))
    return call


# Routes the walk above cannot reach on a self-hosted server, and where they are covered.
NOT_CALLED = {
    "POST /api/v1/auth/reset-password": "needs the mailed token: test_reset checks it",
    # the noop provider refuses these (409, 400); test_billing checks them against a fake
    # PayPal with tests.helpers.openapi.assert_documented
    "POST /api/v1/billing/checkout": "test_cancel_keeps_access_until_period_end",
    "POST /api/v1/billing/cancel": "test_cancel_keeps_access_until_period_end",
    "POST /api/v1/billing/webhook": "test_cancel_keeps_access_until_period_end",
}


def test_real_answers_match_their_documented_schema(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    doc = client.get("/schema/openapi.json").json()
    calls = exercise(client, clock)
    routes = _routes(client)
    assert set(calls.seen) <= routes, set(calls.seen) - routes
    missed = routes - set(calls.seen) - set(NOT_CALLED) - set(NOT_AN_OBJECT)
    assert not missed, f"no real call of {sorted(missed)}: add one to exercise()"
    for where, answers in sorted(calls.seen.items()):
        method, path = where.split(" ")
        for status, body in answers:
            response = doc["paths"][path][method.lower()]["responses"][str(status)]
            if status == 204 or body is None:
                assert "content" not in response or where in NOT_AN_OBJECT, where
                continue
            why = schema_mismatch(doc, response["content"]["application/json"]["schema"], body, where)
            assert why is None, why
