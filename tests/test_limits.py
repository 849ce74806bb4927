"""Credential checks under attack: MFA on enroll, and limits that hold under concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pyotp
from litestar.testing import TestClient

from kefal_lite.clock import FrozenClock
from tests.conftest import PASSWORD, live_app, login, make_settings, register

WRONG = "wrong password!"


def _enable_mfa(client: TestClient[Any], headers: dict[str, str], clock: FrozenClock) -> str:
    secret: str = client.post("/api/v1/auth/mfa/setup", headers=headers).json()["secret"]
    code = pyotp.TOTP(secret).at(clock.now())
    assert client.post("/api/v1/auth/mfa/enable", headers=headers, json={"otp": code}).is_success
    clock.advance(seconds=30)  # the enabling code is spent
    return secret


def test_enroll_with_mfa_on_requires_the_otp_like_login(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    register(client, "alice")
    headers = login(client, "alice")
    secret = _enable_mfa(client, headers, clock)

    def enroll(**extra: str) -> httpx.Response:
        body = {"username": "alice", "password": PASSWORD, **extra}
        return client.post("/api/v1/enroll", json=body)

    for r in (enroll(), enroll(otp="000000")):
        assert r.status_code == 401 and r.json() == {"detail": "otp required"}
        assert r.headers["www-authenticate"] == "Bearer"
    # a wrong password and an unknown user answer exactly as login does
    for body in (
        {"username": "alice", "password": WRONG},
        {"username": "nobody", "password": WRONG},
    ):
        assert client.post("/api/v1/enroll", json=body).json() == client.post(
            "/auth/login", json=body
        ).json() == {"detail": "invalid username or password"}  # fmt: skip
    code = pyotp.TOTP(secret).at(clock.now())
    r = enroll(otp=code)
    assert r.status_code == 200 and r.json()["token"].startswith("kfa_")
    # the code is spent: replaying it mints nothing
    assert enroll(otp=code).json() == {"detail": "otp required"}


async def _burst(
    url: str, path: str, bodies: list[dict[str, Any]], **kw: Any
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        return await asyncio.gather(*(c.post(path, json=b, **kw) for b in bodies))


def _statuses(responses: list[httpx.Response]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in responses:
        out[r.status_code] = out.get(r.status_code, 0) + 1
    return out


def test_forty_parallel_wrong_passwords_get_only_the_limit_verified(tmp_path: Path) -> None:
    """Before: the limit was read before argon2 and counted after, so all 40 were verified."""
    settings = make_settings(tmp_path / "data", auth_signup=True)
    with live_app(settings) as (url, app):
        accounts = app.state.kefal.accounts
        for name in ("alice", "bob"):
            r = httpx.post(f"{url}/auth/register", json={"username": name, "password": PASSWORD})
            assert r.status_code == 201
        # login and enroll share one budget per (client, username): one user each
        for path, name in (("/auth/login", "alice"), ("/api/v1/enroll", "bob")):
            before = accounts.password_checks
            bodies = [{"username": name, "password": f"{WRONG}{i}"} for i in range(40)]
            responses = asyncio.run(_burst(url, path, bodies))
            assert accounts.password_checks - before == 5, path
            assert _statuses(responses) == {401: 5, 429: 35}, path
            for r in responses:
                if r.status_code == 429:
                    assert 1 <= int(r.headers["retry-after"]) <= 30
                    assert r.json() == {"detail": "too many failed attempts; try again later"}


def test_parallel_otp_guesses_at_login_get_only_the_limit_checked(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    with live_app(settings) as (url, app):
        accounts = app.state.kefal.accounts
        httpx.post(f"{url}/auth/register", json={"username": "alice", "password": PASSWORD})
        token = httpx.post(f"{url}/auth/login",
                           json={"username": "alice", "password": PASSWORD}).json()["access_token"]  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        secret = httpx.post(f"{url}/api/v1/auth/mfa/setup", headers=headers).json()["secret"]
        r = httpx.post(f"{url}/api/v1/auth/mfa/enable", headers=headers,
                       json={"otp": pyotp.TOTP(secret).now()})  # fmt: skip
        assert r.status_code == 200
        before = accounts.password_checks
        # the password is right; only the six digits are guessed
        bodies = [{"username": "alice", "password": PASSWORD, "otp": f"{i:06d}"} for i in range(40)]
        responses = asyncio.run(_burst(url, "/auth/login", bodies))
        assert accounts.password_checks - before == 5
        assert _statuses(responses) == {401: 5, 429: 35}


def test_parallel_correct_logins_are_never_refused(tmp_path: Path) -> None:
    """Slots held by checks still running make others wait, never fail: a fleet roll-out
    behind one NAT address enrolls in parallel."""
    settings = make_settings(tmp_path / "data")
    with live_app(settings) as (url, app):
        httpx.post(f"{url}/auth/register", json={"username": "alice", "password": PASSWORD})
        bodies = [{"username": "alice", "password": PASSWORD} for _ in range(20)]
        assert _statuses(asyncio.run(_burst(url, "/api/v1/enroll", bodies))) == {200: 20}
        assert _statuses(asyncio.run(_burst(url, "/auth/login", bodies))) == {200: 20}


def test_mfa_disable_and_password_checks_behind_a_session_are_limited(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    """Before: /mfa/disable had no limit, so a stolen session could walk all 10^6 codes."""
    register(client, "alice", email="alice@example.org")
    headers = login(client, "alice")
    secret = _enable_mfa(client, headers, clock)
    for i in range(5):
        r = client.post("/api/v1/auth/mfa/disable", headers=headers, json={"otp": f"{i:06d}"})
        assert r.status_code == 400
    good = pyotp.TOTP(secret).at(clock.now())
    r = client.post("/api/v1/auth/mfa/disable", headers=headers, json={"otp": good})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert client.get("/api/v1/auth/me", headers=headers).json()["mfa_enabled"] is True
    # the same budget covers password checks behind the session
    r = client.post("/api/v1/auth/update-email", headers=headers,
                    json={"email": "x@example.org", "password": PASSWORD})  # fmt: skip
    assert r.status_code == 429
    clock.advance(seconds=31)
    for _ in range(5):
        r = client.post("/api/v1/auth/change-password", headers=headers,
                        json={"current_password": WRONG, "new_password": "another password"})  # fmt: skip
        assert r.status_code == 401
    r = client.post("/api/v1/auth/change-password", headers=headers,
                    json={"current_password": PASSWORD, "new_password": "another password"})  # fmt: skip
    assert r.status_code == 429
    clock.advance(seconds=31)
    good = pyotp.TOTP(secret).at(clock.now())
    r = client.post("/api/v1/auth/mfa/disable", headers=headers, json={"otp": good})
    assert r.status_code == 200


def test_otp_guesses_from_many_addresses_share_one_budget_per_account(tmp_path: Path) -> None:
    """Review: with the password known, the six digits were limited per (client, username)
    only, so every new address (an IPv6 host has 2^64 of them) got five more guesses."""
    settings = make_settings(tmp_path / "data")
    with live_app(settings) as (url, _):
        httpx.post(f"{url}/auth/register", json={"username": "alice", "password": PASSWORD})
        token = httpx.post(f"{url}/auth/login",
                           json={"username": "alice", "password": PASSWORD}).json()["access_token"]  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        secret = httpx.post(f"{url}/api/v1/auth/mfa/setup", headers=headers).json()["secret"]
        r = httpx.post(f"{url}/api/v1/auth/mfa/enable", headers=headers,
                       json={"otp": pyotp.TOTP(secret).now()})  # fmt: skip
        assert r.status_code == 200
        statuses = []
        for i in range(12):
            path = "/auth/login" if i % 2 else "/api/v1/enroll"
            body = {"username": "alice", "password": PASSWORD, "otp": f"{i:06d}"}
            # the test connects from 127.0.0.1, a trusted proxy: each guess from a new address
            forwarded = {"X-Forwarded-For": f"2001:db8:{i}::{i + 1}"}
            statuses.append(httpx.post(f"{url}{path}", json=body, headers=forwarded).status_code)
        assert statuses == [401] * 5 + [429] * 7
        # asking without a code is no guess and spends nothing, so it still says "otp required"
        r = httpx.post(f"{url}/auth/login", json={"username": "alice", "password": PASSWORD},
                       headers={"X-Forwarded-For": "2001:db8:ff::1"})  # fmt: skip
        assert r.status_code == 401 and r.json() == {"detail": "otp required"}


def test_wrong_passwords_from_one_ipv6_network_share_one_budget(tmp_path: Path) -> None:
    """Review: a host owns a whole /64 (2^64 addresses); keyed by the full address, each
    new one got five more password guesses, and five more reset mails an hour."""
    settings = make_settings(tmp_path / "data", auth_signup=True)
    with live_app(settings) as (url, app):
        accounts = app.state.kefal.accounts
        httpx.post(f"{url}/auth/register", json={"username": "alice", "password": PASSWORD})
        before = accounts.password_checks
        statuses = []
        for i in range(12):
            forwarded = {"X-Forwarded-For": f"2001:db8:1:2::{i + 1:x}"}
            body = {"username": "alice", "password": f"{WRONG}{i}"}
            statuses.append(httpx.post(f"{url}/auth/login", json=body,
                                       headers=forwarded).status_code)  # fmt: skip
        assert statuses == [401] * 5 + [429] * 7
        assert accounts.password_checks - before == 5
        # another network is another client
        r = httpx.post(f"{url}/auth/login", json={"username": "alice", "password": WRONG},
                       headers={"X-Forwarded-For": "2001:db8:1:3::1"})  # fmt: skip
        assert r.status_code == 401
        resets = [httpx.post(f"{url}/api/v1/auth/forgot-password", json={"email": "a@example.org"},
                             headers={"X-Forwarded-For": f"2001:db8:9:9::{i + 1:x}"}).status_code
                  for i in range(5)]  # fmt: skip
        assert resets[3:] == [429, 429]
