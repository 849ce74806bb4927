from __future__ import annotations

from typing import Any

import pyotp
from click.testing import CliRunner
from litestar.testing import TestClient

from kefal_lite.cli import main
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


def _enable(client: TestClient[Any], clock: FrozenClock) -> tuple[dict[str, str], str, list[str]]:
    register(client, "alice")
    headers = login(client, "alice")
    secret = client.post("/api/v1/auth/mfa/setup", headers=headers).json()["secret"]
    r = client.post("/api/v1/auth/mfa/enable", headers=headers, json={"otp": _code(secret, clock)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mfa_enabled"] is True
    codes: list[str] = body["recovery_codes"]
    return headers, secret, codes


def test_recovery_codes_log_in_once_each_in_place_of_the_otp(
    client: TestClient[Any], settings: Settings, clock: FrozenClock
) -> None:
    headers, _, codes = _enable(client, clock)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(len(c) == 19 and c.count("-") == 3 for c in codes)
    # stored hashed: neither the codes nor their undashed form are in the database
    dump = "".join(str(v) for row in query(settings, "SELECT * FROM recovery_codes") for v in row)
    assert not any(c in dump or c.replace("-", "") in dump for c in codes)
    remaining = client.get("/api/v1/auth/mfa/recovery-codes", headers=headers)
    assert remaining.json() == {"remaining": 10}

    r = _login(client, codes[0])
    assert r.status_code == 200, r.text
    assert r.json()["recovery_codes_remaining"] == 9
    assert _login(client, codes[0]).json() == {"detail": "otp required"}  # spent
    # typed the way people type: lower case, spaces for dashes
    r = _login(client, codes[1].lower().replace("-", " "))
    assert r.status_code == 200 and r.json()["recovery_codes_remaining"] == 8
    assert _login(client, "AAAA-BBBB-CCCC-DDDD").json() == {"detail": "otp required"}
    assert client.get("/api/v1/auth/mfa/recovery-codes", headers=headers).json() == {
        "remaining": 8
    }
    # a login with an OTP says nothing about codes
    clock.advance(seconds=30)
    assert "recovery_codes_remaining" not in _login(client, _totp_now(client, clock)).json()
    details = [r[0] for r in query(settings, "SELECT detail FROM audit WHERE action ="
                                   " 'mfa_recovery_code_used' ORDER BY id")]  # fmt: skip
    assert details == ['{"remaining":9}', '{"remaining":8}']
    # a recovery code is for logging in, not for minting agent tokens
    r = client.post("/api/v1/enroll", json={"username": "alice", "password": PASSWORD,
                                            "otp": codes[2].replace("-", "")})  # fmt: skip
    assert r.status_code == 401
    assert client.get("/api/v1/auth/mfa/recovery-codes", headers=headers).json() == {
        "remaining": 8
    }


def _totp_now(client: TestClient[Any], clock: FrozenClock) -> str:
    [(sealed, user_id)] = query(client.app.state.kefal.settings,
                                "SELECT mfa_secret, id FROM users")  # fmt: skip
    secret = client.app.state.kefal.accounts._box.open(sealed, user_id)
    return _code(secret, clock)


def test_wrong_recovery_codes_are_limited_like_otps(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    _, _, codes = _enable(client, clock)
    for i in range(5):
        assert _login(client, f"AAAA-BBBB-CCCC-DDD{'234567'[i]}").status_code == 401
    r = _login(client, codes[0])
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    clock.advance(seconds=31)
    assert _login(client, codes[0]).status_code == 200


def test_regenerating_recovery_codes_takes_password_and_otp(
    client: TestClient[Any], settings: Settings, clock: FrozenClock
) -> None:
    headers, secret, old = _enable(client, clock)
    clock.advance(seconds=30)
    url = "/api/v1/auth/mfa/recovery-codes"
    r = client.post(url, headers=headers, json={"password": "wrong password!", "otp": "123456"})
    assert r.status_code == 400 and r.json() == {"detail": "the password is wrong"}
    r = client.post(url, headers=headers, json={"password": PASSWORD, "otp": "000000"})
    assert r.status_code == 400 and r.json() == {"detail": "the code does not match"}
    r = client.post(url, headers=headers, json={"password": PASSWORD, "otp": _code(secret, clock)})
    assert r.status_code == 200, r.text
    new = r.json()["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    assert _login(client, old[0]).json() == {"detail": "otp required"}  # the old ones are void
    assert _login(client, new[0]).status_code == 200
    assert [r[0] for r in query(settings, "SELECT action FROM audit WHERE action LIKE"
                                " 'mfa_recovery%' ORDER BY id")] == [
        "mfa_recovery_codes_regenerated", "mfa_recovery_code_used"]  # fmt: skip
    # disabling MFA deletes the codes
    clock.advance(seconds=30)
    r = client.post("/api/v1/auth/mfa/disable", headers=headers, json={"otp": _code(secret, clock)})
    assert r.status_code == 200
    assert query(settings, "SELECT COUNT(*) FROM recovery_codes") == [(0,)]
    r = client.post(url, headers=headers, json={"password": PASSWORD, "otp": "123456"})
    assert r.status_code == 409


def test_reset_mfa_cli_turns_mfa_off_deletes_codes_and_ends_sessions(
    client: TestClient[Any], settings: Settings, clock: FrozenClock
) -> None:
    headers, _, codes = _enable(client, clock)
    result = CliRunner().invoke(main, ["--data-dir", str(settings.data_path), "user",
                                       "reset-mfa", "alice"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "MFA of alice is off" in result.output
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
    assert query(settings, "SELECT COUNT(*) FROM recovery_codes") == [(0,)]
    assert query(settings, "SELECT mfa_enabled, mfa_secret FROM users") == [(0, None)]
    r = _login(client)
    assert r.status_code == 200  # password alone now
    assert _login(client, codes[0]).status_code == 200  # an otp is ignored with MFA off
    [row] = query(settings, "SELECT actor, action, target FROM audit WHERE action LIKE 'cli_%'")
    assert row == ("cli", "cli_mfa_reset", "alice")
    result = CliRunner().invoke(main, ["--data-dir", str(settings.data_path), "user",
                                       "reset-mfa", "nobody"])  # fmt: skip
    assert result.exit_code != 0 and "no user named 'nobody'" in result.output
