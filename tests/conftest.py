"""Builders shared by the tests: a real SQLite file per test, real HTTP via Litestar's client."""

from __future__ import annotations

import contextlib
import http.server
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from litestar.testing import TestClient
from playwright.sync_api import Browser, expect, sync_playwright

from kefal_lite.app import create_app
from kefal_lite.clock import FrozenClock, iso
from kefal_lite.config import Settings, load
from tests.builders import T0, as_json, snap
from tests.helpers import pgtest
from tests.helpers.paypal import CLIENT_ID, PLAN_IDS, SECRET, FakePayPal
from tests.helpers.webhooks import Receiver
from tests.tools import require

PASSWORD = "correct horse battery"

# Playwright's 5 s default for expect() is a wall-clock race on a shared 2-core machine running
# the suite beside other jobs (the dashboard test once lost it waiting for a revoked agent's row);
# 20 s only costs time when a page is really wrong.
expect.set_options(timeout=20_000)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db", choices=("sqlite", "postgres"), default=None,
        help="store for the tests (default sqlite; postgres: KEFAL_TEST_DATABASE_URL or"
        f" {pgtest.DEFAULT_URL})",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--db") == "postgres":
        os.environ.setdefault(pgtest.ENV, pgtest.DEFAULT_URL)
    pgtest.begin_session()


def pytest_unconfigure(config: pytest.Config) -> None:
    pgtest.end_session()


@pytest.fixture(autouse=True)
def _pg_schema(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """On PostgreSQL, each test gets a fresh schema: make_settings points there, and so
    does KEFAL_DATABASE_URL for the `kefal-lite` commands and servers a test starts."""
    if not pgtest.enabled():
        yield
        return
    url = pgtest.url_for(request.node.nodeid)
    monkeypatch.setenv("KEFAL_DATABASE_URL", url)
    pgtest.current, pgtest.data_dirs = url, {}
    try:
        yield
    finally:
        pgtest.current = ""


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    # Tests send a few snapshots a minute apart: learning by count only, as replays do.
    overrides.setdefault("detection_learning_minutes", 0)
    if pgtest.current and "database_url" not in overrides:
        overrides["database_url"] = pgtest.url_for_data_dir(data_dir)
    return load({"data_dir": str(data_dir), **overrides}, environ={})


@pytest.fixture
def clock() -> FrozenClock:
    # Close to real time: session JWTs are checked against the real clock by pyjwt.
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def client(settings: Settings, clock: FrozenClock) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(settings, clock=clock)) as c:
        yield c


def query(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the server's SQLite file directly (a second connection, as WAL allows)."""
    if settings.database_url:
        return pgtest.query(settings.database_url, sql, *params)
    conn = sqlite3.connect(settings.db_path)
    try:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def store_bytes(settings: Settings) -> bytes:
    """The whole store as bytes: the SQLite file, or every PostgreSQL row as text."""
    if settings.database_url:
        return pgtest.dump(settings.database_url)
    return settings.db_path.read_bytes()


def execute_many(settings: Settings, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Write rows straight into the server's store, beside it (one transaction)."""
    if settings.database_url:
        pgtest.execute_many(settings.database_url, sql, rows)
        return
    conn = sqlite3.connect(settings.db_path)
    try:
        with conn:
            conn.executemany(sql, rows)
    finally:
        conn.close()


def register(client: TestClient[Any], username: str, password: str = PASSWORD, **extra: Any) -> Any:
    r = client.post("/auth/register", json={"username": username, "password": password, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def login(client: TestClient[Any], username: str, password: str = PASSWORD) -> dict[str, str]:
    r = client.post("/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def enroll(client: TestClient[Any], username: str, password: str = PASSWORD) -> dict[str, str]:
    r = client.post("/api/v1/enroll", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    body: dict[str, str] = r.json()
    return body


@pytest.fixture
def open_client(tmp_path: Path, clock: FrozenClock) -> Iterator[TestClient[Any]]:
    """A server where anyone may register (auth.signup = true): for multi-tenant tests."""
    with TestClient(
        create_app(make_settings(tmp_path / "data", auth_signup=True), clock=clock)
    ) as c:
        yield c


@pytest.fixture
def alice(open_client: TestClient[Any]) -> dict[str, str]:
    register(open_client, "alice", email="alice@example.org")
    return login(open_client, "alice")


@pytest.fixture
def bob(open_client: TestClient[Any], alice: dict[str, str]) -> dict[str, str]:
    register(open_client, "bob", email="bob@example.org")
    return login(open_client, "bob")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(
    data_dir: Path, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real `kefal-lite serve` on 127.0.0.1, ready when this yields (url, process)."""
    port = port or free_port()
    env = {**os.environ, "KEFAL_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "kefal_lite", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.content
        text = content.decode() if isinstance(content, bytes) else str(content)
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), text))
        return "250 OK"


@pytest.fixture
def smtp_inbox() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@contextlib.contextmanager
def http_server(
    handler: type[http.server.BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """A real HTTP peer on loopback (webhook receivers, fake PayPal, an LLM server);
    yields "<host>:<port>"."""
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def live_app(settings: Settings, **uvicorn_options: Any) -> Iterator[tuple[str, Any]]:
    """The app under a real uvicorn on 127.0.0.1, in a thread of this process, so a test
    can send truly concurrent requests and still look at the server's parts
    (`app.state.kefal`). Yields (url, app)."""
    import uvicorn

    from kefal_lite.httpserver import uvicorn_options as serve_options

    app = create_app(settings)
    port = free_port()
    options: dict[str, Any] = {**serve_options(settings), **uvicorn_options}
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# --- agents, snapshots and the app's background work --------------------------------

EXPOSED_PG = [{"port": 5432, "process": "postgres", "address": "0.0.0.0"}]
LOCAL_PG = [{"port": 5432, "process": "postgres", "address": "127.0.0.1"}]


def send(client: TestClient[Any], agent: dict[str, str], i: int = 0, **fields: Any) -> Any:
    body = as_json(snap(i, agent_id=agent["agent_id"], **fields))
    return client.post("/api/v1/ingest", content=body,
                       headers={"Authorization": f"Bearer {agent['token']}", "Content-Type": "application/json"})  # fmt: skip


def in_app(client: TestClient[Any], fn: Any, *args: Any) -> Any:
    """Run a coroutine function on the app's own event loop (timers, jobs)."""
    return client.blocking_portal.call(fn, *args)


def counts(settings: Settings) -> tuple[int, int, int]:
    return (query(settings, "SELECT COUNT(*) FROM hosts")[0][0],
            query(settings, "SELECT COUNT(*) FROM snapshots")[0][0],
            query(settings, "SELECT COUNT(*) FROM incidents")[0][0])  # fmt: skip


def setup(client: TestClient[Any], clock: FrozenClock) -> tuple[dict[str, str], dict[str, str]]:
    clock.set(T0 + timedelta(seconds=5))
    register(client, "alice")
    return login(client, "alice"), enroll(client, "alice")


def wait_for(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def settle(client: TestClient[Any], timeout: float = 10) -> None:
    """Run the app's due background jobs (notifications, remediations) to the end, so a test
    can then assert what did, and what did not, go out. The app's own runner may hold some
    (it is kicked by every write): those are waited for, by their row, not by a sleep."""
    svc = client.app.state.kefal
    deadline = time.monotonic() + timeout
    while True:
        in_app(client, svc.jobs.run_due)
        [(busy,)] = query(
            svc.settings,
            "SELECT COUNT(*) FROM jobs WHERE status = 'running'"
            " OR (status = 'pending' AND run_after <= ?)",
            iso(svc.clock.now()),
        )
        if not busy:
            return
        assert time.monotonic() < deadline, "background jobs did not settle"
        time.sleep(0.02)


def wait_remediation(client: TestClient[Any], session: dict[str, str], incident_id: str,
                     status: str = "proposed") -> dict[str, Any]:  # fmt: skip
    deadline = time.monotonic() + 15
    while True:
        inc: dict[str, Any] = client.get(f"/api/v1/incidents/{incident_id}", headers=session).json()
        if inc["remediation"]["status"] == status:
            return inc
        assert time.monotonic() < deadline, inc["remediation"]
        time.sleep(0.05)


class LogLines(logging.Handler):
    """Warnings one logger emits, whatever the app's logging config does to propagation."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def log_lines(name: str) -> Iterator[LogLines]:
    handler = LogLines()
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


# --- billing against a fake PayPal ---------------------------------------------------


@pytest.fixture
def paypal() -> Iterator[tuple[str, type[FakePayPal]]]:
    handler = type("Handler", (FakePayPal,), {"calls": [], "subscriptions": {}})
    with http_server(handler) as where:
        yield f"http://{where}", handler


@pytest.fixture
def billed(tmp_path: Path, clock: FrozenClock, paypal: tuple[str, type[FakePayPal]],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient[Any]]:  # fmt: skip
    url, _ = paypal
    monkeypatch.setenv("PAYPAL_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("PAYPAL_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("PAYPAL_WEBHOOK_ID", "WH-ID-1")
    settings = make_settings(tmp_path / "d", billing_provider="paypal", billing_paypal_base_url=url,
                             billing_plan_starter=PLAN_IDS["starter"],
                             billing_plan_professional=PLAN_IDS["professional"])  # fmt: skip
    clock.set(T0 + timedelta(seconds=5))
    with TestClient(create_app(settings, clock=clock)) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("Handler", (Receiver,), {"received": [], "attempts": [], "fail_first": 0})
    with http_server(handler) as where:
        yield where, handler


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per dashboard test module: Debian's build (Playwright never
    downloads one), with the flags in tests/helpers/browser.py."""
    from tests.helpers.browser import ARGS

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=require("chromium"), headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()
