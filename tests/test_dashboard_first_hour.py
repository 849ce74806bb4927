"""The dashboard's first hour (issue 18), in Debian's Chromium against a real `kefal-lite serve`:
incidents open by default with relative times, the host page's process groups, filter, kernel
threads and pages, the graph's legend and labels, empty charts, and both ways to log out.
Screenshots go to artifacts/screenshots/ (not committed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, serving
from tests.helpers.browser import EVIL, enroll, ingest, shoot

pytest.importorskip("playwright")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
EXPOSED_PG = [{"port": 5432, "process": "postgres", "address": "0.0.0.0", "pid": 900}]
KTHREADS = 60
DAEMONS = 70


def _processes() -> list[dict[str, Any]]:
    kernel = [{"pid": 100 + i, "name": f"kworker/{i}:0-events", "user": "root", "ppid": 2}
              for i in range(KTHREADS)]  # fmt: skip
    daemons = [{"pid": 2000 + i, "name": f"daemon{i:02d}", "user": "svc", "ppid": 1,
                "exe": f"/usr/sbin/daemon{i:02d}", "cmdline": f"/usr/sbin/daemon{i:02d} --serve"}
               for i in range(DAEMONS)]  # fmt: skip
    return [
        *kernel,
        *daemons,
        {"pid": 900, "name": "postgres", "user": "postgres", "ppid": 1,
         "exe": "/usr/lib/postgresql/16/bin/postgres", "cmdline": "postgres -D /var/lib/pg"},
        {"pid": 3000, "name": "bash", "user": "alice", "ppid": 2500, "cmdline": f"bash -c '{EVIL}'"},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("data")) as (url, _):
        r = httpx.post(f"{url}/auth/register", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 201, r.text
        yield url


def _login(browser: Browser, url: str) -> tuple[Any, Page, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda d: (errors.append("dialog: " + d.message), d.accept()))
    page.goto(url + "/#/login")
    page.locator("#login input[name=username]").fill("alice")
    page.locator("#login input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return context, page, errors


def _times_have_iso_titles(page: Page) -> int:
    """Every <time> on the page shows a relative time and carries the exact one on hover."""
    times = page.locator("time")
    n = times.count()
    for i in range(n):
        t = times.nth(i)
        title = t.get_attribute("title") or ""
        assert ISO.match(title) and t.get_attribute("datetime") == title, title
        assert re.fullmatch(r"just now|\d+ (min|h|d|mo|y) ago|in \d+ \w+", t.inner_text()), (
            t.inner_text()
        )
    return n


def test_first_hour_pages(browser: Browser, site: str) -> None:
    url = site
    context, page, errors = _login(browser, url)

    # empty charts on a server with no snapshots yet say so, no made-up scale
    page.goto(url + "/#/admin")
    expect(page.get_by_role("heading", name="Admin")).to_be_visible()
    charts = page.locator("figure.chart")
    expect(charts).to_have_count(4)
    expect(charts.filter(has_text="Snapshots")).to_contain_text("no data yet")
    expect(page.locator("main")).not_to_contain_text("(max")
    shoot(page, "fh-admin-empty")

    web = enroll(url, "alice", "web")
    db = enroll(url, "alice", "db")
    ingest(url, web, 0, hostname="web-01", add_ports=EXPOSED_PG, add_processes=_processes())
    ingest(url, db, 0, hostname="db-01", add_ports=EXPOSED_PG)
    ingest(url, db, 1, hostname="db-01")  # db-01's database exposure resolves by itself

    # incidents: what needs attention by default, the filter sent explicitly; "any status"
    # shows the rest
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/v1/incidents?" in r.url else None)
    page.goto(url + "/#/incidents")
    expect(page.get_by_label("Status")).to_have_value("active")
    rows = page.locator(".split tbody tr")
    expect(rows.first).to_contain_text("web-01")
    expect(page.locator(".split tbody")).not_to_contain_text("db-01")
    assert any("status=active" in r for r in requests), requests
    assert _times_have_iso_titles(page) >= 1
    rows.filter(has_text="Database exposed").first.click()
    detail = page.locator(".detail")
    expect(detail.locator("dt", has_text="first_seen")).to_be_visible()
    expect(detail.locator("dt", has_text="resolved_by")).to_have_count(0)  # not resolved
    expect(detail.locator("time").first).to_be_visible()
    until = detail.get_by_label("Dismiss until")
    expect(until).to_be_visible()
    assert until.get_attribute("type") == "datetime-local"
    _times_have_iso_titles(page)  # list, detail, history
    shoot(page, "fh-incident-open")

    page.get_by_label("Status").select_option("all")
    expect(page).to_have_url(re.compile(r"status=all"))
    resolved = page.locator(".split tbody tr", has_text="db-01")
    expect(resolved).to_have_count(1)
    assert "status=all" in requests[-1]
    resolved.click()
    expect(detail.locator("dt", has_text="resolved_by")).to_be_visible()
    expect(detail.locator("dt", has_text="resolved_by").locator("+ dd")).to_have_text("auto")
    shoot(page, "fh-incident-resolved")

    # host page: services by default, kernel threads hidden, filter, pages
    page.goto(url + "/#/hosts")
    _times_have_iso_titles(page)
    page.get_by_role("link", name="web-01").click()
    procs = page.locator("#processes")
    services = procs.get_by_role("tab", name=re.compile(r"^Services"))
    expect(services).to_have_attribute("aria-selected", "true")
    # systemd's children: sshd, cron, nginx, postgres and the 70 daemons
    expect(services).to_have_text(f"Services ({DAEMONS + 4})")
    expect(procs.get_by_role("tab", name=re.compile(r"^Listening"))).to_have_text("Listening (3)")
    expect(procs).to_contain_text(f"1–50 of {DAEMONS + 4}")
    expect(procs.locator("tbody")).not_to_contain_text("kworker")
    expect(procs.locator("label.check")).to_be_hidden()  # the toggle belongs to Everything
    _times_have_iso_titles(page)
    procs.scroll_into_view_if_needed()
    shoot(page, "fh-host-services")
    procs.get_by_role("button", name="Next →").click()
    expect(procs).to_contain_text(f"51–{DAEMONS + 4} of {DAEMONS + 4}")
    procs.get_by_role("tab", name=re.compile(r"^Listening")).click()
    expect(procs.locator("tbody tr")).to_have_count(3)  # sshd, nginx, postgres (by pid)
    expect(procs.locator("tr", has_text="postgres")).to_contain_text("5432/tcp")

    everything = procs.get_by_role("tab", name=re.compile(r"^Everything"))
    everything.click()
    # systemd, sshd, cron, nginx, the daemons, postgres, bash: kthreadd and its children hidden
    user_space = 4 + DAEMONS + 2
    expect(everything).to_have_text(f"Everything ({user_space})")
    expect(procs.locator("tbody")).not_to_contain_text("kworker")
    toggle = procs.get_by_label(re.compile(r"show kernel threads"))
    expect(toggle).not_to_be_checked()
    expect(procs).to_contain_text(f"show kernel threads ({KTHREADS + 2})")  # + kthreadd, kworker
    toggle.check()
    expect(everything).to_have_text(f"Everything ({user_space + KTHREADS + 2})")
    flt = procs.get_by_label("Filter processes")
    flt.fill("kworker/5:")
    expect(procs.locator("tbody tr")).to_have_count(1)
    toggle.uncheck()
    expect(procs.locator("tbody")).to_contain_text("No process matches the filter.")
    # the filter covers user and command line too; a hostile command line stays text
    flt.fill("alice")
    expect(procs.locator("tbody tr")).to_have_count(1)
    expect(procs.locator("tbody code")).to_have_text(f"bash -c '{EVIL}'")
    assert procs.locator("tbody img").count() == 0
    flt.fill("--serve")
    expect(procs).to_contain_text(f"1–50 of {DAEMONS}")
    shoot(page, "fh-host-filtered")
    # a live refresh (a new incident on the event stream) keeps the filter, tab and page
    miner = {"pid": 4242, "name": "xmrig", "user": "www-data", "exe": "/tmp/xmrig", "ppid": 1}
    ingest(url, web, 1, hostname="web-01", add_ports=EXPOSED_PG,
           add_processes=[*_processes(), miner])  # fmt: skip
    expect(page.locator("section.card", has_text="Open incidents")).to_contain_text(
        "Crypto miner", timeout=10_000
    )
    expect(flt).to_have_value("--serve")
    expect(everything).to_have_attribute("aria-selected", "true")
    expect(procs).to_contain_text(f"1–50 of {DAEMONS}")

    # graph: the legend draws each kind with its node's shape and colour; labels do not overlap
    # (the per-host neighbourhood: #/graph alone is the estate view, one node per host)
    page.goto(url + "/#/hosts")
    page.get_by_role("link", name="web-01").click()
    page.get_by_role("link", name="graph", exact=True).click()
    page.wait_for_selector("#cy[data-nodes]")
    legend = page.evaluate("""() => {
        const cy = document.getElementById('cy').cy;
        const sel = { host: '[type = "host"]', service: '[type = "service"]', port: '[type = "port"][exposure != "exposed"]',
                      exposed: '[type = "port"][exposure = "exposed"]', identity: '[type = "identity"]' };
        return [...document.querySelectorAll('.legend .lg')].map((el) => {
            const node = cy.nodes(sel[el.dataset.kind])[0];
            const sw = getComputedStyle(el.querySelector('.swatch'));
            return { kind: el.dataset.kind, legendShape: el.dataset.shape, clip: sw.clipPath, radius: sw.borderTopLeftRadius,
                     legendColor: sw.backgroundColor.replace(/ /g, ''),
                     nodeShape: node ? node.style('shape') : null,
                     nodeColor: node ? node.style('background-color').replace(/ /g, '') : null };
        });
    }""")  # fmt: skip
    kinds = {x["kind"]: x for x in legend}
    assert set(kinds) == {"host", "service", "port", "exposed", "identity"}
    for x in legend:
        if x["nodeShape"] is not None:
            assert x["legendShape"] == x["nodeShape"] and x["legendColor"] == x["nodeColor"], x
    assert kinds["identity"]["nodeShape"] == "triangle" and "polygon" in kinds["identity"]["clip"]
    assert kinds["service"]["radius"] == "50%"
    overlaps = page.evaluate("""() => {
        const cy = document.getElementById('cy').cy;
        const shown = cy.nodes().filter((n) => !n.hasClass('nolabel') && n.data('label'));
        const boxes = shown.map((n) => [n.id(), n.boundingBox({ includeLabels: true, includeOverlays: false })]);
        const bad = [];
        for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
            const [a, p] = boxes[i]; const [b, q] = boxes[j];
            if (p.x1 < q.x2 && q.x1 < p.x2 && p.y1 < q.y2 && q.y1 < p.y2) bad.push([a, b]);
        }
        return { bad, shown: shown.length, hosts: cy.nodes('[type = "host"]').filter((n) => !n.hasClass('nolabel')).length,
                 total: cy.nodes().length };
    }""")  # fmt: skip
    assert overlaps["bad"] == [], overlaps
    assert overlaps["hosts"] >= 1 and overlaps["shown"] >= overlaps["total"] // 2, overlaps
    shoot(page, "fh-graph")

    page.goto(url + "/#/admin")
    expect(page.locator("figure.chart", has_text="Snapshots")).to_contain_text("(peak 4 a day)")
    _times_have_iso_titles(page)
    shoot(page, "fh-admin")
    page.goto(url + "/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    _times_have_iso_titles(page)
    assert errors == [], errors
    context.close()


def test_log_out_here_and_everywhere(browser: Browser, site: str) -> None:
    url = site
    ctx_a, a, errors_a = _login(browser, url)
    ctx_b, b, errors_b = _login(browser, url)
    token_b = b.evaluate("sessionStorage.getItem('kefal.session')")
    a.goto(url + "/#/settings")
    sessions = a.locator("section.card", has_text="Sessions")
    expect(sessions.get_by_role("button", name="Log out", exact=True)).to_be_visible()
    expect(sessions.get_by_role("button", name="Log out everywhere")).to_be_visible()
    sessions.scroll_into_view_if_needed()
    shoot(a, "fh-settings")
    # "Log out": this browser forgets its session; the other browser stays logged in
    sessions.get_by_role("button", name="Log out", exact=True).click()
    expect(a.get_by_role("heading", name="Log in")).to_be_visible()
    assert a.evaluate("sessionStorage.getItem('kefal.session')") is None
    a.goto(url + "/#/incidents")
    expect(a.get_by_role("heading", name="Log in")).to_be_visible()
    me = httpx.get(f"{url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token_b}"})
    assert me.status_code == 200
    # the nav's "Log out" does the same
    b.get_by_role("navigation").get_by_role("button", name="Log out").click()
    expect(b.get_by_role("heading", name="Log in")).to_be_visible()
    ctx_b.close()
    # "Log out everywhere" ends the other browsers' sessions server-side
    ctx_c, c, errors_c = _login(browser, url)
    token_c = c.evaluate("sessionStorage.getItem('kefal.session')")
    a.locator("#login input[name=username]").fill("alice")
    a.locator("#login input[name=password]").fill(PASSWORD)
    a.get_by_role("button", name="Log in").click()
    expect(a.get_by_role("heading", name="Overview")).to_be_visible()
    a.goto(url + "/#/settings")
    a.get_by_role("button", name="Log out everywhere").click()
    expect(a.get_by_role("heading", name="Log in")).to_be_visible()
    me = httpx.get(f"{url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token_c}"})
    assert me.status_code == 401
    assert errors_a == [] and errors_b == [], (errors_a, errors_b)
    ctx_c.close()
    ctx_a.close()
    assert errors_c == [] or all("401" in e for e in errors_c), errors_c
