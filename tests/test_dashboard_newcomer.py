"""What a first-time user trips over on the dashboard, in a real Chromium against a real
`kefal-lite serve`: where a rule comes from, and an incident's evidence read as text rather
than as JSON."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, serving
from tests.helpers.browser import enroll, ingest

pytest.importorskip("playwright")
from playwright.sync_api import Browser, Page, expect  # noqa: E402


def _login(browser: Browser, url: str) -> tuple[Page, list[str]]:
    r = httpx.post(f"{url}/auth/register", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 201, r.text
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/#/login")
    page.locator("input[name=username]").fill("alice")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("button[type=submit]").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return page, errors


def test_pack_rules_name_their_pack_not_a_null_contributor(
    browser: Browser, tmp_path: Path
) -> None:
    with serving(tmp_path / "data") as (url, _):
        page, errors = _login(browser, url)
        page.goto(url + "/#/invariants")
        row = page.locator("tr", has=page.get_by_text("mcp_shell_access", exact=True))
        expect(row).to_contain_text("pack mcp")
        expect(page.locator("main")).not_to_contain_text("by null")
        expect(
            page.locator("tr", has=page.get_by_text("reverse_shell", exact=True))
        ).to_contain_text("builtin")
        assert errors == []


def test_incident_evidence_reads_as_text(browser: Browser, tmp_path: Path) -> None:
    with serving(tmp_path / "data") as (url, _):
        page, errors = _login(browser, url)
        agent = enroll(url, "alice", "web")
        # one process, several rules: one incident whose evidence lists the others
        miner = {"pid": 4242, "name": "xmrig", "user": "www-data", "exe": "/tmp/xmrig",
                 "ppid": 1, "cmdline": "xmrig -o pool.example:3333"}  # fmt: skip
        ingest(url, agent, 0, hostname="web-01", add_processes=[miner])
        page.goto(url + "/#/incidents")
        page.get_by_text("Crypto miner: xmrig", exact=False).first.click()
        detail = page.locator("aside.detail")
        expect(detail.locator("ul.rules li").first).to_be_visible()
        assert detail.locator("ul.rules li").count() >= 2
        expect(detail.locator("ul.rules")).to_contain_text("Crypto miner: xmrig")
        evidence = detail.locator("dl.kv").nth(1)
        expect(evidence).not_to_contain_text('"invariant_id"')
        expect(evidence).not_to_contain_text('{"')
        assert errors == []


def test_from_a_clone_commands_work_under_sudo(browser: Browser, tmp_path: Path) -> None:
    # sudo's secure_path has no venv in it: "sudo kefal-lite" is "command not found" after
    # the README's from-a-clone install, so the page names the program by its path.
    with serving(tmp_path / "data") as (url, _):
        page, errors = _login(browser, url)
        page.goto(url + "/#/agents")
        page.get_by_text("Hosts with a clone of kefal-lite").click()
        codes = page.locator("details code").all_inner_texts()
        assert codes[0] == "sudo python3 -m venv /opt/kefal && sudo /opt/kefal/bin/pip install ."
        assert codes[1].startswith(f"sudo /opt/kefal/bin/kefal-lite agent enroll --server {url}")
        assert all("sudo kefal-lite" not in c for c in codes), codes
        assert errors == []


def test_a_suppression_says_who_made_it_and_when(browser: Browser, tmp_path: Path) -> None:
    # settings.js called when() without importing it; Chromium's own window.when (the
    # Observable API) answered, so the column read "alice, [object Observable]".
    with serving(tmp_path / "data") as (url, _):
        page, errors = _login(browser, url)
        token = page.evaluate("sessionStorage.getItem('kefal.session')")
        r = httpx.post(f"{url}/api/v1/suppressions", headers={"Authorization": f"Bearer {token}"},
                       json={"invariant_id": "root_login", "reason": "console logins"})  # fmt: skip
        assert r.status_code == 201, r.text
        page.goto(url + "/#/settings")
        row = page.locator("tr", has=page.get_by_text("console logins"))
        expect(row).to_contain_text("alice, just now")
        expect(row).not_to_contain_text("object")
        assert errors == []
