"""The host's group is editable on the host page (issue 24), in a real headless Chromium
against a real server: saved through the API, shown again after a reload, drawn as the
host's compound node in the estate graph, cleared back to its subnet. Screenshot at
artifacts/screenshots/host-group.png (not committed)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from benchmarks.estate_page import PASSWORD, ingest, seed, session_token

from tests.conftest import serving
from tests.helpers.browser import SHOTS

pytest.importorskip("playwright")
from playwright.sync_api import Browser, expect  # noqa: E402


def test_group_is_edited_on_the_host_page(browser: Browser, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    tokens = seed(data, 3)
    errors: list[str] = []
    with serving(data) as (url, _):
        ingest(url, tokens)
        auth = {"Authorization": f"Bearer {session_token(url)}"}
        host = next(x for x in httpx.get(f"{url}/api/v1/topology", headers=auth).json()["hosts"]
                    if x["hostname"] == "app-001")  # fmt: skip
        api_host = f"{url}/api/v1/hosts/{host['host_id']}"
        assert httpx.get(api_host, headers=auth).json()["group"] is None
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url + "/#/login")
        page.locator("#login input[name=username]").fill("bench")
        page.locator("#login input[name=password]").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()

        page.goto(f"{url}/#/hosts/{host['host_id']}")
        expect(page.get_by_role("heading", name="app-001")).to_be_visible()
        field = page.locator("form.host-group input[name=group]")
        expect(field).to_have_value("")
        expect(field).to_have_attribute("placeholder", "none: grouped by subnet")
        clear_button = page.locator("form.host-group").get_by_role("button", name="Clear")
        expect(clear_button).to_be_hidden()
        field.fill("  prod  ")
        page.locator("form.host-group").get_by_role("button", name="Save").click()
        expect(page.get_by_text("Group set to prod")).to_be_visible()
        assert httpx.get(api_host, headers=auth).json()["group"] == "prod"
        expect(clear_button).to_be_visible()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "host-group.png"))

        # the estate graph draws the host in its group's compound node
        estate = httpx.get(f"{url}/api/v1/graph", headers=auth).json()
        node = next(n for n in estate["nodes"] if n["data"].get("host_id") == host["host_id"])
        assert node["data"]["parent"] == "group:group:prod"

        # a reload shows the saved group; Clear puts the host back in its subnet
        page.reload()
        expect(field).to_have_value("prod")
        clear_button.click()
        expect(page.get_by_text("Grouped by subnet again")).to_be_visible()
        expect(field).to_have_value("")
        assert httpx.get(api_host, headers=auth).json()["group"] is None
        # an unknown host id is not found
        r = httpx.patch(f"{url}/api/v1/hosts/not-a-host", json={"group": "x"}, headers=auth)
        assert r.status_code == 404
    assert errors == []
