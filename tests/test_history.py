"""Host history: change records on ingest, snapshots as ingested, diffs, tiers, migration."""

from __future__ import annotations

import sqlite3
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from kefal_lite import snapshot as wire
from kefal_lite.clock import FrozenClock, iso
from kefal_lite.history import diff, segments
from kefal_lite.snapshot import LocalUser, Snapshot
from kefal_lite.store import history
from kefal_lite.store.migrations import MIGRATIONS, _statements, migrate
from tests.builders import BASE_PROCESSES, BASE_USERS, T0, as_json, proc, snap
from tests.conftest import enroll, login, query, register


def kinds(changes: list[diff.Change]) -> list[tuple[str, str, str]]:
    return [(c.kind, c.change, c.subject) for c in changes]


def jittered(s: Snapshot, seed: int) -> Snapshot:
    procs = [msgspec.structs.replace(p, cpu_percent=(seed * 7 + i) % 13 / 2, pid=p.pid + seed)
             for i, p in enumerate(s.processes)]  # fmt: skip
    return msgspec.structs.replace(s, processes=procs, uptime_seconds=s.uptime_seconds + 60)


# --- the pure diff ---


def test_cpu_jitter_and_new_pids_are_no_change() -> None:
    a = snap(0)
    b = jittered(a, 3)
    assert diff.same(diff.fingerprint(a), diff.fingerprint(b))
    assert diff.diff(a, b) == []


def test_kernel_threads_renaming_are_no_change() -> None:
    a = snap(0)
    procs = [*BASE_PROCESSES[:2], proc("kworker/0:2-mm_percpu_wq", pid=31, exe=None, cmdline="")]
    b = snap(1, processes=procs + BASE_PROCESSES[3:])
    assert diff.diff(a, b) == []


def test_processes_start_and_end_by_identity() -> None:
    miner = proc("xmrig", "www-data", pid=900, exe="/tmp/.x/xmrig", cmdline="xmrig -o pool:3333")
    a, b = snap(0), snap(1, add_processes=[miner, {**miner, "pid": 901}])
    assert kinds(diff.diff(a, b)) == [
        ("process", "added", "www-data: /tmp/.x/xmrig xmrig -o pool:3333")
    ]
    assert diff.diff(a, b)[0].after == "xmrig"
    # the same binary and command line as another user is another process
    c = snap(2, add_processes=[{**miner, "user": "root"}])
    assert {(k, ch) for k, ch, _ in kinds(diff.diff(b, c))} == {("process", "added"),
                                                               ("process", "removed")}  # fmt: skip
    gone = kinds(diff.diff(c, snap(3)))
    assert gone == [("process", "removed", "root: /tmp/.x/xmrig xmrig -o pool:3333")]


def test_sockets_connections_logins_accounts_keys_kernel_and_reboot() -> None:
    a = snap(0)
    users = [dict(u) for u in BASE_USERS]
    users[1] = {**users[1], "shell": "/bin/bash"}  # www-data gets a login shell
    b = snap(
        1,
        add_ports=[{"port": 4444, "process": "nc", "address": "0.0.0.0"}],
        connections=[{"remote_address": "203.0.113.9", "remote_port": 443, "local_port": 51000,
                      "process": "curl"}],
        logged_in_users=["alice", "root"],
        users=users,
        ssh_authorized_keys=[{"user": "root", "fingerprint": "SHA256:evil", "comment": None}],
        kernel="6.9.0",
        uptime_seconds=30,
    )  # fmt: skip
    got = kinds(diff.diff(a, b))
    assert got == [
        ("listening", "added", "tcp 0.0.0.0:4444"),
        ("connection", "added", "tcp 203.0.113.9:443"),
        ("login", "added", "root"),
        ("account", "modified", "www-data"),
        ("key", "removed", "alice SHA256:aaaa"),
        ("key", "added", "root SHA256:evil"),
        ("host", "modified", "kernel"),
        ("host", "modified", "uptime reset"),
    ]
    shell = diff.diff(a, b)[3]
    assert shell.before and "nologin" in shell.before and shell.after and "/bin/bash" in shell.after
    assert not diff.same(diff.fingerprint(a), diff.fingerprint(b))
    # a new ephemeral local port to the same peer is the same connection
    c = msgspec.structs.replace(b, connections=[msgspec.structs.replace(b.connections[0],
                                                                        local_port=51999)])  # fmt: skip
    assert diff.diff(b, c) == []
    # a visitor of a listening port is traffic, not a change
    visitor = {"remote_address": "192.0.2.7", "remote_port": 50123, "local_port": 80}
    assert diff.diff(a, snap(1, connections=[visitor])) == []


# --- segments: every snapshot comes back byte for byte ---


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=30))
def test_segment_round_trip_is_byte_exact(bodies: list[bytes]) -> None:
    snaps = [segments.Snapshot(f"id-{i}", f"2026-11-02T09:{i:02d}:00.000Z",
                               f"2026-11-02T09:{i:02d}:00.000Z", body)
             for i, body in enumerate(bodies)]  # fmt: skip
    assert segments.unpack(segments.pack(snaps)) == snaps


def test_segment_refuses_what_it_did_not_write() -> None:
    with pytest.raises(ValueError):
        segments.unpack(b"\x78garbage")


# --- end to end over HTTP ---


def send(client: TestClient[Any], agent: dict[str, str], s: Snapshot) -> bytes:
    body = as_json(s)
    r = client.post("/api/v1/ingest", content=body,
                    headers={"Authorization": f"Bearer {agent['token']}"})  # fmt: skip
    assert r.status_code == 200, r.text
    return body


def in_app(client: TestClient[Any], fn: Any, *args: Any) -> Any:
    return client.blocking_portal.call(fn, *args)


def test_each_change_record_is_the_diff_of_consecutive_snapshots(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    """Ingest keeps the items of a host's last changed snapshot instead of reading the
    previous one back: the records must still be exactly the diff of each snapshot with
    the one before it, through no-change snapshots in between (CPU, pids, group order),
    a process renamed only, keys, a reboot and a rename back."""
    clock.set(T0)
    register(client, "alice")
    session, agent = login(client, "alice"), enroll(client, "alice")
    replace = msgspec.structs.replace
    s0 = snap(0, agent_id=agent["agent_id"])
    renamed = [replace(p, name="nginx-main") if p.name == "nginx" else p for p in s0.processes]
    key = {"user": "root", "fingerprint": "SHA256:k", "comment": None}
    users = [dict(u) for u in BASE_USERS]
    users[2] = {**users[2], "groups": ["sudo", "alice"]}  # the same groups, another order
    seq = [s0, jittered(s0, 1)]
    seq += [replace(jittered(s0, 2), processes=renamed), replace(jittered(s0, 3), processes=renamed)]
    seq += [snap(4, agent_id=agent["agent_id"], processes=[msgspec.to_builtins(p) for p in renamed],
                 ssh_authorized_keys=[key])]  # fmt: skip
    seq += [replace(seq[-1], users=msgspec.convert(users, list[LocalUser]))]
    seq += [replace(seq[-1], uptime_seconds=30), replace(jittered(seq[-1], 7), uptime_seconds=90)]
    seq += [replace(seq[-1], processes=list(s0.processes), uptime_seconds=150)]
    sent = []
    for i, s in enumerate(seq):
        clock.set(T0 + timedelta(minutes=i))
        send(client, agent, s)
        sent.append(iso(clock.now()))
    [host_id] = [r[0] for r in query(client.app.state.settings, "SELECT id FROM hosts")]
    page = client.get(f"/api/v1/hosts/{host_id}/changes", headers=session,
                      params={"since": iso(T0), "until": iso(clock.now())}).json()  # fmt: skip
    got = {at: [] for at in sent}  # type: dict[str, list[tuple[Any, ...]]]
    for c in page["items"]:
        got[c["at"]].append((c["kind"], c["change"], c["subject"], c["before"], c["after"]))
    want = {sent[0]: []}  # type: dict[str, list[tuple[Any, ...]]]
    for i in range(1, len(seq)):
        want[sent[i]] = [(c.kind, c.change, c.subject, c.before, c.after)
                         for c in diff.diff(seq[i - 1], seq[i])]  # fmt: skip
    assert got == want
    assert [len(v) for v in want.values()] == [0, 0, 1, 0, 2, 0, 1, 0, 1]
    assert want[sent[2]] == [("process", "modified", "www-data: /usr/sbin/nginx nginx: worker"
                              " process", "nginx", "nginx-main")]  # fmt: skip


def test_changes_snapshots_and_diff_over_http(client: TestClient[Any], clock: FrozenClock) -> None:
    clock.set(T0)
    register(client, "alice")
    session, agent = login(client, "alice"), enroll(client, "alice")
    aid = agent["agent_id"]
    sent: list[tuple[str, bytes]] = []
    miner = proc("xmrig", "www-data", pid=900, exe="/tmp/.x/xmrig")
    for i in range(150):  # two and a half hours, one a minute
        clock.set(T0 + timedelta(minutes=i, seconds=5))
        s = jittered(snap(i, agent_id=aid, add_processes=[miner] if 30 <= i < 90 else []), i)
        if i >= 120:
            s = msgspec.structs.replace(s, kernel="6.9.0")
        sent.append((iso(clock.now()), send(client, agent, s)))
    [host_id] = [r[0] for r in query(client.app.state.settings, "SELECT id FROM hosts")]

    day = {"since": iso(T0), "until": iso(clock.now())}
    page = client.get(f"/api/v1/hosts/{host_id}/changes", params=day, headers=session).json()
    assert page["total"] == 3
    assert [(c["kind"], c["change"], c["at"]) for c in page["items"]] == [
        ("process", "added", sent[30][0]),
        ("process", "removed", sent[90][0]),
        ("host", "modified", sent[120][0]),
    ]
    assert page["items"][2]["before"] == "6.8.0-49-generic" and page["items"][2]["after"] == "6.9.0"
    only = client.get(f"/api/v1/hosts/{host_id}/changes", params={**day, "kind": "host"},
                      headers=session).json()  # fmt: skip
    assert only["total"] == 1
    bad = client.get(f"/api/v1/hosts/{host_id}/changes", params={"kind": "cpu"}, headers=session)
    assert bad.status_code == 400 and bad.json()["detail"][0]["loc"] == ["query", "kind"]

    def check_snapshots() -> None:
        for at, body in sent[::7] + sent[-2:]:
            r = client.get(f"/api/v1/hosts/{host_id}/snapshots", params={"at": at}, headers=session)
            assert r.status_code == 200 and r.content == body and r.headers["x-received-at"] == at
        between = client.get(f"/api/v1/hosts/{host_id}/snapshots",
                             params={"at": iso(T0 + timedelta(minutes=45, seconds=30))},
                             headers=session)  # fmt: skip
        assert between.content == sent[45][1]

    check_snapshots()
    # the finished hours fold into segments; every snapshot still comes back as ingested
    clock.set(T0 + timedelta(hours=3))
    assert in_app(client, client.app.state.kefal.monitor.prune) == 0
    settings_ = client.app.state.settings
    assert query(settings_, "SELECT COUNT(*) FROM snapshots") == [(1,)]  # the latest
    assert query(settings_, "SELECT SUM(entries) FROM snapshot_segments") == [(149,)]
    check_snapshots()
    before = client.get(f"/api/v1/hosts/{host_id}/snapshots",
                        params={"at": iso(T0 - timedelta(seconds=1))}, headers=session)  # fmt: skip
    assert before.status_code == 404 and "detail" in before.json()

    d = client.get(f"/api/v1/hosts/{host_id}/diff",
                   params={"from": sent[10][0], "to": sent[125][0]}, headers=session).json()  # fmt: skip
    assert d["from"]["at"] == sent[10][0] and d["to"]["at"] == sent[125][0]
    assert [(c["kind"], c["subject"]) for c in d["items"]] == [("host", "kernel")]
    d = client.get(f"/api/v1/hosts/{host_id}/diff",
                   params={"from": sent[10][0], "to": sent[60][0]}, headers=session).json()  # fmt: skip
    assert [(c["change"], c["after"]) for c in d["items"]] == [("added", "xmrig")]

    # the host page still shows the latest snapshot
    latest = client.get(f"/api/v1/hosts/{host_id}", headers=session).json()["latest_snapshot"]
    assert latest == msgspec.json.decode(sent[-1][1])


def test_other_tenants_see_nothing(open_client: TestClient[Any], alice: dict[str, str],
                                   bob: dict[str, str], clock: FrozenClock) -> None:  # fmt: skip
    agent = enroll(open_client, "alice")
    send(open_client, agent, snap(0, agent_id=agent["agent_id"]))
    send(open_client, agent, snap(1, agent_id=agent["agent_id"], logged_in_users=["root"]))
    host_id = open_client.get("/api/v1/hosts", headers=alice).json()["items"][0]["host_id"]
    mine = open_client.get(f"/api/v1/hosts/{host_id}/changes", headers=alice).json()
    assert mine["total"] == 2  # root logged in, alice logged out
    for path in ("changes", "snapshots", f"diff?from={iso(clock.now() - timedelta(days=1))}"):
        r = open_client.get(f"/api/v1/hosts/{host_id}/{path}", headers=bob)
        assert r.status_code == 404 and r.json() == {"detail": "no such host"}


def test_changes_survive_a_restart(tmp_path: Path, clock: FrozenClock) -> None:
    from kefal_lite.app import create_app
    from tests.conftest import make_settings

    settings_ = make_settings(tmp_path / "d")
    clock.set(T0)
    with TestClient(create_app(settings_, clock=clock)) as c:
        register(c, "alice")
        agent = enroll(c, "alice")
        send(c, agent, snap(0, agent_id=agent["agent_id"]))
    clock.advance(minutes=1)
    with TestClient(create_app(settings_, clock=clock)) as c:
        # nothing resident after the restart: the previous snapshot is read back
        send(c, agent, snap(1, agent_id=agent["agent_id"], logged_in_users=["alice", "bob"]))
        session = login(c, "alice")
        host_id = c.get("/api/v1/hosts", headers=session).json()["items"][0]["host_id"]
        page = c.get(f"/api/v1/hosts/{host_id}/changes", headers=session).json()
        assert [(i["kind"], i["subject"]) for i in page["items"]] == [("login", "bob")]


def test_retention_tiers(client: TestClient[Any], clock: FrozenClock) -> None:
    clock.set(T0)
    register(client, "alice")
    session, agent = login(client, "alice"), enroll(client, "alice")
    aid = agent["agent_id"]
    for i in range(120):
        clock.set(T0 + timedelta(minutes=i))
        send(client, agent, snap(i, agent_id=aid, logged_in_users=["alice"] if i % 2 else []))
    clock.set(T0 + timedelta(days=30, minutes=1))
    last = send(client, agent, snap(5000, agent_id=aid))
    settings_ = client.app.state.settings
    prune = client.app.state.kefal.monitor.prune
    host_id = query(settings_, "SELECT id FROM hosts")[0][0]
    # past 7 days: one snapshot an hour (the first of each), and every change record
    assert in_app(client, prune) == 118
    # ...the day's two hourly snapshots in one segment
    assert query(settings_, "SELECT COUNT(*), SUM(entries) FROM snapshot_segments") == [(1, 2)]
    assert query(settings_, "SELECT COUNT(*) FROM changes") == [(119,)]  # alice in, out, ...
    r = client.get(f"/api/v1/hosts/{host_id}/snapshots",
                   params={"at": iso(T0 + timedelta(minutes=59))}, headers=session)  # fmt: skip
    assert r.headers["x-received-at"] == iso(T0)  # the hour's snapshot stands for the hour
    # past 90 days: nothing of that history, but the host's latest snapshot
    clock.set(T0 + timedelta(days=91))
    assert in_app(client, prune) == 2
    assert query(settings_, "SELECT COUNT(*) FROM changes") == [(0,)]
    assert query(settings_, "SELECT COUNT(*) FROM snapshot_segments") == [(0,)]
    r = client.get(f"/api/v1/hosts/{host_id}/snapshots", headers=session)
    assert r.content == last


# --- migration of the existing history, in place ---


async def test_migration_folds_existing_history_byte_exact(tmp_path: Path) -> None:
    """A database from before history (schema 9) starts without folding anything (that
    took minutes at startup for a large history); its rows read the same as they did, and
    the background compactor then folds them into hourly segments that read the same."""
    from kefal_lite.history import service
    from kefal_lite.store.db import Database

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:9]:
        assert isinstance(step, str)
        for statement in _statements(step):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 9")
    conn.execute("INSERT INTO users (id, username, password_hash, role, created_at)"
                 " VALUES ('u1', 'alice', 'x', 'admin', 'now')")  # fmt: skip
    conn.execute("INSERT INTO agents (id, user_id, name, token_hash, created_at)"
                 " VALUES ('a1', 'u1', 'a', x'00', 'now')")  # fmt: skip
    bodies = []
    for i in range(130):
        body = as_json(jittered(snap(i, logged_in_users=["alice"] if i % 7 == 0 else []), i))
        at = iso(T0 + timedelta(minutes=i))
        stored = body if i < 5 else zlib.compress(body, 1)  # rows from before compression too
        conn.execute(
            "INSERT INTO snapshots VALUES (?, 'u1', 'h1', ?, ?, ?)", (f"s{i}", at, at, stored)
        )
        bodies.append((at, body))
    conn.execute("INSERT INTO hosts (id, user_id, agent_id, hostname, first_seen_at, last_seen_at,"
                 " snapshot_id) VALUES ('h1', 'u1', 'a1', 'web', 'x', 'x', 's129')")  # fmt: skip
    conn.close()

    db = Database(path)
    await db.start()  # migrates to the current schema

    async def reads() -> tuple[list[tuple[str, str, bytes]], list[list[diff.Change]]]:
        snaps = []
        for at, _ in bodies:
            got = await db.read(history.snapshot_at, "u1", "h1", at)
            assert got is not None
            snaps.append((got.snapshot_id, got.received_at, got.body))
        # what /diff answers: the snapshots in force at two times, compared
        diffs = [diff.diff(wire.DECODER.decode(snaps[a][2]), wire.DECODER.decode(snaps[b][2]))
                 for a, b in ((1, 7), (6, 7), (7, 8), (70, 126))]  # fmt: skip
        return snaps, diffs

    try:
        counted = "SELECT COUNT(*) FROM snapshots"
        assert (await db.read(lambda c: c.execute(counted).fetchone()[0])) == 130
        unfolded = await reads()
        assert [(sid, at, body) for sid, at, body in unfolded[0]] == [
            (f"s{i}", at, body) for i, (at, body) in enumerate(bodies)
        ]
        assert [kinds(d) for d in unfolded[1][:3]] == [[("login", "added", "alice")],
                                                       [("login", "added", "alice")],
                                                       [("login", "removed", "alice")]]  # fmt: skip
        assert await service.compact(db, T0 + timedelta(hours=3)) == 129
        assert (await db.read(lambda c: c.execute(counted).fetchone()[0])) == 1
        entries = "SELECT entries FROM snapshot_segments ORDER BY first_at"
        assert await db.read(lambda c: [r[0] for r in c.execute(entries)]) == [60, 60, 9]
        assert await reads() == unfolded
        assert await db.read(history.snapshot_at, "other-user", "h1", bodies[-1][0]) is None
    finally:
        await db.close()


def test_retention_days_keeps_working_under_its_former_name(tmp_path: Path) -> None:
    from kefal_lite.config import load

    path = tmp_path / "kefal.toml"
    path.write_text("[retention]\ndays = 14\n")
    s = load(config_file=path, environ={})
    assert (s.retention_snapshots_days, s.retention_changes_days) == (14, 90)
    assert load(environ={"KEFAL_RETENTION_DAYS": "3"}).retention_snapshots_days == 3


def test_an_incident_links_to_the_hour_before_it_opened(client: TestClient[Any],
                                                        clock: FrozenClock) -> None:  # fmt: skip
    clock.set(T0)
    register(client, "alice")
    session, agent = login(client, "alice"), enroll(client, "alice")
    send(client, agent, snap(0, agent_id=agent["agent_id"]))
    clock.advance(minutes=30)
    exposed = [{"port": 5432, "process": "postgres", "address": "0.0.0.0"}]
    send(client, agent, snap(30, agent_id=agent["agent_id"], add_ports=exposed))
    [inc] = client.get("/api/v1/incidents", headers=session).json()["items"]
    linked = client.get(inc["changes_url"], headers=session).json()
    assert [(c["kind"], c["subject"], c["at"]) for c in linked["items"]] == [
        ("listening", "tcp 0.0.0.0:5432", inc["first_seen_at"])
    ]
    assert inc["changes_url"].startswith(f"/api/v1/hosts/{inc['host_id']}/changes?since=")


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=5_400), min_size=1, max_size=40),
    compact_after=st.integers(min_value=0, max_value=40),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_any_retained_snapshot_is_reconstructed_byte_exact(
    tmp_path_factory: pytest.TempPathFactory, gaps: list[int], compact_after: int, seed: int
) -> None:
    """Snapshots at any spacing (seconds to 90 minutes apart), compacted at any moment and
    again at the end: the one in force at each received time is the one sent then."""
    from kefal_lite.store import hosts
    from kefal_lite.store.db import connect

    conn = connect(tmp_path_factory.mktemp("prop") / "k.db")
    migrate(conn)
    conn.execute("INSERT INTO users (id, username, password_hash, role, created_at)"
                 " VALUES ('u1', 'alice', 'x', 'admin', 'x')")  # fmt: skip
    conn.execute("INSERT INTO orgs (id, name, personal, created_at) VALUES ('u1', 'alice', 1, 'x')")
    conn.execute("INSERT INTO agents (id, org_id, name, token_hash, created_at)"
                 " VALUES ('a1', 'u1', 'a', x'00', 'x')")  # fmt: skip

    def compact_now(now: str) -> None:
        for org_id, host_id, hour in history.compactable(conn, now[:13] + ":00:00.000Z"):
            rows = history.rows_between(conn, org_id, host_id, hour + ":", hour + ";")
            history.store_segment(conn, org_id, host_id, rows, segments.pack(rows))

    at, sent = T0, []
    for i, gap in enumerate(gaps):
        at += timedelta(seconds=gap)
        body = as_json(jittered(snap(i), seed + i))
        hosts.add_snapshot(conn, snapshot_id=f"s{i}", org_id="u1", host_id="h1",
                           received_at=iso(at), taken_at=iso(at), body=body)  # fmt: skip
        conn.execute("INSERT INTO hosts (id, org_id, agent_id, hostname, first_seen_at,"
                     " last_seen_at, snapshot_id) VALUES ('h1', 'u1', 'a1', 'w', 'x', 'x', ?)"
                     " ON CONFLICT (id) DO UPDATE SET snapshot_id = excluded.snapshot_id",
                     (f"s{i}",))  # fmt: skip
        sent.append((iso(at), body))
        if i == compact_after:
            compact_now(iso(at))
    compact_now(iso(at + timedelta(hours=2)))
    for when, body in sent:
        got = history.snapshot_at(conn, "u1", "h1", when)
        assert got is not None and got.received_at == when and got.body == body
    assert history.snapshot_at(conn, "u1", "h1", iso(T0)) is None
    conn.close()
