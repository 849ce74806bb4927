"""Organizations in tests: make one, invite and join, switch, make API keys."""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import TestClient

from tests.conftest import login, query, register

Headers = dict[str, str]


def bearer(token: str) -> Headers:
    return {"Authorization": f"Bearer {token}"}


def invitation_token(c: TestClient[Any], email: str) -> str:
    [(body,)] = query(c.app.state.settings,
                      "SELECT body FROM outbox WHERE recipient = ? ORDER BY id DESC LIMIT 1",
                      email)  # fmt: skip
    found = re.search(r"#/invite\?token=([\w-]+)", body)
    assert found, body
    return found.group(1)


def new_org(c: TestClient[Any], owner: Headers, name: str = "Acme") -> tuple[str, Headers]:
    """An organization made by `owner`, and the owner's session switched into it."""
    r = c.post("/api/v1/orgs", json={"name": name}, headers=owner)
    assert r.status_code == 201, r.text
    org_id = r.json()["id"]
    return org_id, switch(c, owner, org_id)


def switch(c: TestClient[Any], session: Headers, org_id: str) -> Headers:
    r = c.post(f"/api/v1/orgs/{org_id}/switch", headers=session)
    assert r.status_code == 200, r.text
    assert r.json()["org_id"] == org_id
    return bearer(r.json()["access_token"])


def invite(c: TestClient[Any], by: Headers, org_id: str, email: str, role: str) -> str:
    r = c.post(f"/api/v1/orgs/{org_id}/invitations", json={"email": email, "role": role},
               headers=by)  # fmt: skip
    assert r.status_code == 201, r.text
    assert "token" not in r.json()
    return invitation_token(c, email)


def join(c: TestClient[Any], owner: Headers, org_id: str, name: str, role: str) -> Headers:
    """A new account `name` that accepted an invitation to `org_id` as `role`, switched in."""
    register(c, name, email=f"{name}@example.org")
    session = login(c, name)
    token = invite(c, owner, org_id, f"{name}@example.org", role)
    r = c.post("/api/v1/invitations/accept", json={"token": token}, headers=session)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == org_id and r.json()["role"] == role
    return switch(c, session, org_id)


def make_key(c: TestClient[Any], session: Headers, role: str, name: str = "ci") -> Any:
    r = c.post("/api/v1/api-keys", json={"name": name, "role": role}, headers=session)
    assert r.status_code == 201, r.text
    return r.json()
