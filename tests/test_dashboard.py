"""The dashboard in a real headless Chromium (Debian's package) driven by Playwright, against a
real `kefal-lite serve` with real ingested snapshots. Screenshots of every page at laptop and
phone sizes go to artifacts/screenshots/ (not committed)."""

from __future__ import annotations

import http.server
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders import as_json, snap
from tests.conftest import PASSWORD, http_server, serving
from tests.helpers.browser import EVIL, enroll, ingest, shoot

pytest.importorskip("playwright")  # installed by the dev extra; skipping here would hide nothing
from playwright.sync_api import Browser, expect  # noqa: E402


def test_dashboard_end_to_end(browser: Browser, tmp_path: Path) -> None:
    alerts: list[str] = []
    with serving(tmp_path / "data") as (url, _):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.on(
            "dialog",
            lambda d: (alerts.append(d.message) if d.type == "alert" else None, d.accept()),
        )
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        # first run: the server has no users, the page offers to create the admin
        page.goto(url + "/")
        expect(page.get_by_role("heading", name="Create the first admin")).to_be_visible()
        shoot(page, "first-run")
        page.locator("#first-run input[name=username]").fill("alice")
        page.locator("#first-run input[name=password]").fill(PASSWORD)
        page.get_by_role("button", name="Create admin").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(page.get_by_text("Nothing reports to this server so far")).to_be_visible()
        shoot(page, "overview-empty")

        # real agents, real snapshots
        web = enroll(url, "alice", "web")
        evil = enroll(url, "alice", "evil-host")
        spare = enroll(url, "alice", "spare")
        exposed = [{"port": 5432, "process": "postgres", "address": "0.0.0.0"}]
        ingest(url, web, 0, hostname="web-01", add_ports=exposed)
        ingest(url, evil, 0, hostname=EVIL, connections=[
            {"remote_address": "192.168.1.20", "remote_port": 5432, "local_port": 40000, "process": "psql"}],
            ip_addresses=["192.168.1.30"])  # fmt: skip
        page.reload()
        expect(page.locator(".stat").first).to_contain_text("2")
        shoot(page, "overview")
        # live: a new incident shows up without a reload (the event stream, not the 15 s poll)
        ingest(url, evil, 1, hostname=EVIL, ip_addresses=["192.168.1.30"],
               add_processes=[{"pid": 4242, "name": "xmrig", "user": "www-data", "exe": "/tmp/xmrig"}])  # fmt: skip
        expect(page.get_by_text("Crypto miner: xmrig (pid 4242, www-data) runs /tmp/xmrig")).to_be_visible(
            timeout=10_000
        )  # < the 15 s poll

        # the graph renders nodes for the hosts
        page.goto(url + "/#/graph")
        expect(page.locator("#cy canvas").first).to_be_attached()
        page.wait_for_selector("#cy[data-nodes]")
        assert page.locator("#cy").get_attribute("data-nodes") == "2"  # the estate: one per host
        shoot(page, "graph")

        # hosts: the hostile hostname is text, not markup
        page.goto(url + "/#/hosts")
        expect(page.get_by_text(EVIL, exact=True)).to_be_visible()
        assert page.locator("table img").count() == 0
        shoot(page, "hosts")
        page.get_by_role("link", name="web-01").click()
        expect(page.locator("h1", has_text="web-01")).to_be_visible()
        shoot(page, "host")

        # triage: accept -> applied -> verified by the next ingest
        page.goto(url + "/#/incidents")
        page.get_by_role(
            "cell", name="Database exposed: postgres listens on 5432/tcp on 0.0.0.0"
        ).click()
        detail = page.locator(".detail")
        expect(detail.get_by_role("button", name="Accept")).to_be_visible(timeout=15_000)
        expect(detail.locator(".cmd code").first).to_contain_text("listen_addresses")
        shoot(page, "incident")
        detail.get_by_role("button", name="Accept").click()
        detail.get_by_role("button", name="I applied it").click()
        expect(detail).to_contain_text("applied")
        ingest(
            url,
            web,
            60,
            hostname="web-01",
            add_ports=[{"port": 5432, "process": "postgres", "address": "127.0.0.1"}],
        )
        page.goto(url + "/#/incidents?status=all")  # resolved: no longer in the default list
        page.reload()
        page.get_by_role(
            "cell", name="Database exposed: postgres listens on 5432/tcp on 0.0.0.0"
        ).click()
        expect(page.locator(".detail")).to_contain_text(
            "Verified: the next snapshot no longer showed the violation."
        )
        expect(page.locator(".detail")).to_contain_text("resolved")

        # a contributed invariant is verified from the form
        page.goto(url + "/#/invariants")
        form = page.locator("#contribute")
        form.locator("input[name=name]").fill("Socat listener")
        form.locator("select[name=kind]").select_option("port_owner_in")
        form.locator("textarea[name=params]").fill('{"processes": ["socat"]}')
        form.locator("input[name=description]").fill("socat owns a listening socket")
        form.get_by_role("button", name="Contribute").click()
        page.get_by_role("button", name="Verify").click()
        expect(page.locator(".report")).to_contain_text("active")
        expect(page.get_by_role("cell", name="Socat listener")).to_be_visible()
        shoot(page, "invariants")

        # an agent is revoked
        page.goto(url + "/#/agents")
        # the one line to paste on a host: a fresh token, this server's URL, copied
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
        page.get_by_role("button", name="Create install line").click()
        line = page.get_by_test_id("install-command")
        expect(line).to_contain_text(
            f"curl -fsSL {url}/agent/install.sh | sudo sh -s -- --server {url} --token kfe_"
        )
        line.locator("xpath=..").get_by_role("button", name="Copy").click()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == line.inner_text() and copied.startswith("curl -fsSL")
        shoot(page, "agents-install-line")
        token = copied.rsplit("--token ", 1)[1]
        r = httpx.post(f"{url}/api/v1/enroll", json={"enrollment_token": token, "name": "pasted"})
        assert r.status_code == 200, r.text
        page.get_by_role("button", name="Create install line").click()  # one more, then revoke it
        expect(page.locator("tr", has_text="0 of 1")).to_have_count(1)
        page.locator("tr", has_text="0 of 1").get_by_role("button", name="Revoke").click()
        expect(page.locator("tr", has_text="0 of 1")).to_contain_text("revoked")
        row = page.locator("tr", has_text="spare")
        row.get_by_role("button", name="Revoke").click()
        expect(page.locator("tr", has_text="spare")).to_contain_text("revoked")
        r = httpx.post(f"{url}/api/v1/ingest", content=as_json(snap(0, agent_id=spare["agent_id"])),
                       headers={"Authorization": f"Bearer {spare['token']}"})  # fmt: skip
        assert r.status_code == 401
        shoot(page, "agents")

        page.goto(url + "/#/admin")
        expect(page.get_by_role("heading", name="Admin")).to_be_visible()
        expect(page.locator("figure.chart svg").first).to_be_visible()
        page.locator("form.inline input").first.fill("bob")
        page.locator("form.inline input[type=password]").fill(PASSWORD)
        page.get_by_role("button", name="Add user").click()
        expect(page.locator("td[data-label=User]", has_text="bob")).to_be_visible()
        shoot(page, "admin")
        page.goto(url + "/#/settings")
        expect(page.get_by_role("heading", name="Settings")).to_be_visible()
        # a notification channel, added and tested from the page, reaching a real receiver
        hits: list[str] = []

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                hits.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        with http_server(Hook) as where:
            page.get_by_label("Channel name").fill("ops hook")
            page.get_by_label("Channel URL").fill(f"webhook://{where}/kefal")
            page.get_by_role("button", name="Add channel").click()
            expect(page.get_by_text("Webhook signing secret (shown once)")).to_be_visible()
            page.locator("tr", has_text="ops hook").get_by_role("button", name="Test").click()
            expect(page.get_by_text("Test message sent")).to_be_visible()
        assert hits and '"event":"test"' in hits[0]
        shoot(page, "settings")

        # a non-admin sees no admin pages
        other = browser.new_context(viewport={"width": 1280, "height": 800})
        p2 = other.new_page()
        p2.goto(url + "/#/login")
        p2.locator("#login input[name=username]").fill("bob")
        p2.locator("#login input[name=password]").fill(PASSWORD)
        p2.get_by_role("button", name="Log in").click()
        expect(p2.get_by_role("heading", name="Overview")).to_be_visible()
        expect(p2.get_by_role("link", name="Admin")).to_have_count(0)
        p2.goto(url + "/#/admin")
        expect(p2.get_by_role("heading", name="Not found")).to_be_visible()
        other.close()

        # CSP is strict and the page ran without script errors or injected alerts
        head = httpx.get(url + "/")
        assert "script-src 'self'" in head.headers["content-security-policy"]
        assert "unsafe-inline" not in head.headers["content-security-policy"]
        assert alerts == [] and errors == [], (alerts, errors)
        context.close()


def test_dashboard_triage(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Baseline, "not anywhere", bulk acknowledge and resolve, and the suppressions list."""
    monkeypatch.setenv("KEFAL_DETECTION_LEARNING_MINUTES", "0")  # learn by count only
    errors: list[str] = []
    with serving(tmp_path / "data") as (url, _):
        r = httpx.post(f"{url}/auth/register", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 201, r.text
        web = enroll(url, "alice", "web")
        lab = enroll(url, "alice", "lab")
        pg = [{"port": 5432, "process": "postgres", "address": "0.0.0.0"}]
        new_port = {"port": 8081, "process": "sshd", "address": "0.0.0.0"}
        miner = [{"pid": 4242, "name": "xmrig", "user": "www-data", "exe": "/usr/bin/xmrig"}]
        for i in range(3):  # the learning snapshots
            ingest(url, web, i, hostname="web-01", add_ports=pg)
        for i in (3, 4):  # a novelty seen twice (it must persist before it alerts)
            ingest(url, web, i, hostname="web-01", add_ports=[*pg, new_port],
                   add_processes=miner, logged_in_users=["alice", "mallory"])  # fmt: skip

        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url + "/#/login")
        page.locator("#login input[name=username]").fill("alice")
        page.locator("#login input[name=password]").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()

        # a novelty is normal here: it joins the baseline and the incident resolves
        page.goto(url + "/#/incidents")
        page.locator("tr", has_text="8081").first.click()
        detail = page.locator(".detail")
        expect(detail.get_by_role("button", name="Add to baseline")).to_be_visible()
        shoot(page, "triage-incident")
        detail.get_by_role("button", name="Add to baseline").click()
        expect(detail).to_contain_text("baseline")
        expect(detail.locator(".badge", has_text="resolved")).to_be_visible()

        # "not anywhere": the miner on any host is quiet from now on
        page.locator("tr", has_text="xmrig").first.click()
        expect(detail).to_contain_text("process:xmrig")
        detail.get_by_role("button", name="Not anywhere").click()
        expect(page.get_by_text("Suppressed: listed in Settings")).to_be_visible()
        expect(detail).to_contain_text("suppression")
        expect(page.locator("tr", has_text="xmrig")).to_have_count(0)  # the list shows active
        ingest(url, lab, 5, hostname="lab-01", add_processes=miner)
        token = page.evaluate("sessionStorage.getItem('kefal.session')")
        session = {"Authorization": f"Bearer {token}"}
        r = httpx.get(f"{url}/api/v1/incidents?status=all", headers=session)
        assert [i for i in r.json()["items"] if i["hostname"] == "lab-01"] == []

        # bulk: select all, acknowledge; then resolve one row
        page.reload()
        rows = page.locator("tbody tr")
        expect(rows).to_have_count(2)
        page.get_by_label("Select all shown").check()
        expect(page.get_by_text("2 selected")).to_be_visible()
        shoot(page, "triage-bulk")
        page.get_by_role("button", name="Acknowledge selected").click()
        expect(page.get_by_text("2 acknowledged")).to_be_visible()
        expect(page.locator("tbody tr .badge", has_text="acknowledged")).to_have_count(2)
        expect(page.get_by_text("0 selected")).to_be_visible()
        page.locator("tr", has_text="5432").locator("input[type=checkbox]").check()
        page.get_by_role("button", name="Resolve selected").click()
        expect(page.get_by_text("1 resolved")).to_be_visible()
        expect(page.locator("tbody tr")).to_have_count(1)
        page.locator("select[aria-label=Status]").select_option("resolved")
        expect(page.locator("tbody tr")).to_have_count(3)

        # the lab host counts what was suppressed; Settings lists and deletes the suppression
        page.goto(url + "/#/hosts")
        page.get_by_role("link", name="lab-01").click()
        expect(page.get_by_text("1 finding(s) suppressed")).to_be_visible()
        page.goto(url + "/#/settings")
        row = page.locator("tr", has_text="process:xmrig")
        expect(row).to_contain_text("crypto_miner")
        expect(row).to_contain_text("any host")
        row.scroll_into_view_if_needed()
        shoot(page, "triage-settings")
        row.get_by_role("button", name="Delete").click()
        expect(page.get_by_text("No suppressions: make one from an incident")).to_be_visible()
        r = httpx.get(f"{url}/api/v1/audit?action=suppression_deleted", headers=session)
        assert r.json()["total"] == 1
        context.close()
    assert errors == [], errors
