"""How long the Graph page takes to settle on a 200-host estate in headless Chromium.

    python benchmarks/estate_page.py [--hosts 200] [--loads 5] [--shots DIR]

A small company's estate (the shape of issue 24): hosts in subnets of 50, one in ten
with a database exposed on 0.0.0.0, web hosts connected to a database, a root deploy
key on every 20th host (and on some of the exposed ones), a team key on pairs of hosts, one person logged in on a few.
Agents are created straight in a fresh database (enrolling over HTTP would time argon2);
snapshots go through a real `kefal-lite serve` over HTTP. "Settled" is the page's
`#cy[data-ready]` (elements drawn, preset positions applied) plus two animation frames,
timed from the navigation with performance.now(), the median of `--loads` reloads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tests.builders import as_json, port, snap

from kefal_lite import security
from kefal_lite.store import agents, users
from kefal_lite.store.db import open_sync, transaction

PASSWORD = "benchmark password"
ROLES = ("web", "app", "db", "ops")


def seed(data_dir: Path, hosts: int, username: str = "bench") -> list[dict[str, str]]:
    """A user and `hosts` agents written straight into a fresh database; their tokens."""
    # the store the server will use: PostgreSQL when KEFAL_DATABASE_URL names one
    url = os.environ.get("KEFAL_DATABASE_URL")
    if url:
        from kefal_lite.store import pg

        db = pg.open_sync(url)
    else:
        db = open_sync(data_dir / "kefal.db")
    out = []
    with transaction(db):
        user = users.create(db, user_id=str(uuid.uuid4()), username=username,
                            password_hash=security.hash_password(PASSWORD), role="admin",
                            now="2026-01-01T00:00:00.000Z")  # fmt: skip
        for i in range(hosts):
            token, agent_id = security.new_token("kfa_"), str(uuid.uuid4())
            agents.create(db, user_id=user.id, agent_id=agent_id, name=f"a{i}",
                          token_hash=security.token_hash(token), now="2026-01-01T00:00:00.000Z")  # fmt: skip
            out.append({"agent_id": agent_id, "token": token})
    db.close()
    return out


def ip(n: int) -> str:
    return f"10.0.{n // 50}.{n % 50 + 10}"


def host_fields(n: int, hosts: int) -> dict[str, Any]:
    role = ROLES[n % 4]
    fields: dict[str, Any] = {"hostname": f"{role}-{n:03d}", "ip_addresses": [ip(n)],
                              "logged_in_users": ["ada"] if n % 67 == 0 else [],
                              "ssh_authorized_keys": [], "connections": []}  # fmt: skip
    if n % 10 == 2:  # one in ten: a database listening on every address
        fields["add_ports"] = [port(5432, "postgres", "0.0.0.0")]
    if role == "web":  # each web host talks to the nearest exposed database
        db = (n // 10 + 1) * 10 + 2  # the next ten's database
        db = db if db < hosts else 2
        fields["connections"] = [{"remote_address": ip(db), "remote_port": 5432,
                                  "local_port": 40000 + n, "process": "gunicorn"}]  # fmt: skip
    keys = []
    if n % 20 == 0 or n % 40 == 2:
        keys.append({"user": "root", "fingerprint": "SHA256:deploy-root-key", "comment": "ci"})
    if n % 7 in (0, 1):
        keys.append({"user": "ada", "fingerprint": f"SHA256:team-{n // 7}", "comment": "ada"})
    fields["ssh_authorized_keys"] = keys
    return fields


def ingest(url: str, tokens: list[dict[str, str]], total: int | None = None) -> None:
    """One snapshot for each of `tokens` (the first hosts of an estate of `total`)."""
    now = datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    with httpx.Client(base_url=url, timeout=30) as client:
        for n, agent in enumerate(tokens):
            fields = host_fields(n, total or len(tokens))
            body = as_json(snap(0, agent_id=agent["agent_id"], timestamp=now, **fields))
            r = client.post(
                "/api/v1/ingest",
                content=body,
                headers={"Authorization": f"Bearer {agent['token']}"},
            )
            assert r.status_code == 200, r.text


def session_token(url: str, username: str = "bench") -> str:
    r = httpx.post(f"{url}/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


SETTLE = """async () => {
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now();
}"""


def settle_times(page: Any, url: str, token: str, loads: int) -> list[float]:
    """Milliseconds from navigation to a settled Graph page, for each of `loads` loads."""
    page.goto(url + "/#/login")
    page.evaluate("t => sessionStorage.setItem('kefal.session', t)", token)
    out = []
    for _ in range(loads):
        page.goto("about:blank")
        page.goto(url + "/#/graph")
        page.wait_for_selector("#cy[data-ready]", timeout=30_000)
        out.append(float(page.evaluate(SETTLE)))
    return out


def main() -> None:
    import tempfile

    from playwright.sync_api import sync_playwright
    from tests.conftest import serving

    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--shots", help="a directory for a screenshot of the settled page")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tokens = seed(Path(tmp), args.hosts)
        with serving(Path(tmp)) as (url, _), sync_playwright() as pw:
            ingest(url, tokens)
            token = session_token(url)
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            times = settle_times(page, url, token, args.loads)
            nodes = page.get_attribute("#cy", "data-nodes")
            if args.shots:
                Path(args.shots).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(args.shots) / f"estate-{args.hosts}.png"))
            browser.close()
    print(f"hosts={args.hosts}: {nodes} host nodes drawn")
    print(f"graph page settles: median {statistics.median(times):.0f} ms, "
          f"min {min(times):.0f}, max {max(times):.0f} (of {len(times)} loads)")  # fmt: skip


if __name__ == "__main__":
    main()
