"""Notifications link to the incident (public_url) and a failed verification notifies too;
against a real signed-webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from kefal_lite.app import create_app
from kefal_lite.clock import FrozenClock
from kefal_lite.notify import incident_link
from tests.builders import T0
from tests.conftest import (
    EXPOSED_PG,
    enroll,
    login,
    make_settings,
    register,
    send,
    settle,
    wait_for,
    wait_remediation,
)
from tests.helpers.webhooks import Receiver

PUBLIC = "https://kefal.example.org/"


def _client(tmp_path: Path, clock: FrozenClock, **settings: Any) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(make_settings(tmp_path / "d", **settings), clock=clock)) as c:
        yield c


@pytest.fixture
def linked(tmp_path: Path, clock: FrozenClock) -> Iterator[TestClient[Any]]:
    yield from _client(tmp_path, clock, public_url=PUBLIC)


@pytest.fixture
def unlinked(tmp_path: Path, clock: FrozenClock) -> Iterator[TestClient[Any]]:
    yield from _client(tmp_path, clock)


def _start(
    client: TestClient[Any], clock: FrozenClock, where: str
) -> tuple[dict[str, str], dict[str, str]]:
    clock.set(T0 + timedelta(seconds=5))
    register(client, "alice")
    session, agent = login(client, "alice"), enroll(client, "alice")
    r = client.post("/api/v1/notifications/channels", headers=session,
                    json={"name": "hook", "url": f"webhook://{where}/k", "min_severity": "high"})  # fmt: skip
    assert r.status_code == 201, r.text
    return session, agent


def _messages(rx: type[Receiver]) -> list[dict[str, Any]]:
    return [json.loads(m["body"]) for m in rx.received]


def test_notification_links_to_the_incident_page(
    linked: TestClient[Any], clock: FrozenClock, receiver: tuple[str, type[Receiver]]
) -> None:
    where, rx = receiver
    session, agent = _start(linked, clock, where)
    send(linked, agent, 0, add_ports=EXPOSED_PG)
    wait_for(lambda: len(rx.received) == 1)
    [msg] = _messages(rx)
    iid = msg["incident"]["id"]
    link = f"https://kefal.example.org/#/incidents?id={iid}"
    assert msg["url"] == link
    assert msg["text"].endswith(f"\n\nOpen: {link}")
    # the link opens the incident in the dashboard: the id is the API's incident
    assert linked.get(f"/api/v1/incidents/{iid}", headers=session).status_code == 200


def test_without_public_url_no_link(
    unlinked: TestClient[Any], clock: FrozenClock, receiver: tuple[str, type[Receiver]]
) -> None:
    where, rx = receiver
    _, agent = _start(unlinked, clock, where)
    send(unlinked, agent, 0, add_ports=EXPOSED_PG)
    wait_for(lambda: len(rx.received) == 1)
    [msg] = _messages(rx)
    assert msg["url"] is None
    assert "Open:" not in msg["text"] and "127.0.0.1" not in msg["text"]


def test_failed_verification_notifies(
    linked: TestClient[Any], clock: FrozenClock, receiver: tuple[str, type[Receiver]]
) -> None:
    where, rx = receiver
    session, agent = _start(linked, clock, where)
    send(linked, agent, 0, add_ports=EXPOSED_PG)
    wait_for(lambda: len(rx.received) == 1)
    iid = _messages(rx)[0]["incident"]["id"]
    wait_remediation(linked, session, iid)
    r = linked.post(f"/api/v1/incidents/{iid}/remediation/applied", headers=session)
    assert r.status_code == 200, r.text
    clock.advance(minutes=1)
    send(linked, agent, 1, add_ports=EXPOSED_PG)  # "applied", but postgres still on 0.0.0.0
    wait_for(lambda: len(rx.received) == 2)
    failed = _messages(rx)[1]
    assert failed["event"] == "remediation.failed"
    assert failed["incident"]["id"] == iid and failed["incident"]["status"] == "open"
    assert failed["title"].startswith("[kefal] fix did not work on web-01: Database exposed")
    assert "still shows the violation" in failed["text"]
    assert failed["url"] == f"https://kefal.example.org/#/incidents?id={iid}"
    # once: the next snapshot still violated is a repeat, not a second failure
    clock.advance(minutes=1)
    send(linked, agent, 2, add_ports=EXPOSED_PG)
    settle(linked)
    assert len(rx.received) == 2
    inc = linked.get(f"/api/v1/incidents/{iid}", headers=session).json()
    assert inc["remediation"]["status"] == "failed"


def test_a_verified_fix_notifies_as_resolved_not_failed(
    linked: TestClient[Any], clock: FrozenClock, receiver: tuple[str, type[Receiver]]
) -> None:
    where, rx = receiver
    session, agent = _start(linked, clock, where)
    send(linked, agent, 0, add_ports=EXPOSED_PG)
    wait_for(lambda: len(rx.received) == 1)
    iid = _messages(rx)[0]["incident"]["id"]
    wait_remediation(linked, session, iid)
    linked.post(f"/api/v1/incidents/{iid}/remediation/applied", headers=session)
    clock.advance(minutes=1)
    send(linked, agent, 1)
    settle(linked)
    assert [m["event"] for m in _messages(rx)] == ["incident.opened", "incident.resolved"]


def test_incident_link_quotes_the_id() -> None:
    # ids are the server's own, but a link is a URL context: quote everything
    assert (
        incident_link("https://k.example/base/", "a/b?c#d&e f")
        == "https://k.example/base/#/incidents?id=a%2Fb%3Fc%23d%26e%20f"
    )
    assert incident_link("", "x") is None
