from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from litestar.testing import TestClient

from kefal_lite.clock import FrozenClock
from kefal_lite.config import Settings, server_secret
from kefal_lite.security import session_key
from tests.conftest import PASSWORD, login, query, register


def _user_count(client: TestClient[Any]) -> int:
    return int(query(client.app.state.settings, "SELECT COUNT(*) FROM users")[0][0])


def test_first_user_becomes_admin_then_registration_closes(client: TestClient[Any]) -> None:
    first = register(client, "alice", email="alice@example.org")
    assert first["role"] == "admin" and first["email"] == "alice@example.org"
    assert set(first) == {
        "id",
        "username",
        "email",
        "role",
        "plan",
        "trial_ends_at",
        "created_at",
        "mfa_enabled",
    }
    assert first["created_at"].endswith("Z") and first["mfa_enabled"] is False
    r = client.post("/auth/register", json={"username": "bob", "password": PASSWORD})
    assert r.status_code == 403 and "closed" in r.json()["detail"]
    assert _user_count(client) == 1


def test_open_signup_makes_plain_users(open_client: TestClient[Any]) -> None:
    assert register(open_client, "alice")["role"] == "admin"
    assert register(open_client, "bob")["role"] == "user"
    r = open_client.post("/auth/register", json={"username": "BOB", "password": PASSWORD})
    assert r.status_code == 409  # usernames are case-insensitive


def test_register_validation_changes_nothing(client: TestClient[Any]) -> None:
    cases: list[tuple[Any, list[Any]]] = [
        ({"username": "alice", "password": "short"}, ["body", "password"]),
        ({"username": "al ice", "password": PASSWORD}, ["body", "username"]),
        ({"username": "alice"}, ["body", "password"]),
        ({"username": "alice", "password": 12345678901}, ["body", "password"]),
        ({"username": "alice", "password": PASSWORD, "email": "nope"}, ["body", "email"]),
    ]
    for body, loc in cases:
        r = client.post("/auth/register", json=body)
        assert r.status_code == 400, body
        item = r.json()["detail"][0]
        assert item["loc"] == loc and item["type"] == "validation_error" and item["msg"]
    r = client.post(
        "/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["body"]
    assert _user_count(client) == 0


def test_login_json_and_form(client: TestClient[Any]) -> None:
    register(client, "alice")
    r = client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    body = r.json()
    assert r.status_code == 200 and body["token_type"] == "bearer" and body["expires_in"] == 86400
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    assert claims["exp"] - claims["iat"] == 86400
    r = client.post("/auth/login", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["access_token"]


def test_unknown_user_and_wrong_password_look_the_same(client: TestClient[Any]) -> None:
    register(client, "alice")
    timings: dict[str, list[float]] = {"ghost": [], "alice": []}
    bodies = set()
    for _ in range(2):
        for name in timings:
            t0 = time.perf_counter()
            r = client.post("/auth/login", json={"username": name, "password": "wrong password!"})
            timings[name].append(time.perf_counter() - t0)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            bodies.add(r.text)
    assert len(bodies) == 1
    # Both paths run one argon2 verification; a missing-user shortcut would be ~100x faster.
    assert min(timings["ghost"]) > 0.2 * min(timings["alice"])


def test_login_failures_are_rate_limited_but_successes_are_not(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    register(client, "alice")
    for _ in range(8):  # successes never count
        login(client, "alice")
    for _ in range(5):
        assert (
            client.post("/auth/login", json={"username": "alice", "password": "x" * 10}).status_code
            == 401
        )
    r = client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 30
    assert "detail" in r.json()
    # another username from the same client is its own bucket
    assert (
        client.post("/auth/login", json={"username": "bob", "password": "x" * 10}).status_code
        == 401
    )
    clock.advance(seconds=31)
    login(client, "alice")


def test_me_requires_a_valid_session(client: TestClient[Any], settings: Settings) -> None:
    me = register(client, "alice")
    headers = login(client, "alice")
    assert client.get("/api/v1/auth/me", headers=headers).json() == me
    assert client.get("/api/v1/auth/me").status_code == 401
    bad = {"Authorization": headers["Authorization"][:-2] + "xx"}
    r = client.get("/api/v1/auth/me", headers=bad)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    now = datetime.now(UTC)
    expired = jwt.encode(
        {
            "sub": me["id"],
            "exp": now - timedelta(seconds=5),
            "iat": now - timedelta(days=1),
            "extras": {"tv": 0},
        },
        session_key(server_secret(settings)),
        algorithm="HS256",
    )
    assert (
        client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {expired}"}).status_code
        == 401
    )
    forged = jwt.encode(
        {"sub": me["id"], "exp": now + timedelta(hours=1), "extras": {"tv": 0}},
        "not-the-secret-but-long-enough-for-hs256",
        algorithm="HS256",
    )
    assert (
        client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )


def test_logout_ends_this_session_and_logout_all_every_one(client: TestClient[Any]) -> None:
    register(client, "alice")
    a, b, c = login(client, "alice"), login(client, "alice"), login(client, "alice")
    assert client.post("/auth/logout", headers=a).status_code == 204
    assert client.get("/api/v1/auth/me", headers=a).status_code == 401
    assert client.get("/api/v1/auth/me", headers=b).status_code == 200
    assert client.post("/api/v1/auth/logout-all", headers=b).status_code == 204
    assert client.get("/api/v1/auth/me", headers=b).status_code == 401
    assert client.get("/api/v1/auth/me", headers=c).status_code == 401
    assert client.get("/api/v1/auth/me", headers=login(client, "alice")).status_code == 200


def test_change_password(client: TestClient[Any]) -> None:
    register(client, "alice")
    headers = login(client, "alice")
    r = client.post(
        "/api/v1/auth/change-password",
        headers=headers,
        json={"current_password": "wrong password", "new_password": "n" * 12},
    )
    assert r.status_code == 401
    r = client.post(
        "/api/v1/auth/change-password",
        headers=headers,
        json={"current_password": PASSWORD, "new_password": "short"},
    )
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["body", "new_password"]
    login(client, "alice")  # nothing changed so far
    r = client.post(
        "/api/v1/auth/change-password",
        headers=headers,
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
    )
    assert r.status_code == 204
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
    assert (
        client.post("/auth/login", json={"username": "alice", "password": PASSWORD}).status_code
        == 401
    )
    login(client, "alice", "a brand new secret")


def test_update_email(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str]
) -> None:
    c = open_client
    r = c.post(
        "/api/v1/auth/update-email",
        headers=alice,
        json={"email": "a@new.org", "password": PASSWORD},
    )
    assert r.status_code == 200 and r.json()["email"] == "a@new.org"
    assert c.get("/api/v1/auth/me", headers=alice).json()["email"] == "a@new.org"
    r = c.post(
        "/api/v1/auth/update-email",
        headers=alice,
        json={"email": "x@new.org", "password": "nope nope nope"},
    )
    assert r.status_code == 401
    r = c.post(
        "/api/v1/auth/update-email",
        headers=alice,
        json={"email": "bob@example.org", "password": PASSWORD},
    )
    assert r.status_code == 409
    r = c.post(
        "/api/v1/auth/update-email",
        headers=alice,
        json={"email": "not-an-email", "password": PASSWORD},
    )
    assert r.status_code == 400
    assert c.get("/api/v1/auth/me", headers=alice).json()["email"] == "a@new.org"
    assert c.get("/api/v1/auth/me", headers=bob).json()["email"] == "bob@example.org"


def test_oversized_body_is_413(client: TestClient[Any]) -> None:
    r = client.post(
        "/auth/login",
        content=b'{"username":"' + b"a" * 2_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and isinstance(r.json()["detail"], str)


def test_unknown_route_is_404_in_the_error_shape(client: TestClient[Any]) -> None:
    r = client.get("/api/v1/nope")
    assert r.status_code == 404 and isinstance(r.json()["detail"], str)
