"""The organizations migration on a database made by the schema before it, with data in
every tenant table: each user's rows land in a personal organization with the user's id,
nothing is rewritten or lost, and the old accounts work at once."""

from __future__ import annotations

import sqlite3
from typing import Any

from litestar.testing import TestClient

from kefal_lite import security
from kefal_lite.app import create_app
from kefal_lite.clock import iso
from kefal_lite.store import migrations
from kefal_lite.store.migrations import MIGRATIONS
from tests.conftest import PASSWORD, FrozenClock, login, make_settings

T = "2026-01-01T00:00:00Z"
TENANT_TABLES = ("agents", "hosts", "snapshots", "incidents", "channels", "subscriptions",
                 "suppressions", "enrollment_tokens", "changes", "snapshot_segments")  # fmt: skip


def before_orgs(path: str) -> sqlite3.Connection:
    """A database at the schema just before organizations, as that release made it."""
    conn = sqlite3.connect(path, isolation_level=None)
    upto = MIGRATIONS.index(migrations._organizations)
    for step in MIGRATIONS[:upto]:
        conn.execute("BEGIN")
        if isinstance(step, str):
            for statement in migrations._statements(step):
                conn.execute(statement)
        else:
            step(conn)
        conn.execute("COMMIT")
    conn.execute(f"PRAGMA user_version = {upto}")
    return conn


def fill(conn: sqlite3.Connection, user: str, name: str, now: str) -> None:
    """One row in every tenant table, written with the old `user_id` columns."""
    x = conn.execute
    x("INSERT INTO users (id, username, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)",
      (user, name, security.hash_password(PASSWORD), "user", T))
    x("INSERT INTO agents (id, user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
      (f"a-{user}", user, "web", security.token_hash(f"kfa_{user}"), T))
    x("INSERT INTO hosts (id, user_id, agent_id, hostname, first_seen_at, last_seen_at)"
      " VALUES (?, ?, ?, ?, ?, ?)", (f"h-{user}", user, f"a-{user}", f"{name}-web", T, T))
    x("INSERT INTO snapshots (id, user_id, host_id, received_at, taken_at, body)"
      " VALUES (?, ?, ?, ?, ?, ?)", (f"s-{user}", user, f"h-{user}", T, T, b"{}"))
    x("INSERT INTO incidents (id, user_id, host_id, invariant_id, invariant_name, category,"
      " severity, status, state_like, subject, title, evidence, first_seen_at, last_seen_at)"
      " VALUES (?, ?, ?, 'ssh_root', 'SSH root', 'access', 'high', 'open', 1, 'sshd', 't',"
      " '{}', ?, ?)", (f"i-{user}", user, f"h-{user}", T, T))
    x("INSERT INTO channels (id, user_id, name, url_sealed, url_masked, min_severity,"
      " created_at) VALUES (?, ?, 'hook', 'sealed', 'webhook://***', 'high', ?)",
      (f"c-{user}", user, T))
    x("INSERT INTO subscriptions (user_id, plan, state, updated_at) VALUES (?, 'starter',"
      " 'active', ?)", (user, T))
    x("INSERT INTO suppressions (id, user_id, invariant_id, reason, created_by, created_at)"
      " VALUES (?, ?, 'ssh_root', 'lab', ?, ?)", (f"p-{user}", user, name, T))
    x("INSERT INTO enrollment_tokens (id, user_id, token_hash, created_at, expires_at,"
      " max_uses) VALUES (?, ?, ?, ?, '2099-01-01T00:00:00Z', 1)",
      (f"e-{user}", user, security.token_hash(f"kfe_{user}"), T))
    x("INSERT INTO changes (user_id, host_id, snapshot_id, at, kind, change, subject)"
      " VALUES (?, ?, ?, ?, 'port', 'added', '22')", (user, f"h-{user}", f"s-{user}", T))
    x("INSERT INTO snapshot_segments (user_id, host_id, first_at, last_at, entries, body)"
      " VALUES (?, ?, ?, ?, 1, x'00')", (user, f"h-{user}", T, T))
    # recent: the audit's retention must not take it before the test looks
    x("INSERT INTO audit (at, user_id, actor, action) VALUES (?, ?, ?, 'login')",
      (now, user, name))
    x("INSERT INTO invariants (id, name, invariant_type, predicate, severity, metadata, source,"
      " status, contributed_by, created_at) VALUES (?, ?, 'custom', '{}', 'low', '{}',"
      " 'community', 'rejected', ?, ?)", (f"r-{user}", f"rule of {name}", user, T))


def test_every_row_lands_in_the_personal_org(tmp_path: Any, clock: FrozenClock) -> None:
    settings = make_settings(tmp_path / "data")
    settings.data_path.mkdir(parents=True, exist_ok=True)
    conn = before_orgs(str(settings.db_path))
    conn.execute("BEGIN")
    fill(conn, "u-alice", "alice", iso(clock.now()))
    fill(conn, "u-bob", "bob", iso(clock.now()))
    conn.execute("COMMIT")
    before = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TENANT_TABLES}
    conn.close()

    with TestClient(create_app(settings, clock=clock)) as c:
        db = sqlite3.connect(settings.db_path)
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        for table in TENANT_TABLES:
            rows = db.execute(f"SELECT org_id, COUNT(*) FROM {table} GROUP BY org_id").fetchall()
            assert sorted(rows) == [("u-alice", 1), ("u-bob", 1)], table
            assert sum(n for _, n in rows) == before[table]
        assert sorted(db.execute("SELECT id, name, personal FROM orgs").fetchall()) == [
            ("u-alice", "alice", 1), ("u-bob", "bob", 1)]  # fmt: skip
        assert sorted(db.execute("SELECT org_id, user_id, role FROM memberships").fetchall()) == [
            ("u-alice", "u-alice", "owner"), ("u-bob", "u-bob", "owner")]  # fmt: skip
        assert db.execute("SELECT org_id FROM audit WHERE user_id = 'u-bob'").fetchall() == [
            ("u-bob",)]  # fmt: skip
        assert db.execute("SELECT org_id FROM invariants WHERE id = 'r-u-bob'").fetchall() == [
            ("u-bob",)]  # fmt: skip
        # the tenant columns' parent is the organization now, and nothing dangles
        assert "REFERENCES orgs(id)" in db.execute(
            "SELECT sql FROM sqlite_schema WHERE name = 'agents'").fetchone()[0]  # fmt: skip
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        db.close()

        # the old accounts and their old data work through the API, each in its own org
        alice = login(c, "alice")
        [host] = c.get("/api/v1/hosts", headers=alice).json()["items"]
        assert host["host_id"] == "h-u-alice"
        [inc] = c.get("/api/v1/incidents", headers=alice).json()["items"]
        assert inc["id"] == "i-u-alice"
        assert c.get("/api/v1/incidents/i-u-bob", headers=alice).status_code == 404
        [org] = c.get("/api/v1/orgs", headers=alice).json()["items"]
        assert org == {"id": "u-alice", "name": "alice", "personal": True,
                       "created_at": T, "role": "owner"}  # fmt: skip
        # an agent enrolled before the migration still reports (its org's member is enabled)
        r = c.post("/api/v1/enrollment-tokens", json={"name": "new"}, headers=alice)
        assert r.status_code == 201
        [agent] = c.get("/api/v1/agents", headers=alice).json()["items"]
        assert agent["id"] == "a-u-alice"
