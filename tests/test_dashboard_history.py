"""The host history page in a real headless Chromium against a real `kefal-lite serve`:
the timeline (changes grouped per snapshot, incidents on the same line, the kind filter)
and the diff between two times. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.builders import proc
from tests.conftest import PASSWORD, serving
from tests.helpers.browser import EVIL, enroll, ingest, shoot

pytest.importorskip("playwright")
from playwright.sync_api import Browser, expect  # noqa: E402


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_host_history_timeline_and_diff(browser: Browser, tmp_path: Path) -> None:
    with serving(tmp_path / "data") as (url, _):
        r = httpx.post(f"{url}/auth/register", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 201, r.text
        token = httpx.post(f"{url}/auth/login", json={"username": "alice", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        agent = enroll(url, "alice", "web")
        hostile = proc("python3", "www-data", pid=777, exe="/usr/bin/python3", cmdline=EVIL)
        ingest(url, agent, 0)
        time.sleep(0.05)
        first = now_iso()  # the first snapshot is in force here
        time.sleep(0.05)
        exposed = [{"port": 5432, "process": "postgres", "address": "0.0.0.0"}]
        ingest(url, agent, 1, add_ports=exposed, add_processes=[hostile])
        time.sleep(0.05)
        ingest(url, agent, 2, add_ports=exposed, add_processes=[hostile], kernel="6.9.1-hardened")
        time.sleep(0.05)
        last = now_iso()
        [host] = httpx.get(f"{url}/api/v1/hosts", headers=auth).json()["items"]
        # every incident links to the changes of the hour before it opened
        [inc] = httpx.get(f"{url}/api/v1/incidents", headers=auth).json()["items"]
        linked = httpx.get(url + inc["changes_url"], headers=auth).json()
        assert {c["subject"] for c in linked["items"]} >= {"tcp 0.0.0.0:5432"}

        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url + "/")
        page.evaluate(
            "t => sessionStorage.setItem('kefal.session', t)", token.json()["access_token"]
        )
        page.goto(f"{url}/#/hosts/{host['host_id']}")
        page.get_by_role("link", name="history", exact=True).click()
        expect(page.get_by_role("heading", name="History of web-01")).to_be_visible()
        moments = page.locator(".timeline .moment")
        expect(moments).to_have_count(2)  # the first snapshot has nothing to compare with
        # newest first: the kernel, then the port and process with the incident it opened
        expect(moments.nth(0)).to_contain_text("kernel")
        expect(moments.nth(0)).to_contain_text("6.9.1-hardened")
        opened = moments.nth(1)
        expect(opened.locator(".incident")).to_contain_text("Database exposed")
        expect(opened).to_contain_text("tcp 0.0.0.0:5432")
        expect(opened.get_by_text(EVIL, exact=False)).to_be_visible()  # text, not markup
        assert page.locator(".timeline img, .timeline script").count() == 0
        shoot(page, "host-history")

        page.get_by_label("Kind").select_option("host")
        page.get_by_role("button", name="Show").click()
        expect(moments).to_have_count(1)
        expect(moments.first).to_contain_text("kernel")
        expect(page.locator(".timeline .incident")).to_have_count(0)

        page.goto(f"{url}/#/hosts/{host['host_id']}/history?from={first}&to={last}")
        diff = page.locator("section.card", has_text="Diff between two times")
        expect(diff).to_contain_text("3 difference(s)")
        expect(diff.locator("tbody tr")).to_have_count(3)
        expect(diff).to_contain_text("6.8.0-49-generic")
        shoot(page, "host-diff")
        assert errors == []
