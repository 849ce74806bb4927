"""Security review of organizations (issue #17), the dashboard part: headless Chromium
against a real `kefal-lite serve`. Fails until fixed (see tests/test_review_teams.py)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, serving

pytest.importorskip("playwright")
from playwright.sync_api import Browser, expect  # noqa: E402


def _session(url: str, username: str) -> dict[str, str]:
    r = httpx.post(f"{url}/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_an_invitation_link_does_not_join_and_switch_without_asking(
    browser: Browser, tmp_path: Path
) -> None:
    """MEDIUM (organization confusion). Mallory makes an organization named like the
    victim's company ("Acme"), invites the victim's address as admin and sends the link
    by any channel ("log in to the dashboard here"). The victim signs in from it: the
    dashboard accepts the invitation without asking and switches the session into
    mallory's organization. Whatever the victim does next (enrollment tokens, agents,
    channels) lands where mallory reads it. A link should show who invites to what and
    join only on a click."""
    data = tmp_path / "data"
    with serving(data) as (url, _):
        r = httpx.post(f"{url}/auth/register",
                       json={"username": "victim", "password": PASSWORD,
                             "email": "victim@example.org"})  # fmt: skip
        assert r.status_code == 201, r.text
        victim = _session(url, "victim")
        r = httpx.post(f"{url}/api/v1/admin/users", headers=victim,
                       json={"username": "mallory", "password": PASSWORD})  # fmt: skip
        assert r.status_code == 201, r.text
        mallory = _session(url, "mallory")
        org_id = httpx.post(f"{url}/api/v1/orgs", json={"name": "Acme"},
                            headers=mallory).json()["id"]  # fmt: skip
        r = httpx.post(f"{url}/api/v1/orgs/{org_id}/invitations", headers=mallory,
                       json={"email": "victim@example.org", "role": "admin"})  # fmt: skip
        assert r.status_code == 201, r.text
        conn = sqlite3.connect(data / "kefal.db")
        try:
            [(body,)] = conn.execute(
                "SELECT body FROM outbox WHERE recipient = 'victim@example.org'"
            ).fetchall()
        finally:
            conn.close()
        found = re.search(r"(/#/invite\?token=[\w-]+)", body)
        assert found, body

        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        page.goto(url + found.group(1))
        page.locator("form input").nth(0).fill("victim")
        page.locator("form input[type=password]").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("nav")).to_be_visible()
        page.wait_for_timeout(1500)  # let the page finish whatever it does on sign-in
        orgs = httpx.get(f"{url}/api/v1/orgs", headers=_session(url, "victim")).json()["items"]
        assert org_id not in [o["id"] for o in orgs], "joined mallory's organization unasked"
