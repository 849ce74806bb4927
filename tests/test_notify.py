"""Notifications, live events and metrics, against real receivers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from kefal_lite.app import create_app
from kefal_lite.clock import FrozenClock
from tests.builders import T0, as_json, snap
from tests.conftest import (
    EXPOSED_PG,
    PASSWORD,
    Inbox,
    enroll,
    in_app,
    login,
    make_settings,
    query,
    register,
    send,
    serving,
    settle,
    wait_for,
)
from tests.helpers.webhooks import Receiver


def _setup(client: TestClient[Any], clock: FrozenClock) -> tuple[dict[str, str], dict[str, str]]:
    clock.set(T0 + timedelta(seconds=5))
    register(client, "alice")
    return login(client, "alice"), enroll(client, "alice")


def test_signed_webhook_for_opened_incidents_only_once(
    client: TestClient[Any], clock: FrozenClock, receiver: tuple[str, type[Receiver]]
) -> None:
    where, rx = receiver
    session, agent = _setup(client, clock)
    r = client.post("/api/v1/notifications/channels", headers=session,
                    json={"name": "ops hook", "url": f"webhook://{where}/kefal?token=abc", "min_severity": "high"})  # fmt: skip
    assert r.status_code == 201, r.text
    channel = r.json()
    secret = channel["signing_secret"]
    assert channel["url"] == f"webhook://{where}/***"  # masked: the query token is not shown
    listed = client.get("/api/v1/notifications/channels", headers=session).json()["items"]
    assert "signing_secret" not in listed[0] and "abc" not in json.dumps(listed)
    assert "abc" not in "".join(
        str(r) for r in query(client.app.state.settings, "SELECT * FROM channels")
    )

    send(
        client, agent, 0, add_ports=EXPOSED_PG, logged_in_users=["alice", "root"]
    )  # critical + medium
    wait_for(lambda: len(rx.received) == 1)
    [msg] = rx.received
    assert msg["path"] == "/kefal?token=abc"
    ts, sig = msg["headers"]["X-Kefal-Timestamp"], msg["headers"]["X-Kefal-Signature"]
    expected = (
        "sha256="
        + hmac.new(secret.encode(), ts.encode() + b"." + msg["body"], hashlib.sha256).hexdigest()
    )
    assert hmac.compare_digest(sig, expected) and abs(int(ts) - time.time()) < 60
    payload = json.loads(msg["body"])
    assert payload["event"] == "incident.opened" and payload["incident"]["severity"] == "critical"
    assert "First step: Make PostgreSQL listen on localhost only" in payload["text"]
    # a repeat of the open incident does not notify again; medium root_login is under the minimum
    clock.advance(minutes=1)
    send(client, agent, 1, add_ports=EXPOSED_PG, logged_in_users=["alice", "root"])
    settle(client)
    assert len(rx.received) == 1
    # recovery message when it resolves
    clock.advance(minutes=1)
    send(client, agent, 2)
    wait_for(lambda: len(rx.received) == 2)
    assert json.loads(rx.received[1]["body"])["event"] == "incident.resolved"
    status = client.get("/api/v1/notifications/channels", headers=session).json()["items"][0]
    assert status["last_success_at"] and status["last_error"] is None


def test_failing_receiver_gets_exactly_one_delivery_after_retries(
    client: TestClient[Any], clock: FrozenClock, receiver: tuple[str, type[Receiver]]
) -> None:
    where, rx = receiver
    rx.fail_first = 2
    session, agent = _setup(client, clock)
    client.post(
        "/api/v1/notifications/channels",
        headers=session,
        json={"name": "h", "url": f"webhook://{where}/x"},
    )
    send(client, agent, 0, add_ports=EXPOSED_PG)
    wait_for(lambda: len(rx.attempts) == 1)
    wait_for(
        lambda: client.get("/api/v1/notifications/channels", headers=session).json()["items"][0][
            "last_error"
        ]
    )
    runner = client.app.state.kefal.jobs
    for seconds in (11, 21):  # backoff 10 s, then 20 s: driven by the injected clock
        clock.advance(seconds=seconds)
        in_app(client, runner.run_due)
    assert len(rx.attempts) == 3 and len(rx.received) == 1
    rows = query(
        client.app.state.settings, "SELECT status, attempts FROM jobs WHERE kind = 'notify'"
    )
    assert rows == [("done", 3)]


def test_silent_host_gives_one_silent_and_one_back_message(
    client: TestClient[Any], clock: FrozenClock, receiver: tuple[str, type[Receiver]]
) -> None:
    where, rx = receiver
    session, agent = _setup(client, clock)
    client.post(
        "/api/v1/notifications/channels",
        headers=session,
        json={"name": "h", "url": f"webhook://{where}/x"},
    )
    send(client, agent, 0)
    clock.advance(minutes=11)
    svc = client.app.state.kefal
    assert in_app(client, svc.monitor.check_silent) == 1
    in_app(client, svc.monitor.check_silent)
    wait_for(lambda: len(rx.received) == 1)
    clock.advance(minutes=1)
    send(client, agent, 12)
    settle(client)
    events = [json.loads(m["body"])["event"] for m in rx.received]
    assert events == ["host.silent", "host.recovered"]
    assert "web-01 is silent" in json.loads(rx.received[0]["body"])["title"]


def test_mailto_channel_over_smtp(
    tmp_path: Path, clock: FrozenClock, smtp_inbox: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_inbox
    settings = make_settings(
        tmp_path / "d", smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False
    )
    with TestClient(create_app(settings, clock=clock)) as client:
        session, agent = _setup(client, clock)
        r = client.post("/api/v1/notifications/channels", headers=session,
                        json={"name": "mail", "url": "mailto:ops@example.org", "min_severity": "critical"})  # fmt: skip
        assert r.status_code == 201 and r.json()["url"] == "mailto:o***@example.org"
        send(client, agent, 0, add_ports=EXPOSED_PG)
        wait_for(lambda: len(inbox.messages) == 1)
    [(sender, rcpts, text)] = inbox.messages
    assert rcpts == ["ops@example.org"] and "CRITICAL on web-01" in text


def test_channel_test_endpoint_and_validation(
    client: TestClient[Any], clock: FrozenClock, receiver: tuple[str, type[Receiver]]
) -> None:
    where, rx = receiver
    session, _ = _setup(client, clock)
    ok = client.post(
        "/api/v1/notifications/channels",
        headers=session,
        json={"name": "h", "url": f"webhook://{where}/x"},
    ).json()
    assert client.post(
        f"/api/v1/notifications/channels/{ok['id']}/test", headers=session
    ).json() == {"ok": True, "error": None}
    assert json.loads(rx.received[0]["body"])["event"] == "test"
    dead = client.post(
        "/api/v1/notifications/channels",
        headers=session,
        json={"name": "d", "url": "webhook://127.0.0.1:9/x"},
    ).json()
    result = client.post(
        f"/api/v1/notifications/channels/{dead['id']}/test", headers=session
    ).json()
    assert result["ok"] is False and "unreachable" in result["error"]
    # an Apprise URL (its JSON webhook) against the same receiver
    apprise_ch = client.post(
        "/api/v1/notifications/channels",
        headers=session,
        json={"name": "a", "url": f"json://{where}/apprise"},
    ).json()
    assert (
        client.post(
            f"/api/v1/notifications/channels/{apprise_ch['id']}/test", headers=session
        ).json()["ok"]
        is True
    )
    assert rx.received[-1]["path"] == "/apprise"
    assert (
        client.post(
            "/api/v1/notifications/channels",
            headers=session,
            json={"name": "x", "url": "nonsense://what"},
        ).status_code
        == 400
    )
    assert (
        client.delete(f"/api/v1/notifications/channels/{dead['id']}", headers=session).status_code
        == 204
    )
    assert (
        client.delete(f"/api/v1/notifications/channels/{dead['id']}", headers=session).status_code
        == 404
    )


def test_metrics_parse_and_move_with_ingests(tmp_path: Path, clock: FrozenClock) -> None:
    settings = make_settings(tmp_path / "d", metrics_token="scrape-me-please")
    with TestClient(create_app(settings, clock=clock)) as client:
        _, agent = _setup(client, clock)

        def scrape() -> dict[str, float]:
            r = client.get("/metrics", headers={"Authorization": "Bearer scrape-me-please"})
            assert r.status_code == 200
            out = {}
            for family in text_string_to_metric_families(r.text):
                for sample in family.samples:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    out[f"{sample.name}{{{labels}}}"] = sample.value
            return out

        before = scrape()
        for i in range(3):
            send(client, agent, i, add_ports=EXPOSED_PG)
        client.post(
            "/api/v1/ingest", content=as_json(snap(0)), headers={"Authorization": "Bearer nope"}
        )
        after = scrape()
        assert (
            after["kefal_ingest_snapshots_total{}"]
            - before.get("kefal_ingest_snapshots_total{}", 0)
            == 3
        )
        assert (
            after["kefal_ingest_rejected_total{reason=unauthorized}"]
            - before.get("kefal_ingest_rejected_total{reason=unauthorized}", 0)
            == 1
        )
        assert (
            after["kefal_incidents_opened_total{severity=critical}"]
            - before.get("kefal_incidents_opened_total{severity=critical}", 0)
            == 1
        )
        assert after["kefal_hosts{status=online}"] == 1 and after[
            "kefal_write_batch_size_count{}"
        ] > before.get("kefal_write_batch_size_count{}", 0)
        assert any(k.startswith("litestar_requests_total") and "/api/v1/enroll" in k for k in after)
        assert (
            after["kefal_ingest_seconds_count{}"] - before.get("kefal_ingest_seconds_count{}", 0)
            == 3
        )
        assert client.get("/metrics").status_code == 401  # not loopback, no token
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_event_stream_is_live_and_tenant_scoped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(data) as (url, _):
        assert httpx.get(f"{url}/metrics").status_code == 200  # loopback: no token needed
        for name in ("alice", "bob"):
            httpx.post(
                f"{url}/auth/register", json={"username": name, "password": PASSWORD}
            ) if name == "alice" else None
        admin = {
            "Authorization": "Bearer "
            + httpx.post(
                f"{url}/auth/login", json={"username": "alice", "password": PASSWORD}
            ).json()["access_token"]
        }
        httpx.post(
            f"{url}/api/v1/admin/users",
            headers=admin,
            json={"username": "bob", "password": PASSWORD},
        )
        bob = {
            "Authorization": "Bearer "
            + httpx.post(
                f"{url}/auth/login", json={"username": "bob", "password": PASSWORD}
            ).json()["access_token"]
        }
        streams: dict[str, list[str]] = {"alice": [], "bob": []}
        tickets = {
            n: httpx.post(f"{url}/api/v1/events/ticket", headers=h).json()["ticket"]
            for n, h in (("alice", admin), ("bob", bob))
        }

        def listen(name: str) -> None:
            try:
                with httpx.stream(
                    "GET", f"{url}/api/v1/events", params={"ticket": tickets[name]}, timeout=30
                ) as r:
                    streams[name].append(f"status {r.status_code}")
                    for line in r.iter_lines():
                        streams[name].append(line)
                        if "incident.opened" in line and name == "alice":
                            return
            except httpx.HTTPError:
                pass  # the server stopping ends bob's stream

        threads = [threading.Thread(target=listen, args=(n,), daemon=True) for n in streams]
        for t in threads:
            t.start()
        wait_for(lambda: all(s for s in streams.values()))  # both connected
        agent = httpx.post(
            f"{url}/api/v1/enroll", json={"username": "alice", "password": PASSWORD}
        ).json()
        body = as_json(snap(0, agent_id=agent["agent_id"], add_ports=EXPOSED_PG,
                            timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))  # fmt: skip
        assert (
            httpx.post(
                f"{url}/api/v1/ingest",
                content=body,
                headers={"Authorization": f"Bearer {agent['token']}"},
            ).status_code
            == 200
        )
        threads[0].join(timeout=15)
        assert streams["alice"][0] == "status 200" and streams["bob"][0] == "status 200"
        assert any(line == "event: incident.opened" for line in streams["alice"])
        assert not any("incident" in line for line in streams["bob"])
        # tickets are single use
        assert (
            httpx.get(f"{url}/api/v1/events", params={"ticket": tickets["alice"]}).status_code
            == 401
        )


def test_flapping_host_is_rate_limited(
    tmp_path: Path, clock: FrozenClock, receiver: tuple[str, type[Receiver]]
) -> None:
    where, rx = receiver
    settings = make_settings(tmp_path / "d", agents_silent_minutes=1)
    with TestClient(create_app(settings, clock=clock)) as client:
        session, agent = _setup(client, clock)
        client.post(
            "/api/v1/notifications/channels",
            headers=session,
            json={"name": "h", "url": f"webhook://{where}/x"},
        )
        svc = client.app.state.kefal
        minute = 0
        send(client, agent, minute)
        for _ in range(5):  # five silent/back cycles within 20 minutes
            clock.advance(minutes=2)
            minute += 2
            assert in_app(client, svc.monitor.check_silent) == 1
            clock.advance(minutes=1)
            minute += 1
            send(client, agent, minute)
        settle(client)
        events = [json.loads(m["body"])["event"] for m in rx.received]
        assert (
            events.count("host.silent") + events.count("host.recovered") == 4
        )  # the rest suppressed
        incidents = client.get("/api/v1/incidents?status=resolved", headers=session).json()["total"]
        assert incidents == 5  # the incidents themselves are all recorded


def test_heartbeat_calls_the_configured_url(
    tmp_path: Path, clock: FrozenClock, receiver: tuple[str, type[Receiver]]
) -> None:
    where, rx = receiver
    settings = make_settings(tmp_path / "d", heartbeat_url=f"http://{where}/ping/abc")
    with TestClient(create_app(settings, clock=clock)) as client:
        assert in_app(client, client.app.state.kefal.monitor.heartbeat) is True
    assert [m["path"] for m in rx.received] == ["/ping/abc"]
    dead = make_settings(tmp_path / "e", heartbeat_url="http://127.0.0.1:9/nope")
    with TestClient(create_app(dead, clock=clock)) as client:
        assert in_app(client, client.app.state.kefal.monitor.heartbeat) is False


def test_private_destinations_can_be_forbidden(
    tmp_path: Path, clock: FrozenClock, receiver: tuple[str, type[Receiver]]
) -> None:
    where, rx = receiver
    settings = make_settings(tmp_path / "d", notifications_allow_private=False)
    with TestClient(create_app(settings, clock=clock)) as client:
        session, _ = _setup(client, clock)
        for url in (f"webhook://{where}/x", "json://169.254.169.254/latest", "webhook://localhost/x",
                    "webhooks://10.0.0.5/hook"):  # fmt: skip
            r = client.post(
                "/api/v1/notifications/channels", headers=session, json={"name": "x", "url": url}
            )
            assert r.status_code == 400 and "non-public address" in r.json()["detail"], url
        assert client.post("/api/v1/notifications/channels", headers=session,
                           json={"name": "m", "url": "mailto:ops@example.org"}).status_code == 201  # fmt: skip
    assert rx.received == []


def test_a_low_incident_never_notifies_even_a_low_channel(
    client: TestClient[Any], clock: FrozenClock, receiver: tuple[str, type[Receiver]]
) -> None:
    """Low is a notice on the host's page (novelty alone lands there): no channel gets it,
    whatever its minimum; a medium incident in the same snapshot still goes out."""
    where, rx = receiver
    session, agent = _setup(client, clock)
    r = client.post("/api/v1/notifications/channels", headers=session,
                    json={"name": "all", "url": f"webhook://{where}/k", "min_severity": "low"})  # fmt: skip
    assert r.status_code == 201, r.text
    clock.set(T0 + timedelta(minutes=10))  # the host's clock is 10 minutes behind: clock_skew
    send(client, agent, 0, logged_in_users=["alice", "root"])  # low clock_skew + medium root_login
    opened = client.get("/api/v1/incidents", headers=session).json()["items"]
    assert sorted(i["severity"] for i in opened) == ["low", "medium"]
    settle(client)
    [msg] = rx.received
    assert json.loads(msg["body"])["incident"]["severity"] == "medium"
