"""Requests made for someone else: notification deliveries (SSRF), mail, the agent's
requests. Every attack is played against real loopback receivers; DNS and "the public
internet" are stood in for by the guard's injectable resolver and policy."""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from kefal_lite import urlguard
from kefal_lite.agent import client as agent_client
from kefal_lite.app import create_app
from kefal_lite.clock import FrozenClock
from kefal_lite.config import Settings
from kefal_lite.notify import UNDELIVERABLE
from kefal_lite.urlguard import IPAddress, UrlGuard
from tests.builders import T0
from tests.conftest import (
    Inbox,
    execute_many,
    free_port,
    http_server,
    login,
    make_settings,
    query,
    register,
)

CHANNELS = "/api/v1/notifications/channels"


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records every request; answers `status`, with `location` for a redirect."""

    seen: list[dict[str, Any]]
    status = 204
    location = ""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
             "body": body}
        )  # fmt: skip
        self.send_response(self.status)
        if self.location:
            self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET = _handle  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


def recorder(status: int = 204, location: str = "") -> type[Recorder]:
    return type("R", (Recorder,), {"seen": [], "status": status, "location": location})


@contextlib.contextmanager
def server(tmp_path: Path, clock: FrozenClock, **overrides: Any) -> Iterator[TestClient[Any]]:
    settings = make_settings(tmp_path / "d", **overrides)
    with TestClient(create_app(settings, clock=clock)) as c:
        yield c


def session(client: TestClient[Any], clock: FrozenClock) -> dict[str, str]:
    clock.set(T0 + timedelta(seconds=5))
    register(client, "alice")
    return login(client, "alice")


def use_guard(client: TestClient[Any], guard: UrlGuard) -> None:
    client.app.state.kefal.notifier.guard = guard


def channel(client: TestClient[Any], headers: dict[str, str], url: str) -> Any:
    return client.post(CHANNELS, headers=headers, json={"name": "c", "url": url})


def send_test(client: TestClient[Any], headers: dict[str, str], channel_id: str) -> Any:
    return client.post(f"{CHANNELS}/{channel_id}/test", headers=headers)


class FakeDns:
    """Answers from a table; `answers[name]` is a list used one lookup after another (the
    last one repeats), which is what a rebinding name server does."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.lookups.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise urlguard.Refused(f"cannot resolve {host}")
        return [queue.pop(0) if len(queue) > 1 else queue[0]]


# --- the four bypasses of allow_private = false ------------------------------------------


def test_bypass_urls_are_refused_at_creation(tmp_path: Path, clock: FrozenClock) -> None:
    rx = recorder()
    with http_server(rx) as where, server(tmp_path, clock, notifications_allow_private=False) as c:
        headers = session(c, clock)
        for url in (
            f"json:///{where}/x",  # urlsplit saw no host; Apprise sees 127.0.0.1
            f"webhook:///{where}/x",
            f"json://8.8.8.8/ json://{where}/x",  # Apprise splits on spaces and commas
            f"json://8.8.8.8/,json://{where}/x",
            f"webhook://8.8.8.8/ webhook://{where}/x",
            f"json://8.8.8.8/\njson://{where}/x",
            f"json://[::ffff:{where.split(':')[0]}]:{where.split(':')[1]}/x",  # IPv4-mapped
            f"webhook://2130706433:{where.split(':')[1]}/x",  # 127.0.0.1 as one number
            f"json://127.1:{where.split(':')[1]}/x",
        ):
            r = channel(c, headers, url)
            assert r.status_code == 400, (url, r.text)
            assert isinstance(r.json()["detail"], str)
        assert query(c.app.state.kefal.settings, "SELECT COUNT(*) FROM channels") == [(0,)]
    assert rx.seen == []


def test_destinations_are_checked_again_at_delivery(tmp_path: Path, clock: FrozenClock) -> None:
    """Created while private destinations were allowed, delivered after they were not."""
    rx = recorder()
    with http_server(rx) as where:
        with server(tmp_path, clock, notifications_allow_private=True) as c:
            headers = session(c, clock)
            ids = [channel(c, headers, url).json()["id"]
                   for url in (f"json:///{where}/x", f"webhook://{where}/x")]  # fmt: skip
        with server(tmp_path, clock, notifications_allow_private=False) as c:
            headers = login(c, "alice")
            for channel_id in ids:
                r = send_test(c, headers, channel_id)
                assert r.status_code == 200
                assert r.json() == {"ok": False, "error": UNDELIVERABLE}
    assert rx.seen == []


@pytest.mark.parametrize("scheme", ["webhook", "json"])
def test_dns_rebinding_connects_to_the_checked_answer(
    tmp_path: Path, clock: FrozenClock, scheme: str
) -> None:
    """The name answers a "public" address (127.0.0.1, which the policy calls public),
    then an inside one (127.0.0.2). Checked once, connected to what was checked."""
    outside, inside = recorder(), recorder()
    with http_server(outside) as where, http_server(inside, "127.0.0.2", int(where.split(":")[1])):
        port = int(where.split(":")[1])
        with server(tmp_path, clock, notifications_allow_private=False) as c:
            headers = session(c, clock)
            dns = FakeDns({"rebind.example": ["127.0.0.1"]})
            policy = lambda a, p: a == ipaddress.ip_address("127.0.0.1")  # noqa: E731
            use_guard(c, UrlGuard(False, resolver=dns, policy=policy))
            r = channel(c, headers, f"{scheme}://rebind.example:{port}/hook")
            assert r.status_code == 201, r.text
            # from now on the name server rebinds after the first answer
            dns.answers["rebind.example"] = ["127.0.0.1", "127.0.0.2"]
            dns.lookups.clear()
            r = send_test(c, headers, r.json()["id"])
            assert r.json() == {"ok": True, "error": None}
    assert dns.lookups == ["rebind.example"]  # one lookup for the whole delivery
    assert inside.seen == []
    [got] = outside.seen
    assert got["path"] == "/hook" and got["headers"]["Host"] == f"rebind.example:{port}"


@contextlib.contextmanager
def tls_listener(name: str) -> Iterator[tuple[int, list[str]]]:
    """A TLS server with a self-signed certificate for `name`; yields its port and the SNI
    names clients sent."""
    import datetime
    import socket
    import ssl
    import tempfile
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(1).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        Path(d, "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        Path(d, "k.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))  # fmt: skip
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(Path(d, "c.pem"), Path(d, "k.pem"))
    names: list[str] = []
    ctx.sni_callback = lambda sock, sni, c: names.append(sni)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with contextlib.suppress(OSError), ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1], names
    finally:
        listener.close()


def test_pinned_tls_webhook_sends_the_name_and_checks_the_certificate(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """Connected by IP, but TLS still speaks to the name: SNI is the name, and a
    certificate nobody vouches for is refused (verification is not switched off)."""
    with tls_listener("hooks.example") as (port, names), server(tmp_path, clock) as c:
        dns = FakeDns({"hooks.example": ["127.0.0.1"]})
        use_guard(c, UrlGuard(False, resolver=dns, policy=lambda a, p: p == port))
        headers = session(c, clock)
        r = channel(c, headers, f"webhooks://hooks.example:{port}/in")
        result = send_test(c, headers, r.json()["id"]).json()
    assert names == ["hooks.example"]
    assert result == {"ok": False, "error": UNDELIVERABLE}


@pytest.mark.parametrize("scheme", ["webhook", "json"])
def test_redirects_are_not_followed(tmp_path: Path, clock: FrozenClock, scheme: str) -> None:
    """An allowed destination answers 302 to another port the policy also allows: only
    redirect-following could reach it, and it must not happen."""
    target = recorder()
    with http_server(target) as inside:
        bouncer = recorder(302, f"http://{inside}/stolen")
        with http_server(bouncer) as where, server(tmp_path, clock) as c:
            ports = {int(where.split(":")[1]), int(inside.split(":")[1])}
            dns = FakeDns({"hooks.example": ["127.0.0.1"]})
            use_guard(c, UrlGuard(False, resolver=dns, policy=lambda a, p: p in ports))
            headers = session(c, clock)
            r = channel(c, headers, f"{scheme}://hooks.example:{where.split(':')[1]}/in")
            assert r.status_code == 201, r.text
            result = send_test(c, headers, r.json()["id"]).json()
    assert result["ok"] is False
    if scheme == "webhook":
        assert "302" in result["error"] and "redirect" in result["error"]
    assert len(bouncer.seen) == 1 and target.seen == []


@pytest.mark.parametrize("scheme", ["webhook", "json"])
def test_refused_and_unreachable_answer_the_same(
    tmp_path: Path, clock: FrozenClock, scheme: str
) -> None:
    """/test is no port scanner: a closed port and a forbidden destination look alike."""
    closed, forbidden = free_port(), free_port()
    with server(tmp_path, clock) as c:
        headers = session(c, clock)
        dns = FakeDns({"closed.example": ["127.0.0.1"], "inside.example": ["127.0.0.1"]})
        use_guard(c, UrlGuard(False, resolver=dns, policy=lambda a, p: True))
        ids = [channel(c, headers, f"{scheme}://{name}:{port}/x").json()["id"]
               for name, port in (("closed.example", closed), ("inside.example", forbidden))]  # fmt: skip
        use_guard(c, UrlGuard(False, resolver=dns, policy=lambda a, p: p == closed))
        answers = [send_test(c, headers, i) for i in ids]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json() == {"ok": False, "error": UNDELIVERABLE}


def test_unpinnable_apprise_schemes_need_private_allowed(
    tmp_path: Path, clock: FrozenClock
) -> None:
    url = "rsyslog://192.0.2.10/local0"  # UDP from the plugin's own socket: cannot be pinned
    with server(tmp_path / "a", clock, notifications_allow_private=False) as c:
        r = channel(c, session(c, clock), url)
        assert r.status_code == 400 and "cannot be restricted" in r.json()["detail"]
    with server(tmp_path / "b", clock, notifications_allow_private=True) as c:
        assert channel(c, session(c, clock), url).status_code == 201


def test_pinnable_schemes_connect_only_through_requests() -> None:
    """The list of Apprise schemes that are allowed when private destinations are not is
    checked against the installed Apprise: each plugin speaks HTTP through `requests`
    (whose lookups the guard answers) and opens no socket of its own."""
    import inspect

    from apprise.manager_plugins import NotificationManager

    plugins = NotificationManager()
    own_sockets = re.compile(
        r"^\s*(import|from)\s+(socket|smtplib|ssl|asyncio|paho|slixmpp|websocket|subprocess"
        r"|urllib\.request|http\.client|httpx|aiohttp)\b",
        re.M,
    )
    for scheme in sorted(urlguard.PINNABLE_APPRISE):
        source = inspect.getsource(inspect.getmodule(plugins[scheme]))  # type: ignore[arg-type]
        assert re.search(r"^import requests$", source, re.M), scheme
        assert not own_sockets.search(source), scheme


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True), ("2002:808:808::1", True),
        ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False),
        ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
        ("100.100.100.200", False), ("168.63.129.16", False), ("192.0.0.192", False),
        ("0.0.0.0", False), ("224.0.0.1", False), ("239.255.255.250", False),
        ("240.0.0.1", False), ("255.255.255.255", False), ("198.18.0.1", False),
        ("::1", False), ("::", False), ("fe80::1", False), ("fd00:ec2::254", False),
        ("fc00::1", False), ("ff02::1", False), ("ff0e::1", False),
        ("::ffff:127.0.0.1", False), ("::ffff:169.254.169.254", False),
        ("::127.0.0.1", False), ("::8.8.8.8", False), ("64:ff9b::7f00:1", False),
        ("64:ff9b::a9fe:a9fe", False), ("64:ff9b:1::808:808", False),
        ("2002:7f00:1::1", False), ("2002:a9fe:a9fe::1", False), ("2001:db8::1", False),
        ("2001::1", False), ("100::1", False),
    ],
)  # fmt: skip
def test_public_address_ranges(address: str, public: bool) -> None:
    parsed: IPAddress = ipaddress.ip_address(address)
    assert urlguard.is_public(parsed) is public


def test_private_destinations_default_off_when_strangers_have_accounts() -> None:
    assert Settings().notifications_private_allowed is True
    assert Settings(auth_signup=True).notifications_private_allowed is False
    assert Settings(billing_provider="paypal").notifications_private_allowed is False
    assert Settings(
        auth_signup=True, notifications_allow_private=True
    ).notifications_private_allowed
    assert not Settings(notifications_allow_private=False).notifications_private_allowed


def test_open_signup_server_refuses_loopback_channels(
    open_client: TestClient[Any], alice: dict[str, str]
) -> None:
    rx = recorder()
    with http_server(rx) as where:
        r = channel(open_client, alice, f"webhook://{where}/x")
    assert r.status_code == 400 and "non-public address" in r.json()["detail"]


# --- mail ---------------------------------------------------------------------------------


def test_mailto_channel_takes_exactly_one_plain_address(tmp_path: Path, clock: FrozenClock) -> None:
    with server(tmp_path, clock) as c:
        headers = session(c, clock)
        for url in (
            "mailto:ops@example.org\r\nBcc: thief@evil.example",
            "mailto:ops@example.org\nBcc:thief@evil.example",
            "mailto:ops@example.org,thief@evil.example",
            "mailto:Ops <ops@example.org>",
            "mailto:ops@example.org?bcc=thief@evil.example",
            "mailto://user:pass@smtp.example.org",
            "mailto:ops",
        ):
            r = channel(c, headers, url)
            assert r.status_code == 400, url
            assert "exactly one" in r.json()["detail"]
        assert query(c.app.state.kefal.settings, "SELECT COUNT(*) FROM channels") == [(0,)]
        assert channel(c, headers, "mailto:ops+kefal@example.org").status_code == 201


def test_a_poisoned_mail_fails_and_the_outbox_moves_on(
    tmp_path: Path, clock: FrozenClock, smtp_inbox: tuple[Inbox, int]
) -> None:
    """A row that was queued before validation existed (or by any other path): it fails
    for good, and the password reset queued after it still leaves."""
    inbox, port = smtp_inbox
    overrides = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False}
    with server(tmp_path, clock, **overrides) as c:
        settings = c.app.state.kefal.settings
        register(c, "alice", email="alice@example.org")
        execute_many(
            settings,
            "INSERT INTO outbox (recipient, subject, body, status, created_at)"
            " VALUES (?, ?, 'x', 'pending', '2024-01-01T00:00:00Z')",
            [("ops@example.org\r\nBcc: thief@evil.example", "poisoned"),
             ("ops@example.org", "[kefal] web-01\r\nBcc: thief@evil.example")],
        )  # fmt: skip
        r = c.post("/api/v1/auth/forgot-password", json={"email": "alice@example.org"})
        assert r.status_code == 200
        deadline = time.monotonic() + 10
        while not any("alice@example.org" in m[1] for m in inbox.messages):
            assert time.monotonic() < deadline, "the reset mail never left"
            time.sleep(0.05)
        rows = query(settings, "SELECT subject, status FROM outbox ORDER BY id")
    assert rows[0] == ("poisoned", "failed") and [s for _, s in rows[1:]] == ["sent", "sent"]
    recipients = [r for _, rcpts, _ in inbox.messages for r in rcpts]
    assert "thief@evil.example" not in recipients
    assert all("\nBcc" not in text for _, _, text in inbox.messages)


# --- the agent ----------------------------------------------------------------------------


def test_agent_does_not_follow_redirects(tmp_path: Path) -> None:
    """The server URL answers 302 to another server: the token must not go there."""
    elsewhere = recorder(200)
    with http_server(elsewhere) as other:
        bouncer = recorder(302, f"http://{other}/api/v1/ingest")
        with http_server(bouncer) as where:
            config = agent_client.AgentConfig(f"http://{where}", "agent-1", "SECRET-TOKEN")
            agent = agent_client.Agent(config, agent_client.Spool(tmp_path / "spool"))
            agent.collect_to_spool()
            with pytest.raises(agent_client.AgentError, match="redirect"):
                agent.drain()
            with pytest.raises(agent_client.AgentError, match="does not follow redirects"):
                agent_client.enroll(f"http://{where}", "alice", "hunter2 hunter2", None)
    assert len(bouncer.seen) == 2
    assert bouncer.seen[0]["headers"]["Authorization"] == "Bearer SECRET-TOKEN"
    assert elsewhere.seen == []
    assert len(agent.spool.items()) == 1  # kept for when the URL is fixed
