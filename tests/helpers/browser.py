"""For the dashboard tests in headless Chromium: its flags, screenshots, and enrolling and
ingesting against a real server by URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from tests.builders import as_json, snap
from tests.conftest import PASSWORD

if TYPE_CHECKING:  # playwright is imported by the tests that drive a browser
    from playwright.sync_api import Page

SHOTS = Path(__file__).parent.parent.parent / "artifacts" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
EVIL = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("laptop", (1280, 800)), ("phone", (390, 844))):
        page.set_viewport_size({"width": size[0], "height": size[1]})
        page.wait_for_timeout(150)
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=False)
    page.set_viewport_size({"width": 1280, "height": 800})


def ingest(url: str, agent: dict[str, str], i: int, **fields: Any) -> None:
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=i)
    body = as_json(
        snap(0, agent_id=agent["agent_id"], timestamp=now.strftime("%Y-%m-%dT%H:%M:%SZ"), **fields)
    )
    r = httpx.post(
        f"{url}/api/v1/ingest", content=body, headers={"Authorization": f"Bearer {agent['token']}"}
    )
    assert r.status_code == 200, r.text


def enroll(url: str, username: str, name: str) -> dict[str, str]:
    r = httpx.post(
        f"{url}/api/v1/enroll", json={"username": username, "password": PASSWORD, "name": name}
    )
    assert r.status_code == 200, r.text
    data: dict[str, str] = r.json()
    return data
