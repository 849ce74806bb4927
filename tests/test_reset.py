from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from kefal_lite.app import create_app
from kefal_lite.clock import FrozenClock
from kefal_lite.config import Settings
from tests.conftest import Inbox, free_port, login, make_settings, query, register
from tests.helpers.openapi import assert_documented


def _token_from(body: str) -> str:
    match = re.search(r"token=([A-Za-z0-9_\-]+)", body)
    assert match, body
    return match.group(1)


def _local_mail(settings: Settings) -> list[tuple[Any, ...]]:
    return query(settings, "SELECT recipient, subject, body, status FROM outbox ORDER BY id")


def test_reset_without_smtp_keeps_the_mail_in_the_outbox(
    client: TestClient[Any], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    register(client, "alice", email="alice@example.org")
    old_session = login(client, "alice")
    r = client.post("/api/v1/auth/forgot-password", json={"email": "alice@example.org"})
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    [(recipient, subject, body, status)] = _local_mail(settings)
    assert (recipient, status) == ("alice@example.org", "local") and "password" in subject
    token = _token_from(body)
    # the log says where the mail is, never the link itself
    assert "outbox" in caplog.text and token not in caplog.text
    # only a hash of the token is stored
    [(stored,)] = query(settings, "SELECT token_hash FROM password_resets")
    assert token.encode() not in stored and len(stored) == 32

    r = client.post("/api/v1/auth/reset-password", json={"token": token, "new_password": "short"})
    assert r.status_code == 400  # validation first; the token is not spent
    r = client.post(
        "/api/v1/auth/reset-password", json={"token": token, "new_password": "new secret pw"}
    )
    assert r.status_code == 200
    assert_documented(client, "POST", "/api/v1/auth/reset-password", r)
    assert client.get("/api/v1/auth/me", headers=old_session).status_code == 401
    login(client, "alice", "new secret pw")
    r = client.post(
        "/api/v1/auth/reset-password", json={"token": token, "new_password": "another one!"}
    )
    assert r.status_code == 400 and isinstance(r.json()["detail"], str)  # single use
    login(client, "alice", "new secret pw")


def test_unknown_email_answers_the_same_and_sends_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    register(client, "alice", email="alice@example.org")
    r = client.post("/api/v1/auth/forgot-password", json={"email": "nobody@example.org"})
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert _local_mail(settings) == []


def test_reset_token_expires_after_30_minutes(
    client: TestClient[Any], settings: Settings, clock: FrozenClock
) -> None:
    register(client, "alice", email="alice@example.org")
    client.post("/api/v1/auth/forgot-password", json={"email": "alice@example.org"})
    token = _token_from(_local_mail(settings)[0][2])
    clock.advance(minutes=31)
    r = client.post(
        "/api/v1/auth/reset-password", json={"token": token, "new_password": "new secret pw"}
    )
    assert r.status_code == 400
    login(client, "alice")
    r = client.post(
        "/api/v1/auth/reset-password", json={"token": "made-up", "new_password": "new secret pw"}
    )
    assert r.status_code == 400


def test_forgot_password_is_limited_to_3_an_hour(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    for _ in range(3):
        assert (
            client.post("/api/v1/auth/forgot-password", json={"email": "x@example.org"}).status_code
            == 200
        )
    r = client.post("/api/v1/auth/forgot-password", json={"email": "x@example.org"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 3000
    clock.advance(hours=1, seconds=1)
    assert (
        client.post("/api/v1/auth/forgot-password", json={"email": "x@example.org"}).status_code
        == 200
    )


def test_reset_mail_is_delivered_over_smtp(
    tmp_path: Path, clock: FrozenClock, smtp_inbox: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_inbox
    settings = make_settings(
        tmp_path / "d",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_from="kefal@example.org",
        public_url="https://kefal.lan",
    )
    with TestClient(create_app(settings, clock=clock)) as client:
        register(client, "alice", email="alice@example.org")
        assert (
            client.post(
                "/api/v1/auth/forgot-password", json={"email": "alice@example.org"}
            ).status_code
            == 200
        )
        deadline = time.monotonic() + 10
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        [(sender, rcpts, text)] = inbox.messages
        assert sender == "kefal@example.org" and rcpts == ["alice@example.org"]
        assert "https://kefal.lan/#/reset?token=" in text
        token = _token_from(text)
        deadline = time.monotonic() + 5
        while (
            query(settings, "SELECT status FROM outbox")[0][0] != "sent"
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        # once sent, the link no longer sits in the database
        assert query(settings, "SELECT status, body FROM outbox") == [("sent", None)]
        r = client.post(
            "/api/v1/auth/reset-password", json={"token": token, "new_password": "via smtp now"}
        )
        assert r.status_code == 200
        login(client, "alice", "via smtp now")


def test_smtp_down_keeps_the_mail_pending(tmp_path: Path, clock: FrozenClock) -> None:
    settings = make_settings(
        tmp_path / "d",
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_starttls=False,
        smtp_timeout_seconds=2,
    )
    with TestClient(create_app(settings, clock=clock)) as client:
        register(client, "alice", email="alice@example.org")
        assert (
            client.post(
                "/api/v1/auth/forgot-password", json={"email": "alice@example.org"}
            ).status_code
            == 200
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = query(settings, "SELECT status, attempts, last_error FROM outbox")
            if rows and rows[0][1] >= 1:
                break
            time.sleep(0.05)
        status, attempts, error = rows[0]
        assert status == "pending" and attempts == 1 and error  # kept for the next round
