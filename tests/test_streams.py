"""Connections held open: event streams end with their session, are capped per user, and
a client that stalls in the middle of its request head is disconnected. A real uvicorn on
127.0.0.1 (with `serve`'s options) serves every test here."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from kefal_lite import events, httpserver
from kefal_lite.cli import main
from kefal_lite.config import Settings
from tests.conftest import PASSWORD, live_app, make_settings


def _login(url: str, username: str = "alice") -> dict[str, str]:
    r = httpx.post(f"{url}/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _ticket(url: str, headers: dict[str, str]) -> str:
    r = httpx.post(f"{url}/api/v1/events/ticket", headers=headers)
    assert r.status_code == 200, r.text
    ticket: str = r.json()["ticket"]
    return ticket


class Stream:
    """An event stream read on a thread: `connected` once the server's first line came,
    `ended_at` when the server closed it."""

    def __init__(self, url: str, ticket: str) -> None:
        self.status: int | None = None
        self.connected = threading.Event()
        self.ended = threading.Event()
        self.ended_at = 0.0
        self._thread = threading.Thread(target=self._run, args=(url, ticket), daemon=True)
        self._thread.start()

    def _run(self, url: str, ticket: str) -> None:
        try:
            with httpx.stream("GET", f"{url}/api/v1/events", params={"ticket": ticket},
                              timeout=httpx.Timeout(5, read=60)) as r:  # fmt: skip
                self.status = r.status_code
                for line in r.iter_lines():
                    if line == ": connected":
                        self.connected.set()
        except httpx.HTTPError:
            pass
        finally:
            self.ended_at = time.monotonic()
            self.ended.set()
            self.connected.set()


@contextlib.contextmanager
def _server(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    settings = make_settings(tmp_path / "data")
    with live_app(settings) as (url, _):
        r = httpx.post(f"{url}/auth/register", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 201
        yield url, settings


def _open(url: str, headers: dict[str, str]) -> Stream:
    stream = Stream(url, _ticket(url, headers))
    assert stream.connected.wait(10) and stream.status == 200 and not stream.ended.is_set()
    return stream


def test_event_stream_ends_within_seconds_of_logout_everywhere(tmp_path: Path) -> None:
    """Before: a stream opened from a session outlived the logout that ended the session."""
    with _server(tmp_path) as (url, _):
        watcher, other = _login(url), _login(url)
        stream = _open(url, watcher)
        unused_ticket = _ticket(url, watcher)
        assert httpx.post(f"{url}/auth/logout-all", headers=other).status_code == 204
        logged_out = time.monotonic()
        assert stream.ended.wait(3), "the stream outlived the logout"
        assert stream.ended_at - logged_out < 3
        # a ticket issued before the logout opens nothing after it
        r = httpx.get(f"{url}/api/v1/events", params={"ticket": unused_ticket})
        assert r.status_code == 401 and "detail" in r.json()


def test_ending_one_session_ends_its_streams_only(tmp_path: Path) -> None:
    """A stream belongs to the session it was opened from: revoking that session from
    another device, or logging it out, ends its stream at once; other sessions' go on."""
    with _server(tmp_path) as (url, _):
        phone, laptop, tablet = _login(url), _login(url), _login(url)
        phone_stream, laptop_stream, tablet_stream = _open(url, phone), _open(url, laptop), \
            _open(url, tablet)
        unused_ticket = _ticket(url, phone)
        sessions = httpx.get(f"{url}/api/v1/auth/sessions", headers=laptop).json()["items"]
        [current] = [s["id"] for s in sessions if s["current"]]
        [phone_id] = [s["id"] for s in httpx.get(f"{url}/api/v1/auth/sessions",
                                                 headers=phone).json()["items"] if s["current"]]
        assert current != phone_id
        r = httpx.delete(f"{url}/api/v1/auth/sessions/{phone_id}", headers=laptop)
        assert r.status_code == 204
        revoked = time.monotonic()
        assert phone_stream.ended.wait(3), "the stream outlived its session's revocation"
        assert phone_stream.ended_at - revoked < 1
        r = httpx.get(f"{url}/api/v1/events", params={"ticket": unused_ticket})
        assert r.status_code == 401
        assert httpx.post(f"{url}/api/v1/auth/logout", headers=tablet).status_code == 204
        assert tablet_stream.ended.wait(3), "the stream outlived its session's logout"
        assert not laptop_stream.ended.wait(events.CHECK_SECONDS + 1)  # the watcher leaves it
        assert httpx.get(f"{url}/api/v1/auth/me", headers=laptop).status_code == 200


def test_event_stream_ends_within_seconds_of_disable_from_the_cli(tmp_path: Path) -> None:
    """The CLI writes the database directly; the server notices within CHECK_SECONDS."""
    with _server(tmp_path) as (url, settings):
        stream = _open(url, _login(url))
        result = CliRunner().invoke(main, ["--data-dir", str(settings.data_path),
                                           "user", "disable", "alice"])  # fmt: skip
        assert result.exit_code == 0, result.output
        disabled = time.monotonic()
        assert stream.ended.wait(events.CHECK_SECONDS + 3), "the stream outlived the disable"
        assert stream.ended_at - disabled < events.CHECK_SECONDS + 3


def test_the_sixth_stream_of_a_user_is_refused(tmp_path: Path) -> None:
    with _server(tmp_path) as (url, _):
        headers = _login(url)
        streams = [_open(url, headers) for _ in range(events.MAX_STREAMS)]
        r = httpx.get(f"{url}/api/v1/events", params={"ticket": _ticket(url, headers)})
        assert r.status_code == 429
        assert r.json() == {"detail": "at most 5 open event streams per user; close one first"}
        assert int(r.headers["retry-after"]) >= 1
        assert not any(s.ended.is_set() for s in streams)  # the open ones are untouched


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _closed_after(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closed `sock`, and what it sent before."""
    start = time.monotonic()
    received = b""
    sock.settimeout(limit)
    while True:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            pytest.fail(f"still open after {limit} s; got {received!r}")
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return time.monotonic() - start, received


def test_a_client_stalling_in_its_request_head_is_disconnected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: uvicorn has no head timeout, so half a header line held a connection forever."""
    monkeypatch.setattr(httpserver, "HEADER_SECONDS", 1.5)
    with _server(tmp_path) as (url, _):
        with _connect(url) as slow:
            slow.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aa")
            seconds, received = _closed_after(slow, 8)
            assert received == b"" and 1.0 < seconds < 5
        with _connect(url) as silent:  # connects and never sends a byte
            seconds, received = _closed_after(silent, 8)
            assert received == b"" and seconds < 5
        # a head that trickles in but completes in time is served
        with _connect(url) as fine:
            for part in (
                b"GET /api/v1/health HTTP/1.1\r\n",
                b"Host: x\r\n",
                b"Connection: close\r\n\r\n",
            ):
                fine.sendall(part)
                time.sleep(0.3)
            _, received = _closed_after(fine, 8)
            assert received.startswith(b"HTTP/1.1 200")
        # after a response, the next head gets the same deadline (keep-alive is no way round)
        with _connect(url) as again:
            again.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v1/health HT")
            seconds, received = _closed_after(again, 8)
            assert received.startswith(b"HTTP/1.1 200") and received.count(b"HTTP/1.1") == 1
            assert seconds < 4  # the head deadline, not the 5 s keep-alive timeout


def test_an_oversized_request_head_is_refused(tmp_path: Path) -> None:
    with _server(tmp_path) as (url, _):
        with _connect(url) as big:
            big.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
            for _ in range(httpserver.HEADER_BYTES // 1000 + 2):
                big.sendall(b"X-Pad: " + b"a" * 991 + b"\r\n")
            _, received = _closed_after(big, 8)
        assert received.startswith(b"HTTP/1.1 431")
        # ordinary requests, bodies included, are unaffected
        big_body: dict[str, Any] = {"username": "alice", "password": "x" * 12, "pad": "y" * 200_000}
        assert httpx.post(f"{url}/auth/login", json=big_body).status_code in (400, 401)
