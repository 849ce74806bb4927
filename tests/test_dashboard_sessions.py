"""The dashboard's Sessions page and MFA recovery codes, in Debian's Chromium against a real
`kefal-lite serve`: "this device" marked, another device revoked (it is logged out at once),
recovery codes shown once after enabling MFA, used at login, regenerated; log out
everywhere. Screenshots go to artifacts/screenshots/ (not committed)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, serving
from tests.helpers.browser import shoot

pytest.importorskip("playwright")
import pyotp  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402

PHONE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
            " (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")  # fmt: skip


@pytest.fixture
def site(tmp_path: Any) -> Iterator[str]:
    with serving(tmp_path / "data") as (url, _):
        r = httpx.post(f"{url}/auth/register", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 201, r.text
        yield url


def _browser_login(browser: Browser, url: str, user_agent: str | None = None,
                   otp: str | None = None) -> tuple[Any, Page, list[str]]:  # fmt: skip
    context = browser.new_context(viewport={"width": 1280, "height": 800}, user_agent=user_agent)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url + "/#/login")
    page.locator("#login input[name=username]").fill("alice")
    page.locator("#login input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    if otp is not None:
        expect(page.locator("#login input[name=otp]")).to_be_focused()  # asked for the code
        page.locator("#login input[name=otp]").fill(otp)
        page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return context, page, errors


def _token(page: Page) -> str:
    token: str = page.evaluate("sessionStorage.getItem('kefal.session')")
    return token


def _me(url: str, token: str) -> int:
    return httpx.get(
        f"{url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
    ).status_code


def test_sessions_page_marks_this_device_and_revokes_another(browser: Browser, site: str) -> None:
    url = site
    ctx_a, a, errors_a = _browser_login(browser, url)
    ctx_b, b, errors_b = _browser_login(browser, url, PHONE_UA)
    a.goto(url + "/#/sessions")
    expect(a.get_by_role("heading", name="Sessions")).to_be_visible()
    rows = a.locator("tbody tr")
    expect(rows).to_have_count(2)
    mine = rows.filter(has_text="this device")
    expect(mine).to_have_count(1)
    expect(mine.get_by_role("button", name="Log out of this device")).to_be_visible()
    phone = rows.filter(has_text="Safari on iOS")
    expect(phone).to_have_count(1)
    expect(phone).to_contain_text("127.0.0.1")
    shoot(a, "sessions")
    phone.get_by_role("button", name="Revoke").click()
    expect(rows).to_have_count(1)
    # the phone is logged out at once: its next request is refused and it shows the login
    assert _me(url, _token(b)) == 401
    b.goto(url + "/#/incidents")
    expect(b.get_by_role("heading", name="Log in")).to_be_visible()
    # this device's own "Log out" ends its session on the server too
    token_a = _token(a)
    mine.get_by_role("button", name="Log out of this device").click()
    expect(a.get_by_role("heading", name="Log in")).to_be_visible()
    assert _me(url, token_a) == 401
    assert errors_a == [], errors_a
    assert all("401" in e for e in errors_b), errors_b
    ctx_a.close()
    ctx_b.close()


def _otp(secret: str, step: int = 0) -> str:
    return str(pyotp.TOTP(secret).at(time.time() + 30 * step))


def test_recovery_codes_shown_once_used_at_login_and_renewed(browser: Browser, site: str) -> None:
    url = site
    ctx, page, errors = _browser_login(browser, url)
    page.goto(url + "/#/settings")
    mfa = page.locator("section.card", has_text="Two-factor authentication")
    mfa.get_by_role("button", name="Set up MFA").click()
    secret = mfa.locator("dd").first.inner_text()
    mfa.get_by_role("textbox", name="Code").fill(_otp(secret))
    mfa.get_by_role("button", name="Enable").click()
    codes = mfa.get_by_role("list", name="Recovery codes").locator("li")
    expect(codes).to_have_count(10)
    expect(mfa).to_contain_text("not shown again")
    expect(mfa).to_contain_text("10 of 10 recovery codes left")
    mfa.scroll_into_view_if_needed()
    shoot(page, "recovery-codes")
    first, second = codes.nth(0).inner_text(), codes.nth(1).inner_text()
    # shown once: the page after a reload says how many are left, not what they are
    page.reload()
    expect(mfa).to_contain_text("10 of 10 recovery codes left")
    expect(mfa.get_by_role("list", name="Recovery codes")).to_have_count(0)
    ctx.close()

    # a lost phone: a recovery code logs in in place of the app's code
    ctx, page, errors2 = _browser_login(browser, url, otp=first)
    expect(page.locator("#toast")).to_contain_text("Recovery code used: 9 left")
    page.goto(url + "/#/settings")
    mfa = page.locator("section.card", has_text="Two-factor authentication")
    expect(mfa).to_contain_text("9 of 10 recovery codes left")
    regen = mfa.get_by_role("form", name="New recovery codes")
    regen.get_by_role("textbox", name="Your password").fill(PASSWORD)
    regen.get_by_role("textbox", name="Code from your app").fill(_otp(secret, 1))
    regen.get_by_role("button", name="New recovery codes").click()
    expect(mfa.get_by_role("list", name="Recovery codes").locator("li")).to_have_count(10)
    expect(mfa).to_contain_text("10 of 10 recovery codes left")
    new_first = mfa.get_by_role("list", name="Recovery codes").locator("li").first.inner_text()
    assert new_first not in (first, second)
    r = httpx.post(f"{url}/auth/login", json={"username": "alice", "password": PASSWORD,
                                              "otp": second})  # fmt: skip
    assert r.status_code == 401  # the old codes are void

    # "Log out everywhere" from the Sessions page ends every session, here and elsewhere
    other = httpx.post(f"{url}/auth/login", json={"username": "alice", "password": PASSWORD,
                                                  "otp": new_first}).json()["access_token"]  # fmt: skip
    assert _me(url, other) == 200
    page.goto(url + "/#/sessions")
    # the first browser was closed without logging out: its session is still live
    expect(page.locator("tbody tr")).to_have_count(3)
    page.get_by_role("button", name="Log out everywhere").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert _me(url, other) == 401
    # the login's first answer, "otp required", is a 401 the browser logs
    assert errors == [] and all("401" in e for e in errors2), (errors, errors2)
    ctx.close()


def test_delete_account_from_settings_and_come_back(browser: Browser, site: str) -> None:
    url = site
    ctx, page, errors = _browser_login(browser, url)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.goto(url + "/#/settings")
    danger = page.get_by_role("form", name="Delete account")
    danger.get_by_label("Your password").fill("not the password")
    danger.get_by_role("button", name="Delete my account").click()
    expect(page.locator("#toast")).to_contain_text("the password is wrong")
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()  # still logged in
    danger.get_by_label("Your password").fill(PASSWORD)
    danger.scroll_into_view_if_needed()
    shoot(page, "delete-account")
    token = _token(page)
    danger.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator("#toast")).to_contain_text("unless you log in before")
    assert len(dialogs) == 2 and "Delete your account?" in dialogs[0]
    assert _me(url, token) == 401
    ctx.close()
    # logging in within 30 days brings the account back
    ctx, page, errors2 = _browser_login(browser, url)
    # the wrong password's 400 is the only thing the browser logged
    assert all("400" in e for e in errors) and errors2 == [], (errors, errors2)
    ctx.close()
