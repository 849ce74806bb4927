"""Security review of organizations (issue #17): each test is a hole found in the teams
branch, written as the behaviour the product should have, so it fails until fixed.

Attackers: a removed or demoted admin, a holder of a revoked API key, the holder of an
invitation link meant for someone else, a member removed while holding an event ticket.
Real HTTP through the test client (and a real uvicorn for the event stream)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from litestar.testing import TestClient

from kefal_lite.clock import FrozenClock
from tests.conftest import (
    PASSWORD,
    enroll,
    in_app,
    live_app,
    login,
    make_settings,
    query,
    register,
)
from tests.helpers.orgs import Headers, bearer, invite, join, make_key, new_org, switch


def _member_id(c: TestClient[Any], session: Headers, org_id: str, username: str) -> str:
    members = c.get(f"/api/v1/orgs/{org_id}/members", headers=session).json()["items"]
    [found] = [m["user_id"] for m in members if m["username"] == username]
    return str(found)


def _role(c: TestClient[Any], session: Headers, org_id: str) -> str | None:
    """The caller's role in `org_id`, as GET /api/v1/orgs lists it (None: not a member)."""
    for org in c.get("/api/v1/orgs", headers=session).json()["items"]:
        if org["id"] == org_id:
            return str(org["role"])
    return None


# --- invitations -----------------------------------------------------------------------


def test_removed_admin_cannot_rejoin_with_an_invitation_they_issued(
    open_client: TestClient[Any], alice: Headers
) -> None:
    """HIGH. An admin about to be removed invites an address they control as admin. The
    owner removes them; there is no way to list-and-cancel (no DELETE on invitations) and
    the invitation does not die with its inviter's membership, so after removal they
    accept it (invitations are not bound to the address either: the same account works)
    and are back as admin."""
    c = open_client
    org_id, owner = new_org(c, alice)
    mallory = join(c, owner, org_id, "mallory", "admin")
    token = invite(c, mallory, org_id, "mallory-alt@example.org", "admin")
    mallory_id = _member_id(c, owner, org_id, "mallory")
    assert c.delete(f"/api/v1/orgs/{org_id}/members/{mallory_id}", headers=owner).status_code == 204

    again = login(c, "mallory")
    assert _role(c, again, org_id) is None
    r = c.post("/api/v1/invitations/accept", json={"token": token}, headers=again)
    assert r.status_code in (400, 403, 404, 409), r.text
    assert _role(c, again, org_id) is None


def test_pending_invitation_is_capped_by_the_inviters_current_role(
    open_client: TestClient[Any], alice: Headers
) -> None:
    """MEDIUM. An admin invites someone as admin, then is demoted to viewer (the owner
    no longer trusts them). The invitation still grants admin when accepted: the role cap
    on invitations is checked only when it is made, never when it is used."""
    c = open_client
    org_id, owner = new_org(c, alice)
    eve = join(c, owner, org_id, "eve", "admin")
    token = invite(c, eve, org_id, "eve-friend@example.org", "admin")
    eve_id = _member_id(c, owner, org_id, "eve")
    r = c.patch(f"/api/v1/orgs/{org_id}/members/{eve_id}", json={"role": "viewer"},
                headers=owner)  # fmt: skip
    assert r.status_code == 200

    register(c, "friend", email="eve-friend@example.org")
    friend = login(c, "friend")
    r = c.post("/api/v1/invitations/accept", json={"token": token}, headers=friend)
    assert r.status_code != 200 or r.json()["role"] != "admin", r.text
    assert _role(c, friend, org_id) in (None, "viewer")


def test_an_invitation_is_accepted_only_by_the_address_it_was_sent_to(
    open_client: TestClient[Any], alice: Headers
) -> None:
    """LOW-MEDIUM (design decision for the lead). An invitation to carol@ is accepted by
    any account holding the link: mallory (another address) joins as admin. A link that
    leaks (forwarded mail, shared inbox, chat paste, the outbox of a server without SMTP)
    lets anyone in, at the invited role, and the audit shows mallory, not carol."""
    c = open_client
    org_id, owner = new_org(c, alice)
    token = invite(c, owner, org_id, "carol@example.org", "admin")
    register(c, "mallory", email="mallory@example.org")
    mallory = login(c, "mallory")
    r = c.post("/api/v1/invitations/accept", json={"token": token}, headers=mallory)
    assert r.status_code in (400, 403, 404), r.text
    assert _role(c, mallory, org_id) is None


# --- API keys --------------------------------------------------------------------------


def test_keys_minted_by_an_api_key_die_when_it_is_revoked(
    open_client: TestClient[Any], alice: Headers
) -> None:
    """MEDIUM. POST /api/v1/api-keys is an "admin" rule, not an account rule, so an admin
    API key can mint further keys. A leaked key is revoked "at once", yet the attacker
    already minted a second one (made in the maker's name, not linked to the first) that
    keeps working: revocation does not end the attacker's access."""
    c = open_client
    org_id, owner = new_org(c, alice)
    leaked = make_key(c, owner, "admin", name="ci")
    r = c.post("/api/v1/api-keys", json={"name": "backup", "role": "admin"},
               headers=bearer(leaked["key"]))  # fmt: skip
    minted = r.json().get("key") if r.status_code == 201 else None
    assert c.delete(f"/api/v1/api-keys/{leaked['id']}", headers=owner).status_code == 204
    assert c.get("/api/v1/hosts", headers=bearer(leaked["key"])).status_code == 401
    if minted is not None:
        assert c.get("/api/v1/hosts", headers=bearer(minted)).status_code == 401


def test_an_api_key_cannot_invite_people_into_the_organization(
    open_client: TestClient[Any], alice: Headers
) -> None:
    """MEDIUM. POST /orgs/{id}/invitations accepts an admin API key (its org is the path's),
    so a leaked key invites the attacker as admin: a person's membership, with sessions,
    that survives the key's revocation. Making people members should need a person."""
    c = open_client
    org_id, owner = new_org(c, alice)
    leaked = make_key(c, owner, "admin", name="ci")
    r = c.post(f"/api/v1/orgs/{org_id}/invitations",
               json={"email": "mallory@example.org", "role": "admin"},
               headers=bearer(leaked["key"]))  # fmt: skip
    assert r.status_code == 403, r.text


def test_a_removed_members_old_key_stays_dead_after_they_rejoin(
    open_client: TestClient[Any], alice: Headers
) -> None:
    """LOW. Removing a member stops their keys only because a live key needs its maker's
    membership (store/orgs.live_key joins memberships); the keys are not revoked. When the
    person is invited back later, every key they made before removal (forgotten on a CI
    box, perhaps the reason for the removal) works again, up to their new role."""
    c = open_client
    org_id, owner = new_org(c, alice)
    bob = join(c, owner, org_id, "bob", "admin")
    old = make_key(c, bob, "admin", name="bob-laptop")
    bob_id = _member_id(c, owner, org_id, "bob")
    assert c.delete(f"/api/v1/orgs/{org_id}/members/{bob_id}", headers=owner).status_code == 204
    assert c.get("/api/v1/hosts", headers=bearer(old["key"])).status_code == 401

    token = invite(c, owner, org_id, "bob@example.org", "admin")
    r = c.post("/api/v1/invitations/accept", json={"token": token}, headers=login(c, "bob"))
    assert r.status_code == 200, r.text
    assert c.get("/api/v1/hosts", headers=bearer(old["key"])).status_code == 401


# --- last owner --------------------------------------------------------------------------


def test_the_sole_owner_deleting_their_account_does_not_orphan_the_organization(
    open_client: TestClient[Any], alice: Headers, clock: FrozenClock
) -> None:
    """MEDIUM. "The last owner cannot leave or be demoted", but DELETE /api/v1/auth/me
    is accepted from the sole owner of a shared organization; 30 days later the purge
    takes their membership, leaving admins and members in an organization no one can
    manage (members, billing, export, rename are owner-only; no owner can ever be made)."""
    c = open_client
    org_id, owner = new_org(c, alice)
    join(c, owner, org_id, "bob", "admin")
    r = c.request("DELETE", "/api/v1/auth/me", json={"password": PASSWORD}, headers=alice)
    if r.status_code == 409:
        return  # refused while sole owner of a shared organization: sound
    assert r.status_code == 200, r.text
    clock.advance(days=31)
    svc = c.app.state.kefal
    in_app(c, svc.accounts.purge_due)
    owners = query(c.app.state.settings,
                   "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id"
                   " WHERE m.org_id = ? AND m.role = 'owner' AND u.disabled = 0",
                   org_id)  # fmt: skip
    assert owners == [(1,)] or owners[0][0] >= 1, owners


# --- event streams -----------------------------------------------------------------------


def test_an_event_ticket_taken_before_removal_opens_no_stream_after_it(tmp_path: Path) -> None:
    """MEDIUM. A member asks for an event ticket (valid 60 s), is removed, then redeems
    it: GET /api/v1/events checks the session and token version but not the membership,
    and end_membership only closed the streams open at removal time. The removed member
    gets the organization's live incident and host events for the rest of the session
    (the watcher checks sessions, not memberships)."""
    settings = make_settings(tmp_path / "data", auth_signup=True)
    with live_app(settings) as (url, _):

        def post(path: str, headers: Headers | None = None, **body: Any) -> httpx.Response:
            return httpx.post(url + path, json=body or None, headers=headers)

        def session(name: str) -> Headers:
            r = post("/auth/register", username=name, password=PASSWORD,
                     email=f"{name}@example.org")  # fmt: skip
            assert r.status_code == 201, r.text
            r = post("/auth/login", username=name, password=PASSWORD)
            return bearer(r.json()["access_token"])

        alice = session("alice")
        org_id = post("/api/v1/orgs", alice, name="Acme").json()["id"]
        owner = bearer(post(f"/api/v1/orgs/{org_id}/switch", alice).json()["access_token"])
        bob = session("bob")
        r = post(f"/api/v1/orgs/{org_id}/invitations", owner, email="bob@example.org",
                 role="viewer")  # fmt: skip
        assert r.status_code == 201, r.text
        [(body,)] = query(settings, "SELECT body FROM outbox WHERE recipient = ?",
                          "bob@example.org")  # fmt: skip
        token = body.split("token=")[1].split()[0]
        assert post("/api/v1/invitations/accept", bob, token=token).status_code == 200
        bob_in = bearer(post(f"/api/v1/orgs/{org_id}/switch", bob).json()["access_token"])
        bob_id = httpx.get(url + "/api/v1/auth/me", headers=bob).json()["id"]

        ticket = post("/api/v1/events/ticket", bob_in).json()["ticket"]
        r = httpx.delete(f"{url}/api/v1/orgs/{org_id}/members/{bob_id}", headers=owner)
        assert r.status_code == 204
        assert httpx.get(url + "/api/v1/hosts", headers=bob_in).status_code == 401

        with httpx.stream("GET", f"{url}/api/v1/events", params={"ticket": ticket},
                          timeout=httpx.Timeout(5, read=5)) as stream:  # fmt: skip
            status = stream.status_code
        assert status == 401, "a removed member opened the organization's event stream"



def test_a_co_owner_cannot_lock_the_account_holder_out_of_their_own_account(
    open_client: TestClient[Any], alice: Headers, bob: Headers
) -> None:
    """HIGH. Alice shares her personal organization (where her pre-teams fleet lives) and
    makes bob an owner. Bob removes alice from it (owner rule; she is not the last owner).
    Every login starts in the personal organization (accounts.login binds the token to
    org = user id) and the gate needs a membership there, so each of alice's new sessions
    is 401 on every route: no org list, no switch to her other organizations, no session
    list, no account deletion. One co-owner bricks another person's whole account."""
    c = open_client
    alice_id = c.get("/api/v1/auth/me", headers=alice).json()["id"]
    token = invite(c, alice, alice_id, "bob@example.org", "owner")
    r = c.post("/api/v1/invitations/accept", json={"token": token}, headers=bob)
    assert r.status_code == 200, r.text
    bob_there = switch(c, bob, alice_id)
    r = c.delete(f"/api/v1/orgs/{alice_id}/members/{alice_id}", headers=bob_there)
    if r.status_code in (403, 409):
        return  # the personal organization's own account cannot be removed: sound
    assert r.status_code == 204, r.text
    again = login(c, "alice")
    assert c.get("/api/v1/orgs", headers=again).status_code == 200
    assert c.get("/api/v1/auth/sessions", headers=again).status_code == 200
    # with no organization left, the account routes only: org routes answer 401
    assert c.get("/api/v1/hosts", headers=again).status_code == 401


def test_a_login_starts_in_another_organization_when_the_personal_one_is_lost(
    open_client: TestClient[Any], alice: Headers, bob: Headers
) -> None:
    """The fix for hole 2: removed from her personal organization, alice's next login
    starts in another organization of hers instead of one she cannot use."""
    c = open_client
    alice_id = c.get("/api/v1/auth/me", headers=alice).json()["id"]
    acme, _ = new_org(c, alice, "Acme")
    token = invite(c, alice, alice_id, "bob@example.org", "owner")
    assert c.post("/api/v1/invitations/accept", json={"token": token},
                  headers=bob).status_code == 200  # fmt: skip
    bob_there = switch(c, bob, alice_id)
    r = c.delete(f"/api/v1/orgs/{alice_id}/members/{alice_id}", headers=bob_there)
    assert r.status_code == 204, r.text
    again = login(c, "alice")
    assert c.get("/api/v1/hosts", headers=again).status_code == 200
    assert c.get(f"/api/v1/orgs/{acme}", headers=again).status_code == 200


def test_an_api_key_expiry_without_a_timezone_is_not_a_server_error(
    open_client: TestClient[Any], alice: Headers
) -> None:
    """LOW (robustness). `expires_at` without an offset ("2030-01-01T00:00:00") decodes
    as a naive datetime and Organizations.create_key compares it with the aware clock:
    TypeError, 500. It should be 400 (or be read as UTC)."""
    c = open_client
    _, owner = new_org(c, alice)
    r = c.post("/api/v1/api-keys",
               json={"name": "ci", "role": "viewer", "expires_at": "2030-01-01T00:00:00"},
               headers=owner)  # fmt: skip
    assert r.status_code in (201, 400), r.text


# --- abuse -----------------------------------------------------------------------------


def test_a_new_organization_is_not_a_new_free_trial(
    billed: TestClient[Any], clock: FrozenClock
) -> None:
    """MEDIUM (billing bypass, under paypal). The trial is 7 days from the organization's
    creation (billing/paypal.py), and anyone may create organizations without limit: when
    alice's trial ends she makes another organization, which starts a fresh trial with its
    own 3-agent allowance, re-enrolls her agents with an enrollment token, and never pays.
    The same trick multiplies the agent limit by the number of organizations."""
    c = billed
    register(c, "alice")
    alice = login(c, "alice")
    assert enroll(c, "alice")["agent_id"]
    clock.advance(days=8)
    alice = login(c, "alice")
    assert c.get("/api/v1/billing/status", headers=alice).json()["state"] == "expired"
    _, second = new_org(c, alice, "Alice again")
    status = c.get("/api/v1/billing/status", headers=second).json()
    token = c.post("/api/v1/enrollment-tokens", json={"max_uses": 0}, headers=second).json()
    r = c.post("/api/v1/enroll", json={"enrollment_token": token["token"]})
    assert status["state"] != "trial" or r.status_code != 200, (status, r.text)


def test_invitation_mail_to_arbitrary_addresses_is_rate_limited(
    open_client: TestClient[Any], alice: Headers
) -> None:
    """LOW-MEDIUM (mail abuse). Any account (signup open) creates an organization and,
    as its owner, has the server mail any address it likes, with an organization name it
    chooses (128 characters, e.g. a phishing line) in the subject and body, without any
    limit: the server becomes a spam/phishing relay and its SMTP reputation pays for it.
    Forgot-password is limited per client (3/hour); invitations are not."""
    c = open_client
    org_id, owner = new_org(c, alice, "Your account is locked: visit evil.example to unlock")
    codes = [
        c.post(f"/api/v1/orgs/{org_id}/invitations",
               json={"email": f"victim{i}@example.net", "role": "viewer"},
               headers=owner).status_code  # fmt: skip
        for i in range(60)
    ]
    assert 429 in codes, codes


def test_an_api_key_does_not_read_its_makers_account_trail(
    open_client: TestClient[Any], alice: Headers
) -> None:
    """LOW (information). GET /api/v1/audit answers the organization's trail plus the
    caller's own account actions (org_id NULL: logins with client addresses, password and
    MFA changes). With an admin API key the "caller" is the key's maker, so whoever holds
    a CI key learns where and when its maker signs in. A key is not the person."""
    c = open_client
    _, owner = new_org(c, alice)
    key = make_key(c, owner, "admin", name="ci")
    r = c.get("/api/v1/audit?limit=500", headers=bearer(key["key"]))
    assert r.status_code == 200, r.text
    account = [i["action"] for i in r.json()["items"] if i["org_id"] is None]
    assert account == [], account


def test_closed_signup_is_not_reopened_by_any_users_invitation(client: TestClient[Any]) -> None:
    """LOW-MEDIUM (policy; the lead decides). With auth.signup off, only the server admin
    makes accounts. But every account owns its personal organization, so any ordinary
    user can invite addresses of their choosing and each link registers a new account
    (with its own organization and trial): closed signup is open to anyone with one
    account. Invitations could open registration only when the inviter is a server
    admin (or the operator turns it on)."""
    c = client
    register(c, "admin")  # the first account: the server admin
    r = c.post("/api/v1/admin/users", json={"username": "mallory", "password": PASSWORD},
               headers=login(c, "admin"))  # fmt: skip
    assert r.status_code == 201, r.text
    mallory = login(c, "mallory")
    org_id, owner = new_org(c, mallory, "Sock puppets")
    token = invite(c, owner, org_id, "sock1@example.org", "viewer")
    r = c.post("/auth/register",
               json={"username": "sock1", "password": PASSWORD, "invitation": token})  # fmt: skip
    assert r.status_code in (400, 403), r.text


def test_an_admin_lists_and_cancels_a_pending_invitation(
    open_client: TestClient[Any], alice: Headers
) -> None:
    """The fix for hole 1: a cancelled invitation's link no longer opens; cancelling twice,
    or another organization's invitation, is 404."""
    c = open_client
    org_id, owner = new_org(c, alice)
    token = invite(c, owner, org_id, "carol@example.org", "member")
    [inv] = c.get(f"/api/v1/orgs/{org_id}/invitations", headers=owner).json()["items"]
    url = f"/api/v1/orgs/{org_id}/invitations/{inv['id']}"
    assert c.delete(url, headers=owner).status_code == 204
    assert c.delete(url, headers=owner).status_code == 404
    register(c, "carol", email="carol@example.org")
    r = c.post("/api/v1/invitations/accept", json={"token": token}, headers=login(c, "carol"))
    assert r.status_code == 400, r.text
    other_id, _ = new_org(c, login(c, "carol"), "Other")
    assert c.delete(f"/api/v1/orgs/{other_id}/invitations/{inv['id']}",
                    headers=owner).status_code == 404  # fmt: skip
