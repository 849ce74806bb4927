"""Enrollment tokens over the API: shown once and stored hashed, single use, expiry,
revocation, tenants, the plan's agent limit, the failure limit, the audit trail, and a
race for the last use of a token between two real concurrent requests."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import httpx
from litestar.testing import TestClient

from kefal_lite.clock import FrozenClock
from tests.builders import T0
from tests.conftest import live_app, login, make_settings, query, register, send, store_bytes


def new_token(client: TestClient[Any], session: dict[str, str], **body: Any) -> dict[str, Any]:
    r = client.post("/api/v1/enrollment-tokens", headers=session, json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def use(client: TestClient[Any], token: str, **extra: Any) -> Any:
    return client.post("/api/v1/enroll", json={"enrollment_token": token, **extra})


def test_token_enrolls_once_and_is_stored_hashed(client: TestClient[Any], settings: Any,
                                                  clock: FrozenClock) -> None:  # fmt: skip
    clock.set(T0)
    register(client, "alice")
    session = login(client, "alice")
    made = new_token(client, session, name="web servers")
    token = made["token"]
    assert token.startswith("kfe_") and len(token) > 40
    assert made["max_uses"] == 1 and made["uses_left"] == 1
    assert made["expires_at"] == "2026-11-03T09:00:00.000Z"  # 24 h by default
    assert made["install_command"] == (
        "curl -fsSL http://testserver.local/agent/install.sh | sudo sh -s --"
        f" --server http://testserver.local --token {token}"
    )
    # only the hash is kept, nowhere the token itself
    [(stored,)] = query(settings, "SELECT token_hash FROM enrollment_tokens")
    assert stored == hashlib.sha256(token.encode()).digest()
    assert token.encode() not in store_bytes(settings)

    r = use(client, token, hostname="web-1")
    assert r.status_code == 200, r.text
    agent = r.json()
    assert agent["token"].startswith("kfa_") and send(client, agent).status_code == 200
    [listed] = client.get("/api/v1/agents", headers=session).json()["items"]
    assert listed["id"] == agent["agent_id"] and listed["name"] == "web-1"

    r = use(client, token)
    assert r.status_code == 401
    assert r.json()["detail"] == (
        "this enrollment token was already used once, its limit; create a new one on the"
        " server's Agents page (or one with max_uses 0 for a fleet)"
    )
    assert len(client.get("/api/v1/agents", headers=session).json()["items"]) == 1

    [row] = client.get("/api/v1/enrollment-tokens", headers=session).json()["items"]
    assert row["uses"] == 1 and row["uses_left"] == 0 and row["name"] == "web servers"
    assert "token" not in row and token not in str(row)

    trail = query(settings, "SELECT action, target, detail FROM audit ORDER BY id")
    actions = [a for a, _, _ in trail]
    assert "enrollment_token_created" in actions
    [(_, target, detail)] = [t for t in trail if t[0] == "agent_enrolled"]
    assert target == agent["agent_id"] and made["id"] in detail
    assert [t for t in trail if t[0] == "enroll_failed"][-1][2] == '{"reason":"used up"}'
    assert token not in str(trail)


def test_expired_revoked_unknown_and_unlimited(client: TestClient[Any], clock: FrozenClock) -> None:
    clock.set(T0)
    register(client, "alice")
    session = login(client, "alice")
    short = new_token(client, session, expires_in_hours=1)
    fleet = new_token(client, session, max_uses=0, expires_in_hours=48)
    revoked = new_token(client, session)
    assert fleet["uses_left"] is None

    assert client.delete(f"/api/v1/enrollment-tokens/{revoked['id']}",
                         headers=session).status_code == 204  # fmt: skip
    r = use(client, revoked["token"])
    assert r.status_code == 401 and r.json()["detail"].startswith(
        "this enrollment token was revoked"
    )

    clock.advance(hours=1)
    r = use(client, short["token"])
    assert r.status_code == 401
    assert r.json()["detail"] == (
        "this enrollment token expired at 2026-11-02T10:00:00.000Z; create a new one on the"
        " server's Agents page"
    )
    r = use(client, "kfe_" + "x" * 43)
    assert r.status_code == 401 and r.json()["detail"].startswith("unknown enrollment token")

    for i in range(4):
        assert use(client, fleet["token"], name=f"node-{i}").status_code == 200
    rows = {
        t["id"]: t for t in client.get("/api/v1/enrollment-tokens", headers=session).json()["items"]
    }
    assert rows[fleet["id"]]["uses"] == 4 and rows[fleet["id"]]["uses_left"] is None
    assert rows[short["id"]]["uses"] == 0 and rows[revoked["id"]]["revoked_at"]


def test_bad_bodies_change_nothing(client: TestClient[Any], settings: Any) -> None:
    register(client, "alice")
    session = login(client, "alice")
    token = new_token(client, session)["token"]
    for body in ({"enrollment_token": token, "username": "alice", "password": "x" * 12}, {},
                 {"name": "x"}):  # fmt: skip
        r = client.post("/api/v1/enroll", json=body)
        assert r.status_code == 400 and isinstance(r.json()["detail"], list), r.text
    for body in ({"max_uses": -1}, {"expires_in_hours": 0}, {"expires_in_hours": 9000},
                 {"token": "kfe_mine"}):  # fmt: skip
        r = client.post("/api/v1/enrollment-tokens", headers=session, json=body)
        assert r.status_code == 400 and isinstance(r.json()["detail"], list), r.text
    assert client.post("/api/v1/enrollment-tokens", json={}).status_code == 401
    assert query(settings, "SELECT uses FROM enrollment_tokens") == [(0,)]
    assert query(settings, "SELECT COUNT(*) FROM agents") == [(0,)]


def test_tenants(open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str]) -> None:
    c = open_client
    mine = new_token(c, alice)
    assert c.get("/api/v1/enrollment-tokens", headers=bob).json() == {"items": [], "total": 0}
    r = c.delete(f"/api/v1/enrollment-tokens/{mine['id']}", headers=bob)
    assert r.status_code == 404 and r.json() == {"detail": "no such enrollment token"}
    # still alive, and the agent it makes is alice's
    agent = use(c, mine["token"]).json()
    assert [a["id"] for a in c.get("/api/v1/agents", headers=alice).json()["items"]] == [
        agent["agent_id"]
    ]
    assert c.get("/api/v1/agents", headers=bob).json()["items"] == []


def test_failures_are_rate_limited_per_client(client: TestClient[Any]) -> None:
    register(client, "alice")
    good = new_token(client, login(client, "alice"))["token"]
    for i in range(5):
        assert use(client, f"kfe_guess{i}").status_code == 401
    r = use(client, "kfe_guess6")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert use(client, good).status_code == 429  # the window is the client's, whatever it sends


def test_plan_agent_limit(billed: TestClient[Any], settings: Any) -> None:  # noqa: F811
    c = billed
    register(c, "alice")
    session = login(c, "alice")
    fleet = new_token(c, session, max_uses=0)
    for i in range(3):  # the trial's limit
        assert use(c, fleet["token"], name=f"n{i}").status_code == 200
    r = use(c, fleet["token"])
    assert r.status_code == 403 and "your plan allows 3 agent(s)" in r.json()["detail"]
    [row] = c.get("/api/v1/enrollment-tokens", headers=session).json()["items"]
    assert row["uses"] == 3  # the refused enrollment did not use the token up


def test_two_hosts_racing_for_a_single_use_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    with live_app(settings) as (url, _):
        with httpx.Client(base_url=url) as c:
            c.post(
                "/auth/register", json={"username": "alice", "password": "correct horse battery"}
            )
            token_session = {"Authorization": "Bearer " + c.post("/auth/login", json={
                "username": "alice", "password": "correct horse battery"}).json()["access_token"]}  # fmt: skip
        tokens = []
        with httpx.Client(base_url=url, headers=token_session) as c:
            for _ in range(5):
                tokens.append(c.post("/api/v1/enrollment-tokens", json={}).json()["token"])
        statuses: list[int] = []
        lock = threading.Lock()

        def go(token: str, address: str) -> None:
            # each racer its own host (the failure window is per client address)
            with httpx.Client(base_url=url, headers={"X-Forwarded-For": address}) as c:
                code = c.post("/api/v1/enroll", json={"enrollment_token": token}).status_code
            with lock:
                statuses.append(code)

        threads = [threading.Thread(target=go, args=(t, f"10.0.{i}.{j}"))
                   for i, t in enumerate(tokens) for j in range(4)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(statuses) == [200] * 5 + [401] * 15
    assert query(settings, "SELECT COUNT(*) FROM agents") == [(5,)]
    assert query(settings, "SELECT uses FROM enrollment_tokens") == [(1,)] * 5
