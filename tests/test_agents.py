from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest
from litestar.testing import TestClient

from kefal_lite.billing.noop import NoopBilling
from kefal_lite.errors import NotAllowed
from kefal_lite.security import token_hash
from kefal_lite.store import agents
from kefal_lite.store.users import User
from kefal_lite.usecases import agents as agent_cases
from kefal_lite.usecases.actor import Actor
from tests.conftest import PASSWORD, enroll, query


def test_enroll_returns_a_token_stored_only_as_a_hash(
    open_client: TestClient[Any], alice: dict[str, str]
) -> None:
    c = open_client
    r = c.post("/api/v1/enroll", json={"username": "alice", "password": PASSWORD, "name": "web-01"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"token", "agent_id"}
    rows = query(
        c.app.state.settings, "SELECT token_hash, name FROM agents WHERE id = ?", body["agent_id"]
    )
    assert rows == [(token_hash(body["token"]), "web-01")]
    listing = c.get("/api/v1/agents", headers=alice).json()
    assert listing["total"] == 1
    [agent] = listing["items"]
    assert set(agent) == {
        "id",
        "name",
        "hostname",
        "status",
        "agent_version",
        "created_at",
        "last_seen_at",
    }
    assert agent["status"] == "active" and agent["name"] == "web-01"


def test_enroll_failures(open_client: TestClient[Any], alice: dict[str, str]) -> None:
    c = open_client
    r = c.post("/api/v1/enroll", json={"username": "alice", "password": "wrong password"})
    assert r.status_code == 401 and r.json() == {"detail": "invalid username or password"}
    r = c.post("/api/v1/enroll", json={"username": "ghost", "password": "wrong password"})
    assert r.status_code == 401 and r.json() == {"detail": "invalid username or password"}
    assert c.post("/api/v1/enroll", json={"username": "alice"}).status_code == 400
    for _ in range(4):
        c.post("/api/v1/enroll", json={"username": "alice", "password": "wrong password"})
    r = c.post("/api/v1/enroll", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 429 and r.headers["retry-after"]
    assert c.get("/api/v1/agents", headers=alice).json()["total"] == 0


def test_many_successful_enrollments_are_never_limited(
    open_client: TestClient[Any], alice: dict[str, str]
) -> None:
    for _ in range(20):
        enroll(open_client, "alice")
    r = open_client.get("/api/v1/agents?limit=5&offset=15", headers=alice).json()
    assert r["total"] == 20 and len(r["items"]) == 5


def test_revoke_and_rotate(open_client: TestClient[Any], alice: dict[str, str]) -> None:
    c = open_client
    a = enroll(c, "alice")
    r = c.post(f"/api/v1/agents/{a['agent_id']}/rotate-token", headers=alice)
    assert r.status_code == 200
    rotated = r.json()
    assert rotated["agent_id"] == a["agent_id"] and rotated["token"] != a["token"]
    rows = query(c.app.state.settings, "SELECT token_hash FROM agents WHERE id = ?", a["agent_id"])
    assert rows == [(token_hash(rotated["token"]),)]
    assert c.delete(f"/api/v1/agents/{a['agent_id']}", headers=alice).status_code == 204
    assert (
        c.delete(f"/api/v1/agents/{a['agent_id']}", headers=alice).status_code == 204
    )  # idempotent
    [agent] = c.get("/api/v1/agents", headers=alice).json()["items"]
    assert agent["status"] == "revoked"
    r = c.post(f"/api/v1/agents/{a['agent_id']}/rotate-token", headers=alice)
    assert r.status_code == 409
    assert c.delete("/api/v1/agents/not-an-agent", headers=alice).status_code == 404


def test_tenants_cannot_see_or_touch_each_others_agents(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str]
) -> None:
    c = open_client
    a = enroll(c, "alice")
    enroll(c, "bob")
    assert [x["id"] for x in c.get("/api/v1/agents", headers=alice).json()["items"]] == [
        a["agent_id"]
    ]
    bobs = c.get("/api/v1/agents", headers=bob).json()
    assert bobs["total"] == 1 and bobs["items"][0]["id"] != a["agent_id"]
    # 404, not 403: another tenant's id must not even be confirmed to exist
    assert c.delete(f"/api/v1/agents/{a['agent_id']}", headers=bob).status_code == 404
    assert c.post(f"/api/v1/agents/{a['agent_id']}/rotate-token", headers=bob).status_code == 404
    [agent] = c.get("/api/v1/agents", headers=alice).json()["items"]
    assert agent["status"] == "active"
    rows = query(c.app.state.settings, "SELECT token_hash FROM agents WHERE id = ?", a["agent_id"])
    assert rows == [(token_hash(a["token"]),)]


def test_agent_endpoints_need_a_session(
    open_client: TestClient[Any], alice: dict[str, str]
) -> None:
    c = open_client
    assert c.get("/api/v1/agents").status_code == 401
    assert (
        c.get("/api/v1/agents", headers={"Authorization": "Bearer kfa_notajwt"}).status_code == 401
    )
    assert c.get("/api/v1/agents?limit=501", headers=alice).status_code == 400


class _OneAgent(NoopBilling):
    async def agent_limit(self, user: User) -> int | None:
        return 1


def test_an_enrollment_between_the_limit_check_and_the_insert_is_refused(
    open_client: TestClient[Any], alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan's limit is checked and the agent inserted in one writer transaction. Another
    enrollment tried right after the count (before, that was a window: count on a reader,
    insert later on the writer, so both got in) now waits for the first to commit, counts
    its agent and is refused."""
    c = open_client
    svc = c.app.state.kefal
    svc.accounts.billing = _OneAgent()
    loop = c.blocking_portal.call(asyncio.get_running_loop)
    [owner] = query(c.app.state.settings, "SELECT id FROM users WHERE username = 'alice'")
    counted = agents.count_active
    rival: list[concurrent.futures.Future[Any]] = []

    def count_then_race(conn: Any, user_id: str) -> int:
        n = counted(conn, user_id)
        if not rival:
            rival.append(asyncio.run_coroutine_threadsafe(svc.db.write(
                agent_cases.add_agent, Actor(org_id=owner[0], user_id=owner[0], username="alice"),
                agent_id="rival", name="rival",
                token_hash=b"x" * 32, limit=1, now="2026-01-01T00:00:00Z"), loop))  # fmt: skip
            # it gets in now if it can (it could before: the writer was idle)
            concurrent.futures.wait(rival, timeout=1)
        return n

    monkeypatch.setattr(agents, "count_active", count_then_race)
    r = c.post("/api/v1/enroll", json={"username": "alice", "password": PASSWORD, "name": "a"})
    assert r.status_code == 200, r.text
    with pytest.raises(NotAllowed, match="your plan allows 1 agent"):
        rival[0].result(timeout=10)
    assert query(c.app.state.settings, "SELECT name FROM agents") == [("a",)]
    r = c.post("/api/v1/enroll", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 403 and "your plan allows 1 agent(s)" in r.json()["detail"]
    assert query(c.app.state.settings,
                 "SELECT COUNT(*) FROM audit WHERE action = 'agent_enrolled'") == [(1,)]  # fmt: skip
