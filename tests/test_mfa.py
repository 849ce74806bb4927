from __future__ import annotations

from typing import Any

import pyotp
from litestar.testing import TestClient

from kefal_lite.clock import FrozenClock
from kefal_lite.config import Settings
from tests.conftest import PASSWORD, login, query, register


def _code(secret: str, clock: FrozenClock) -> str:
    return str(pyotp.TOTP(secret).at(clock.now()))


def _login(client: TestClient[Any], otp: str | None = None) -> Any:
    body = {"username": "alice", "password": PASSWORD}
    if otp is not None:
        body["otp"] = otp
    return client.post("/auth/login", json=body)


def test_totp_mfa_lifecycle(
    client: TestClient[Any], settings: Settings, clock: FrozenClock
) -> None:
    register(client, "alice")
    headers = login(client, "alice")
    r = client.post("/api/v1/auth/mfa/enable", headers=headers, json={"otp": "123456"})
    assert r.status_code == 409  # setup first

    setup = client.post("/api/v1/auth/mfa/setup", headers=headers).json()
    secret = setup["secret"]
    assert setup["otpauth_uri"].startswith("otpauth://totp/kefal-lite:alice?")
    # the seed is sealed in the database: a dump alone does not reveal it
    dump = "".join(str(v) for row in query(settings, "SELECT * FROM users") for v in row)
    assert secret not in dump

    assert (
        client.post("/api/v1/auth/mfa/enable", headers=headers, json={"otp": "000000"}).status_code
        == 400
    )
    assert client.get("/api/v1/auth/me", headers=headers).json()["mfa_enabled"] is False
    r = client.post("/api/v1/auth/mfa/enable", headers=headers, json={"otp": _code(secret, clock)})
    assert r.status_code == 200
    assert client.get("/api/v1/auth/me", headers=headers).json()["mfa_enabled"] is True
    assert client.post("/api/v1/auth/mfa/setup", headers=headers).status_code == 409

    r = _login(client)
    assert r.status_code == 401 and r.json() == {"detail": "otp required"}
    assert _login(client, "111111").json() == {"detail": "otp required"}
    # the code used to enable is spent; the next time step's code logs in, once
    clock.advance(seconds=30)
    code = _code(secret, clock)
    assert _login(client, code).status_code == 200
    assert _login(client, code).status_code == 401  # replay of the same code

    # minting an agent token takes the second factor too (test_limits has the details)
    r = client.post("/api/v1/enroll", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 401 and r.json() == {"detail": "otp required"}

    clock.advance(seconds=30)
    r = client.post("/api/v1/auth/mfa/disable", headers=headers, json={"otp": "000000"})
    assert r.status_code == 400
    r = client.post("/api/v1/auth/mfa/disable", headers=headers, json={"otp": _code(secret, clock)})
    assert r.status_code == 200
    assert _login(client).status_code == 200
    assert (
        client.post("/api/v1/auth/mfa/disable", headers=headers, json={"otp": "123456"}).status_code
        == 409
    )
