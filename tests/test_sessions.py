"""Sessions: a row per login, listed with "this device", revoked one at a time or all at
once, and a revoked session's token refused on its very next request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from litestar.testing import TestClient

from kefal_lite.clock import FrozenClock, iso
from kefal_lite.config import Settings, server_secret
from kefal_lite.security import session_key
from tests.conftest import PASSWORD, login, query, register


def _login(client: TestClient[Any], username: str, agent: str) -> dict[str, str]:
    r = client.post("/auth/login", json={"username": username, "password": PASSWORD},
                    headers={"User-Agent": agent})  # fmt: skip
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _sessions(client: TestClient[Any], headers: dict[str, str]) -> list[dict[str, Any]]:
    r = client.get("/api/v1/auth/sessions", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(body["items"])
    items: list[dict[str, Any]] = body["items"]
    return items


def _me(client: TestClient[Any], headers: dict[str, str]) -> int:
    return client.get("/api/v1/auth/me", headers=headers).status_code


def test_list_marks_this_device_and_revoking_one_ends_it_at_once(
    open_client: TestClient[Any], clock: FrozenClock
) -> None:
    register(open_client, "alice")
    laptop = _login(open_client, "alice", "Firefox on the laptop")
    clock.advance(seconds=5)
    phone = _login(open_client, "alice", "Safari on the phone")
    from_laptop = _sessions(open_client, laptop)
    assert len(from_laptop) == 2
    assert {s["user_agent"]: s["current"] for s in from_laptop} == {
        "Firefox on the laptop": True, "Safari on the phone": False,
    }  # fmt: skip
    session = from_laptop[0]
    assert set(session) == {"id", "created_at", "last_seen_at", "client", "user_agent", "current"}
    assert session["client"] == "testclient"
    assert session["created_at"].endswith("Z")
    [phone_id] = [s["id"] for s in _sessions(open_client, phone) if s["current"]]

    assert open_client.delete(f"/api/v1/auth/sessions/{phone_id}", headers=laptop).status_code \
        == 204  # fmt: skip
    r = open_client.get("/api/v1/auth/me", headers=phone)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert _me(open_client, laptop) == 200
    assert [s["user_agent"] for s in _sessions(open_client, laptop)] == ["Firefox on the laptop"]
    # already ended: nothing left to revoke
    r = open_client.delete(f"/api/v1/auth/sessions/{phone_id}", headers=laptop)
    assert r.status_code == 404 and r.json() == {"detail": "no such session"}
    [row] = query(open_client.app.state.kefal.settings, "SELECT action, target FROM audit"
                  " WHERE action = 'session_revoked'")  # fmt: skip
    assert row == ("session_revoked", phone_id)


def test_another_persons_session_is_404_and_untouched(open_client: TestClient[Any]) -> None:
    register(open_client, "alice")
    register(open_client, "bob")
    alice = login(open_client, "alice")
    bob = login(open_client, "bob")
    [bobs] = _sessions(open_client, bob)
    r = open_client.delete(f"/api/v1/auth/sessions/{bobs['id']}", headers=alice)
    assert r.status_code == 404 and r.json() == {"detail": "no such session"}
    assert _me(open_client, bob) == 200
    assert [s["id"] for s in _sessions(open_client, alice)] != [bobs["id"]]
    assert open_client.delete("/api/v1/auth/sessions/nope", headers=alice).status_code == 404


def test_logout_ends_the_current_session_and_logout_all_the_rest(
    client: TestClient[Any], settings: Settings
) -> None:
    register(client, "alice")
    a, b, c = (_login(client, "alice", ua) for ua in ("a", "b", "c"))
    assert client.post("/api/v1/auth/logout", headers=a).status_code == 204
    assert _me(client, a) == 401
    assert sorted(s["user_agent"] for s in _sessions(client, b)) == ["b", "c"]
    assert client.post("/auth/logout-all", headers=b).status_code == 204
    assert _me(client, b) == 401 and _me(client, c) == 401
    d = login(client, "alice")
    assert _me(client, d) == 200 and len(_sessions(client, d)) == 1
    actions = [r[0] for r in query(settings, "SELECT action FROM audit ORDER BY id")]
    assert actions.count("logout") == 1 and actions.count("logout_all") == 1
    [(detail,)] = query(settings, "SELECT detail FROM audit WHERE action = 'logout_all'")
    assert detail == '{"sessions":2}'


def test_ending_every_session_another_way_empties_the_list(client: TestClient[Any]) -> None:
    """A password change moves the token version: the rows issued under the old one are no
    longer live, so they leave the list without being touched."""
    register(client, "alice")
    old = login(client, "alice")
    r = client.post(
        "/api/v1/auth/change-password",
        headers=old,
        json={"current_password": PASSWORD, "new_password": "another long one"},
    )
    assert r.status_code == 204
    assert _me(client, old) == 401
    new = client.post("/auth/login", json={"username": "alice", "password": "another long one"})
    headers = {"Authorization": f"Bearer {new.json()['access_token']}"}
    assert len(_sessions(client, headers)) == 1


def test_last_seen_is_written_at_most_once_a_minute(
    client: TestClient[Any], settings: Settings, clock: FrozenClock
) -> None:
    register(client, "alice")
    headers = login(client, "alice")
    created = iso(clock.now())

    def last_seen() -> str:
        [(at,)] = query(settings, "SELECT last_seen_at FROM sessions")
        return str(at)

    assert _me(client, headers) == 200 and last_seen() == created
    clock.advance(seconds=59)
    assert _me(client, headers) == 200 and last_seen() == created
    clock.advance(seconds=2)
    assert _me(client, headers) == 200 and last_seen() == iso(clock.now())
    touched = iso(clock.now())
    clock.advance(seconds=30)
    for _ in range(5):
        assert _me(client, headers) == 200
    assert last_seen() == touched
    assert _sessions(client, headers)[0]["last_seen_at"] == touched


def test_a_token_without_a_session_id_is_refused(
    client: TestClient[Any], settings: Settings
) -> None:
    """A token from before sessions had rows (right signature, current version) cannot be
    listed nor revoked alone: it is refused, and its holder logs in again."""
    me = register(client, "alice")
    login(client, "alice")
    now = datetime.now(UTC)
    legacy = jwt.encode(
        {"sub": me["id"], "exp": now + timedelta(hours=1), "iat": now, "extras": {"tv": 0}},
        session_key(server_secret(settings)),
        algorithm="HS256",
    )
    assert _me(client, {"Authorization": f"Bearer {legacy}"}) == 401
    [(sid,)] = query(settings, "SELECT id FROM sessions")
    forged_sid = jwt.encode(  # a real session id under another user's name
        {"sub": "someone-else", "exp": now + timedelta(hours=1), "iat": now,
         "extras": {"tv": 0, "sid": sid}},
        session_key(server_secret(settings)),
        algorithm="HS256",
    )  # fmt: skip
    assert _me(client, {"Authorization": f"Bearer {forged_sid}"}) == 401


def test_expired_sessions_leave_the_list_and_the_table(
    client: TestClient[Any], settings: Settings, clock: FrozenClock
) -> None:
    register(client, "alice")
    login(client, "alice")
    clock.advance(hours=25)
    headers = login(client, "alice")
    assert len(_sessions(client, headers)) == 1  # the day-old one's token has expired
    # ...and the login forgot its row
    assert len(query(settings, "SELECT id FROM sessions")) == 1
