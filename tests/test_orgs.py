"""Organizations (issue #17): members and roles, invitations, switching, API keys, the
last-owner rule, and the role x endpoint matrix built from the app's own routes."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from kefal_lite.api.access import ACCOUNT, PERSON_ONLY, PLATFORM, RULES, SELF_OR_OWNER, rule_of
from kefal_lite.roles import ROLES, at_least
from tests.builders import T0
from tests.conftest import FrozenClock, enroll, login, query, register, send
from tests.helpers.orgs import (
    Headers,
    bearer,
    invite,
    join,
    make_key,
    new_org,
    switch,
)

# --- organizations and members --------------------------------------------------------


def test_registration_makes_a_personal_org_and_orgs_list_roles(
    open_client: TestClient[Any], alice: Headers
) -> None:
    c = open_client
    me = c.get("/api/v1/auth/me", headers=alice).json()
    [personal] = c.get("/api/v1/orgs", headers=alice).json()["items"]
    assert personal["id"] == me["id"] and personal["personal"] and personal["role"] == "owner"
    org_id, _ = new_org(c, alice, "Acme")
    items = c.get("/api/v1/orgs", headers=alice).json()["items"]
    assert [(o["name"], o["role"]) for o in items] == [("alice", "owner"), ("Acme", "owner")]
    r = c.patch(f"/api/v1/orgs/{org_id}", json={"name": "Acme Ltd"}, headers=alice)
    assert r.status_code == 200 and r.json()["name"] == "Acme Ltd"
    assert c.get(f"/api/v1/orgs/{org_id}", headers=alice).json()["name"] == "Acme Ltd"


def test_members_roles_and_the_last_owner(open_client: TestClient[Any], alice: Headers) -> None:
    c = open_client
    org_id, owner = new_org(c, alice)
    bob = join(c, owner, org_id, "bob", "member")
    members = c.get(f"/api/v1/orgs/{org_id}/members", headers=bob).json()["items"]
    assert [(m["username"], m["role"]) for m in members] == [("alice", "owner"), ("bob", "member")]
    alice_id = members[0]["user_id"]
    bob_id = members[1]["user_id"]
    # the last owner can neither be demoted nor leave
    r = c.patch(f"/api/v1/orgs/{org_id}/members/{alice_id}", json={"role": "admin"},
                headers=owner)  # fmt: skip
    assert r.status_code == 409 and "owner" in r.json()["detail"]
    assert c.delete(f"/api/v1/orgs/{org_id}/members/{alice_id}", headers=owner).status_code == 409
    # a member cannot change roles; the owner can, and then may step down
    r = c.patch(f"/api/v1/orgs/{org_id}/members/{bob_id}", json={"role": "owner"}, headers=bob)
    assert r.status_code == 403
    r = c.patch(f"/api/v1/orgs/{org_id}/members/{bob_id}", json={"role": "owner"}, headers=owner)
    assert r.status_code == 200 and r.json()["role"] == "owner"
    r = c.patch(f"/api/v1/orgs/{org_id}/members/{alice_id}", json={"role": "viewer"},
                headers=owner)  # fmt: skip
    assert r.status_code == 200
    # alice's session now acts as a viewer: the guard reads the role on every request
    assert c.patch(f"/api/v1/orgs/{org_id}", json={"name": "x"}, headers=owner).status_code == 403
    # anyone may leave; afterwards the organization is unknown to them (404, not 403), and
    # their live event stream of it ends at once
    bus = c.app.state.kefal.events

    async def subscribe() -> Any:
        return bus.subscribe(alice_id, 0, "a-session", org_id)

    stream = c.blocking_portal.call(subscribe)
    assert c.delete(f"/api/v1/orgs/{org_id}/members/{alice_id}", headers=owner).status_code == 204
    assert stream.dropped
    assert c.get(f"/api/v1/orgs/{org_id}", headers=login(c, "alice")).status_code == 404
    assert c.get("/api/v1/hosts", headers=owner).status_code == 401  # that session's org is gone
    actions = [a for (a,) in query(c.app.state.settings,
                                   "SELECT action FROM audit WHERE org_id = ? ORDER BY id",
                                   org_id)]  # fmt: skip
    assert actions == ["org_created", "member_invited", "invitation_accepted",
                       "member_role_changed", "member_role_changed", "member_removed"]


def test_a_shared_org_shares_the_fleet(
    open_client: TestClient[Any], alice: Headers, clock: FrozenClock
) -> None:
    """What the issue is for: two people see and triage the same hosts."""
    c = open_client
    clock.set(T0 + timedelta(seconds=5))
    org_id, owner = new_org(c, alice)
    bob = join(c, owner, org_id, "bob", "member")
    r = c.post("/api/v1/enrollment-tokens", json={"name": "fleet"}, headers=owner)
    assert r.status_code == 201, r.text
    agent = c.post("/api/v1/enroll", json={"enrollment_token": r.json()["token"]}).json()
    assert send(c, agent, 0).status_code == 200
    [host] = c.get("/api/v1/hosts", headers=bob).json()["items"]
    assert [h["host_id"] for h in c.get("/api/v1/hosts", headers=owner).json()["items"]] == [
        host["host_id"]
    ]
    # alice's personal organization does not see the company's host
    assert c.get("/api/v1/hosts", headers=alice).json()["items"] == []
    [(org,)] = query(c.app.state.settings, "SELECT org_id FROM hosts")
    assert org == org_id


def test_the_owner_deletes_an_org_and_everything_it_owns(
    open_client: TestClient[Any], alice: Headers, clock: FrozenClock
) -> None:
    """DELETE /orgs/{id}: owner only, the name typed again, not a personal organization;
    its hosts, incidents, agents and members go, other organizations keep theirs."""
    c = open_client
    clock.set(T0 + timedelta(seconds=5))
    org_id, owner = new_org(c, alice, "Acme")
    bob = join(c, owner, org_id, "bob", "admin")
    r = c.post("/api/v1/enrollment-tokens", json={"name": "fleet"}, headers=owner)
    agent = c.post("/api/v1/enroll", json={"enrollment_token": r.json()["token"]}).json()
    assert send(c, agent, 0).status_code == 200
    # alice's personal organization has a host of its own, which must survive
    mine = c.post("/api/v1/enrollment-tokens", json={"name": "home"}, headers=alice)
    home = c.post("/api/v1/enroll", json={"enrollment_token": mine.json()["token"]}).json()
    assert send(c, home, 0).status_code == 200

    url = f"/api/v1/orgs/{org_id}"
    assert c.request("DELETE", url, json={"name": "Acme"}, headers=bob).status_code == 403
    r = c.request("DELETE", url, json={"name": "acme"}, headers=owner)
    assert r.status_code == 400 and "name" in r.json()["detail"]
    key = make_key(c, owner, "owner", "ci")["key"]
    assert c.request("DELETE", url, json={"name": "Acme"}, headers=bearer(key)).status_code == 403
    personal = c.get("/api/v1/auth/me", headers=alice).json()["id"]
    r = c.request("DELETE", f"/api/v1/orgs/{personal}", json={"name": "alice"}, headers=alice)
    assert r.status_code == 409, r.text

    assert c.request("DELETE", url, json={"name": "Acme"}, headers=owner).status_code == 204
    settings = c.app.state.settings
    for table in ("hosts", "agents", "snapshots", "incidents", "memberships", "api_keys"):
        assert query(settings, f"SELECT count(*) FROM {table} WHERE org_id = ?", org_id) == [(0,)]
    assert query(settings, "SELECT count(*) FROM orgs WHERE id = ?", org_id) == [(0,)]
    assert send(c, agent, 1).status_code == 401  # its agents are gone with it
    assert [o["id"] for o in c.get("/api/v1/orgs", headers=alice).json()["items"]] == [personal]
    assert len(c.get("/api/v1/hosts", headers=alice).json()["items"]) == 1
    assert c.get(url, headers=bob).status_code in (401, 404)
    [(action,)] = query(settings, "SELECT action FROM audit WHERE action = 'org_deleted'"
                        " AND org_id = ?", org_id)  # fmt: skip
    assert action == "org_deleted"


# --- invitations ------------------------------------------------------------------------


def test_invitation_by_a_new_account_while_signup_is_closed(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    c = client  # auth.signup is off: only an invitation lets a stranger register
    register(c, "root")
    root = login(c, "root")
    org_id, owner = new_org(c, root)
    token = invite(c, owner, org_id, "carol@example.org", "admin")
    r = c.post("/auth/register", json={"username": "carol", "password": "x" * 12})
    assert r.status_code == 403
    r = c.post("/auth/register", json={"username": "carol", "password": "x" * 12,
                                       "email": "carol@example.org", "invitation": token})
    assert r.status_code == 201, r.text
    carol = login(c, "carol", "x" * 12)
    mine = {o["id"]: o["role"] for o in c.get("/api/v1/orgs", headers=carol).json()["items"]}
    assert mine[org_id] == "admin"
    # single use: the same token registers no one else
    r = c.post("/auth/register", json={"username": "dave", "password": "x" * 12,
                                       "invitation": token})
    assert r.status_code == 400
    assert query(c.app.state.settings, "SELECT COUNT(*) FROM users WHERE username = 'dave'") \
        == [(0,)]  # fmt: skip


def test_invitation_reuse_expiry_and_role_cap(
    open_client: TestClient[Any], alice: Headers, bob: Headers, clock: FrozenClock
) -> None:
    c = open_client
    org_id, owner = new_org(c, alice)
    token = invite(c, owner, org_id, "bob@example.org", "viewer")
    assert c.post("/api/v1/invitations/accept", json={"token": token},
                  headers=bob).status_code == 200  # fmt: skip
    # reuse: spent
    register(c, "carol")
    carol = login(c, "carol")
    r = c.post("/api/v1/invitations/accept", json={"token": token}, headers=carol)
    assert r.status_code == 400 and "expired" in r.json()["detail"]
    # expiry: 7 days
    late = invite(c, owner, org_id, "carol@example.org", "member")
    clock.advance(days=7, seconds=1)
    carol = login(c, "carol")
    assert c.post("/api/v1/invitations/accept", json={"token": late},
                  headers=carol).status_code == 400  # fmt: skip
    assert org_id not in {o["id"] for o in c.get("/api/v1/orgs", headers=carol).json()["items"]}
    # an admin cannot invite an owner; a viewer cannot invite at all
    owner = login(c, "alice")
    owner = switch(c, owner, org_id)
    dave = join(c, owner, org_id, "dave", "admin")
    r = c.post(f"/api/v1/orgs/{org_id}/invitations",
               json={"email": "e@example.org", "role": "owner"}, headers=dave)  # fmt: skip
    assert r.status_code == 403
    viewer = switch(c, bob, org_id)
    r = c.post(f"/api/v1/orgs/{org_id}/invitations",
               json={"email": "e@example.org", "role": "viewer"}, headers=viewer)  # fmt: skip
    assert r.status_code == 403
    # the invitation is stored hashed: the token is nowhere in the table
    rows = query(c.app.state.settings, "SELECT * FROM invitations")
    assert token not in str(rows) and late not in str(rows)


# --- API keys ---------------------------------------------------------------------------


def test_api_key_use_scope_and_revocation(
    open_client: TestClient[Any], alice: Headers, bob: Headers, clock: FrozenClock
) -> None:
    c = open_client
    clock.set(T0 + timedelta(seconds=5))
    org_id, owner = new_org(c, alice)
    admin = join(c, owner, org_id, "carol", "admin")
    # at most the caller's role
    r = c.post("/api/v1/api-keys", json={"name": "x", "role": "owner"}, headers=admin)
    assert r.status_code == 403
    made = make_key(c, admin, "viewer", "grafana")
    key = made["key"]
    assert key.startswith("kfk_") and made["prefix"] == key[:12] and made["role"] == "viewer"
    rows = query(c.app.state.settings, "SELECT * FROM api_keys")
    assert key not in str(rows)  # only the hash is kept
    h = bearer(key)
    assert c.get("/api/v1/hosts", headers=h).status_code == 200
    # read-only: a viewer key cannot triage or configure
    assert c.post("/api/v1/suppressions", json={"reason": "x", "invariant_id": "ssh_root"},
                  headers=h).status_code == 403  # fmt: skip
    # bound to its organization: another one is unknown to it, account routes are refused
    assert c.get(f"/api/v1/orgs/{alice_personal(c, alice)}", headers=h).status_code == 404
    assert c.get("/api/v1/auth/me", headers=h).status_code == 403
    assert c.post(f"/api/v1/orgs/{org_id}/switch", headers=h).status_code == 403
    # listed with prefix and last use, never the key
    [listed] = c.get("/api/v1/api-keys", headers=owner).json()["items"]
    assert listed["prefix"] == key[:12] and listed["last_used_at"] is not None
    assert "key" not in listed and key not in str(listed)
    # an admin key acts, and the audit names the key
    admin_key = make_key(c, admin, "admin", "deploy")["key"]
    r = c.post("/api/v1/enrollment-tokens", json={"name": "by key"}, headers=bearer(admin_key))
    assert r.status_code == 201
    [(actor,)] = query(c.app.state.settings,
                       "SELECT actor FROM audit WHERE action = 'enrollment_token_created'")
    assert actor == "key:deploy"
    # revoked: the next request is 401
    assert c.delete(f"/api/v1/api-keys/{made['id']}", headers=owner).status_code == 204
    assert c.get("/api/v1/hosts", headers=h).status_code == 401
    # bob, in another organization, cannot revoke (404) or see this org's keys
    assert c.delete(f"/api/v1/api-keys/{made['id']}", headers=bob).status_code == 404
    assert c.get("/api/v1/api-keys", headers=bob).json()["items"] == []
    # a key stops with its maker's membership, and never acts above the maker's role now
    members = c.get(f"/api/v1/orgs/{org_id}/members", headers=owner).json()["items"]
    carol_id = next(m["user_id"] for m in members if m["username"] == "carol")
    c.patch(f"/api/v1/orgs/{org_id}/members/{carol_id}", json={"role": "viewer"}, headers=owner)
    r = c.post("/api/v1/enrollment-tokens", json={"name": "x"}, headers=bearer(admin_key))
    assert r.status_code == 403
    c.delete(f"/api/v1/orgs/{org_id}/members/{carol_id}", headers=owner)
    assert c.get("/api/v1/hosts", headers=bearer(admin_key)).status_code == 401


def test_an_expired_key_is_refused(
    open_client: TestClient[Any], alice: Headers, clock: FrozenClock
) -> None:
    c = open_client
    expires = (clock.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    r = c.post("/api/v1/api-keys", json={"name": "tmp", "role": "viewer", "expires_at": expires},
               headers=alice)  # fmt: skip
    assert r.status_code == 201, r.text
    h = bearer(r.json()["key"])
    assert c.get("/api/v1/hosts", headers=h).status_code == 200
    clock.advance(hours=1, seconds=1)
    assert c.get("/api/v1/hosts", headers=h).status_code == 401


def alice_personal(c: TestClient[Any], session: Headers) -> str:
    return str(c.get("/api/v1/auth/me", headers=session).json()["id"])


# --- the role x endpoint matrix -----------------------------------------------------------

MISSING = "00000000-0000-7000-8000-000000000000"


def routes(c: TestClient[Any]) -> dict[tuple[str, str], str | None]:
    """Every authenticated (method, path template) the app serves, with its rule."""
    found = {}
    for route in c.app.routes:
        for handler in getattr(route, "route_handlers", []):
            if handler.opt.get("exclude_from_auth") or route.path.startswith("/schema"):
                continue
            for method in handler.http_methods:
                if method not in ("OPTIONS", "HEAD"):
                    found[(method, route.path)] = rule_of(handler, method)
    return dict(sorted(found.items()))


def test_every_authenticated_route_has_a_rule(client: TestClient[Any]) -> None:
    """A new endpoint without a rule in api/access.py fails here (and is refused, 403)."""
    served = routes(client)
    assert len(served) > 60
    assert [r for r, rule in served.items() if rule is None] == []
    assert [r for r in RULES if r not in served] == []  # no rule for a route that is gone


def _url(path: str, org_id: str) -> str:
    path = path.replace("{org_id:str}", org_id)
    return re.sub(r"\{[^}]+\}", MISSING, path)


def _call(c: TestClient[Any], method: str, url: str, h: Headers) -> int:
    return c.request(method, url, headers=h, json={}).status_code


@pytest.mark.parametrize("via", ["session", "key"])
def test_role_endpoint_matrix(open_client: TestClient[Any], via: str) -> None:
    """Each role gets 403 on every route below its rule and never on one at or above it,
    through a session and through an API key of that role."""
    c = open_client
    register(c, "root")  # the server admin: none of the members below is one
    register(c, "olga", email="olga@example.org")
    org_id, owner = new_org(c, login(c, "olga"))
    sessions = {"owner": owner}
    for role in ("admin", "member", "viewer"):
        sessions[role] = join(c, owner, org_id, f"u{role}", role)
    if via == "key":
        sessions = {role: bearer(make_key(c, owner, role, role)["key"]) for role in ROLES}
    wrong = []
    for (method, path), rule in routes(c).items():
        assert rule is not None
        if "logout" in path and via == "session":
            continue  # it would end the session the rest needs (test_sessions covers them)
        for role in ROLES:
            if rule == ACCOUNT:
                forbidden = via == "key"
            elif rule == PLATFORM:
                forbidden = True
            elif rule == SELF_OR_OWNER:
                forbidden = role != "owner"  # the {user_id} here is not the caller
            else:
                forbidden = not at_least(role, rule)
            if via == "key" and (method, path) in PERSON_ONLY:
                forbidden = True  # people and keys are a person's decision (issue #17)
            status = _call(c, method, _url(path, org_id), sessions[role])
            if (status == 403) != forbidden or status in (401, 500):
                wrong.append((role, method, path, status))
    assert wrong == []
    # the platform routes are the server admin's, whatever their organization role
    root = login(c, "root")
    platform = [r for r, rule in routes(c).items() if rule == PLATFORM]
    assert platform and all(_call(c, m, _url(p, org_id), root) != 403 for m, p in platform)


def test_a_member_triages_but_a_viewer_only_reads(
    open_client: TestClient[Any], alice: Headers, clock: FrozenClock
) -> None:
    """The matrix with real ids: the same incident, acknowledged by each role."""
    c = open_client
    clock.set(T0 + timedelta(seconds=5))
    agent = enroll(c, "alice")
    send(c, agent, 0, add_ports=[{"port": 5432, "address": "0.0.0.0", "process": "postgres",
                                  "pid": 4321}])  # fmt: skip
    [inc] = c.get("/api/v1/incidents", headers=alice).json()["items"]
    personal = alice_personal(c, alice)
    viewer = join(c, alice, personal, "vera", "viewer")
    member = join(c, alice, personal, "mike", "member")
    url = f"/api/v1/incidents/{inc['id']}/acknowledge"
    assert c.get(f"/api/v1/incidents/{inc['id']}", headers=viewer).status_code == 200
    assert c.post(url, headers=viewer).status_code == 403
    r = c.post(url, headers=member)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert r.json()["history"][-1]["actor"] == "user:mike"


# --- export ------------------------------------------------------------------------------


def test_export_holds_what_the_org_owns_and_no_secret(
    open_client: TestClient[Any], alice: Headers, bob: Headers, clock: FrozenClock
) -> None:
    c = open_client
    clock.set(T0 + timedelta(seconds=5))
    org_id, owner = new_org(c, alice)
    secrets_given = []
    tok = c.post("/api/v1/enrollment-tokens", json={"name": "fleet", "max_uses": 0},
                 headers=owner).json()  # fmt: skip
    agent = c.post("/api/v1/enroll", json={"enrollment_token": tok["token"]}).json()
    secrets_given += [tok["token"], agent["token"]]
    for i in range(2):
        send(c, agent, i, add_ports=[{"port": 5432, "address": "0.0.0.0",
                                      "process": "postgres"}])  # fmt: skip
        clock.advance(minutes=1)
    channel = c.post("/api/v1/notifications/channels", headers=owner,
                     json={"name": "ops", "url": "mailto:ops@example.org"}).json()  # fmt: skip
    secrets_given.append(make_key(c, owner, "viewer")["key"])
    secrets_given.append(invite(c, owner, org_id, "carol@example.org", "member"))
    c.post("/api/v1/auth/mfa/setup", headers=owner)  # a pending MFA seed exists now
    # bob's own organization: none of it may appear
    bob_agent = enroll(c, "bob")

    r = c.get(f"/api/v1/orgs/{org_id}/export", headers=owner)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    out = r.json()
    assert out["organization"]["id"] == org_id
    assert [m["username"] for m in out["members"]] == ["alice"]
    assert [a["id"] for a in out["agents"]] == [agent["agent_id"]]
    [host] = out["hosts"]
    assert host["snapshot_id"] in out["latest_snapshots"] and "state" not in host
    assert out["latest_snapshots"][host["snapshot_id"]]["agent_id"] == agent["agent_id"]
    [inc] = out["incidents"]
    assert inc["invariant_id"] == "database_exposed" and isinstance(inc["evidence"], dict)
    assert {e["incident_id"] for e in out["incident_events"]} == {inc["id"]}
    assert [ch["url_masked"] for ch in out["channels"]] == [channel["url"]]
    assert [t["name"] for t in out["enrollment_tokens"]] == ["fleet"]
    assert len(out["api_keys"]) == 1 and len(out["invitations"]) == 1
    assert {"org_created", "member_invited", "api_key_created"} <= {
        a["action"] for a in out["audit"]}  # fmt: skip
    text = r.text
    for secret in secrets_given + [bob_agent["agent_id"], bob_agent["token"]]:
        assert secret not in text
    for column in ("token_hash", "url_sealed", "secret_sealed", "password_hash", "mfa_secret",
                   "mfa_pending"):  # fmt: skip
        assert column not in text, column
    settings = c.app.state.settings
    for (sealed,) in query(settings, "SELECT url_sealed FROM channels"):
        assert sealed not in text
    for (pending, password_hash) in query(settings, "SELECT mfa_pending, password_hash FROM users"):
        assert password_hash not in text and (pending is None or pending not in text)
    # owner only; another organization's owner gets 404
    member = join(c, owner, org_id, "dan", "admin")
    assert c.get(f"/api/v1/orgs/{org_id}/export", headers=member).status_code == 403
    assert c.get(f"/api/v1/orgs/{org_id}/export", headers=bob).status_code == 404
