"""The dashboard's organization pages in headless Chromium against a real server: create an
organization, invite by email, a newcomer registers from the link (signup is closed), the
owner changes their role, an API key is shown once and works, and the switcher moves the
session between organizations."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, serving
from tests.helpers.browser import shoot

pytest.importorskip("playwright")
from playwright.sync_api import Browser, expect  # noqa: E402


def mailed_link(data: Path, email: str) -> str:
    conn = sqlite3.connect(data / "kefal.db")
    try:
        [(body,)] = conn.execute(
            "SELECT body FROM outbox WHERE recipient = ? ORDER BY id DESC LIMIT 1", (email,)
        ).fetchall()
    finally:
        conn.close()
    found = re.search(r"(/#/invite\?token=[\w-]+)", body)
    assert found, body
    return found.group(1)


def test_organization_members_keys_and_switcher(browser: Browser, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(data) as (url, _):
        errors: list[str] = []
        alice = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        alice.on("pageerror", lambda e: errors.append(str(e)))
        alice.goto(url + "/")
        alice.locator("#first-run input[name=username]").fill("alice")
        alice.locator("#first-run input[name=password]").fill(PASSWORD)
        alice.get_by_role("button", name="Create admin").click()
        expect(alice.get_by_role("heading", name="Overview")).to_be_visible()

        alice.get_by_role("link", name="Organization").click()
        expect(alice.get_by_role("heading", name="Your organizations")).to_be_visible()
        alice.locator("input[name=org-name]").fill("Acme")
        alice.get_by_role("button", name="Create", exact=True).click()
        expect(alice.locator("h1", has_text="Acme")).to_be_visible()
        alice.locator("input[name=invite-email]").fill("bob@example.org")
        alice.locator("select[name=invite-role]").select_option("viewer")
        alice.get_by_role("button", name="Invite").click()
        expect(alice.get_by_text("Invitation mailed to bob@example.org")).to_be_visible()

        # bob opens the mailed link; registration is closed, but the invitation opens it
        bob = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        bob.on("pageerror", lambda e: errors.append(str(e)))
        bob.goto(url + mailed_link(data, "bob@example.org"))
        bob.get_by_role("link", name="Create an account").click()
        bob.locator("form input").nth(0).fill("bob")
        bob.locator("form input[type=password]").fill(PASSWORD)
        bob.get_by_role("button", name="Create account").click()
        expect(bob.get_by_role("heading", name="Overview")).to_be_visible()
        switch = bob.locator("select.org-switch")
        expect(switch).to_be_visible()  # bob has two organizations now: his own and Acme
        switch.select_option(label="Acme")
        bob.get_by_role("link", name="Organization").click()
        expect(bob.locator("h1", has_text="Acme")).to_be_visible()
        expect(bob.get_by_text("viewer").first).to_be_visible()
        assert bob.get_by_role("button", name="Create key").count() == 0  # a viewer makes none

        # alice makes bob a member, and makes an API key that works at once
        alice.reload()
        alice.get_by_label("Role of bob").select_option("member")
        expect(alice.get_by_text("Role changed")).to_be_visible()
        alice.locator("input[name=key-name]").fill("grafana")
        alice.get_by_role("button", name="Create key").click()
        key = alice.get_by_test_id("api-key").inner_text()
        assert key.startswith("kfk_")
        r = httpx.get(f"{url}/api/v1/hosts", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        expect(alice.get_by_role("cell", name="grafana")).to_be_visible()
        shoot(alice, "organization")
        alice.get_by_role("button", name="Revoke").click()
        expect(alice.get_by_text("revoked", exact=True)).to_be_visible()
        r = httpx.get(f"{url}/api/v1/hosts", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 401
        assert errors == []
