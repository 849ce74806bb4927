"""Host history: bytes on disk per host-day against today's storage, ingest throughput
against today's code, and /changes latency, all in one run.

    python benchmarks/history.py                       # 8 hosts, 10 s ingest rounds
    python benchmarks/history.py --hosts 50 --rounds 3
    python benchmarks/history.py --skip-ingest         # storage and /changes only
    python benchmarks/history.py --ingest-only --baseline 4ecc576 --rounds 8   # the A/B alone

1. Storage. For each host (the benign corpus, round robin) a day of one-a-minute
   snapshots with realistic churn: CPU on every process every minute (values drawn
   from the corpus, two thirds zero), a short cron job every 15 minutes, a worker
   restarted with a new command line every hour, an outbound peer for 5 minutes
   every 20, visitors of a listening port every minute (traffic, no change), a login
   in office hours, a package upgrade burst at 03:00 (apt, dpkg, a new sshd binary,
   a new account and group change) and a reboot into a new kernel at 03:20.
   The same bodies go into two SQLite files built by this tree's store code:
   "today" (every snapshot a zlib-compressed row, what main does) and "history"
   (rows plus change records on ingest, then the background compactor folds each
   hour into a segment). Sizes are pages in use after VACUUM, indexes included, less
   those of an empty database (one page per table and index, nobody's history).
   A day past the snapshot tier is measured by thinning the same file (one snapshot
   an hour, every change record); 90 days at the default tiers = 7 full days + 83
   thinned ones. Every stored snapshot is read back and compared byte for byte.
2. /changes: the history file behind a real `kefal-lite serve`, GET a day of one
   host's changes 50 times; p50 and p99.
3. Codecs: body bytes per snapshot and compression time for the options (zlib alone as
   today, zlib with the previous snapshot or the hour's first as preset dictionary,
   one zlib-9 or xz stream per hour) over the same days.
4. Ingest throughput: benchmarks/ingest_load.py's load (real server, real HTTP,
   64 agents) against this tree and against `--baseline` (a git ref, default main,
   exported with `git archive`), interleaved A/B `--rounds` times; medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import psutil

from benchmarks.ingest_load import PASSWORD, Conn, free_port, hammer, make_bodies, with_now
from kefal_lite import snapshot as wire
from kefal_lite.clock import iso
from kefal_lite.detect import corpus
from kefal_lite.history import diff, segments
from kefal_lite.store import history, hosts
from kefal_lite.store.db import connect
from kefal_lite.store.migrations import migrate

DAY0 = datetime(2026, 11, 2, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
replace = msgspec.structs.replace


def day_of_snapshots(host: int, rnd: random.Random) -> list[wire.Snapshot]:
    hosts_ = list(corpus.load().values())
    base = hosts_[host % len(hosts_)][0]
    cpus = [p.cpu_percent for snaps in hosts_ for s in snaps for p in s.processes]
    peers = [f"198.51.100.{n}" for n in range(1, 40)]
    users = list(base.users)
    kernel, boot_minute = base.kernel, -base.uptime_seconds // 60
    new_sshd = False
    out = []
    for minute in range(1440):
        hour, m = divmod(minute, 60)
        procs = [
            replace(p, cpu_percent=rnd.choice(cpus), pid=p.pid + (7919 if minute >= 200 else 0))
            for p in base.processes
        ]
        if new_sshd:
            procs = [replace(p, exe=p.exe + ".new") if p.name == "sshd" and p.exe else p
                     for p in procs]  # fmt: skip
        if m % 15 < 2:  # a cron job, two minutes every quarter hour
            procs.append(wire.Process(pid=20000 + minute, name="python3", user="root",
                                      exe="/usr/bin/python3", cmdline="python3 /opt/sync.py"))  # fmt: skip
        procs.append(wire.Process(pid=30000 + hour, name="gunicorn", user="www-data",
                                  exe="/usr/bin/python3",
                                  cmdline=f"gunicorn app:app --worker-tmp-dir /dev/shm/{hour}"))  # fmt: skip
        if minute in range(180, 190):  # the package upgrade burst
            procs += [
                wire.Process(pid=40000 + minute, name=n, user="root", exe=f"/usr/bin/{n}",
                             cmdline=f"{n} {a}", cpu_percent=40.0)
                for n, a in (("apt-get", "upgrade -y"), ("dpkg", "--configure -a"),
                             ("sh", "/var/lib/dpkg/info/openssh-server.postinst configure"))
            ]  # fmt: skip
        if minute == 188:
            new_sshd = True
            users.append(wire.LocalUser(name="_apt", uid=105, groups=["nogroup"],
                                        shell="/usr/sbin/nologin"))  # fmt: skip
            users = [replace(u, groups=[*u.groups, "adm"]) if u.name == "syslog" else u
                     for u in users]  # fmt: skip
        if minute == 200:  # reboot into the upgraded kernel
            kernel, boot_minute = kernel + "+upgraded", 199
        # an outbound peer for 5 minutes every 20 (a fresh local port each minute), and
        # visitors of a listening port coming and going every minute
        conns = [
            wire.Connection(remote_address=peers[(hour * 3 + m // 20) % len(peers)],
                            remote_port=443, local_port=rnd.randrange(32768, 61000),
                            process="curl")
        ] if m % 20 < 5 else []  # fmt: skip
        if base.listening_ports:
            conns += [
                wire.Connection(remote_address=f"203.0.113.{rnd.randrange(1, 255)}",
                                remote_port=rnd.randrange(32768, 61000),
                                local_port=base.listening_ports[0].port)
                for _ in range(rnd.randrange(0, 4))
            ]  # fmt: skip
        out.append(
            replace(
                base,
                agent_id=f"bench-{host}",
                hostname=f"{base.hostname}-{host}",
                timestamp=DAY0 + timedelta(minutes=minute),
                kernel=kernel,
                uptime_seconds=(minute - boot_minute) * 60 + 17,
                processes=procs,
                connections=list(base.connections) + conns,
                logged_in_users=["alice"] if 9 <= hour < 17 else [],
                users=users,
            )
        )
    return out


def used_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("VACUUM")
        pages, free, size = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "freelist_count", "page_size"))  # fmt: skip
        return int((pages - free) * size)
    finally:
        conn.close()


def seed(conn: sqlite3.Connection, user_id: str, host_id: str, agent_id: str) -> None:
    if conn.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
        conn.execute("INSERT INTO users (id, username, password_hash, role, created_at)"
                     " VALUES (?, ?, 'x', 'user', 'x')", (user_id, user_id))  # fmt: skip
    if conn.execute("SELECT 1 FROM orgs WHERE id = ?", (user_id,)).fetchone() is None:
        conn.execute("INSERT INTO orgs (id, name, personal, created_at) VALUES (?, ?, 1, 'x')",
                     (user_id, user_id))  # fmt: skip
    conn.execute("INSERT INTO agents (id, org_id, name, token_hash, created_at)"
                 " VALUES (?, ?, 'a', randomblob(32), 'x')", (agent_id, user_id))  # fmt: skip


def write_day(conn: sqlite3.Connection, user_id: str, host: int, rnd: random.Random,
              with_history: bool) -> tuple[str, list[tuple[str, bytes]]]:  # fmt: skip
    """One host's day into `conn`; returns the host id and (snapshot id, body) pairs."""
    host_id, agent_id = f"host-{host}", f"agent-{host}"
    seed(conn, user_id, host_id, agent_id)
    sent = []
    previous: wire.Snapshot | None = None
    last_fp: diff.Fingerprint | None = None
    conn.execute("BEGIN")
    for i, snap in enumerate(day_of_snapshots(host, rnd)):
        body, at, sid = wire.encode(snap), iso(snap.timestamp + timedelta(seconds=2)), f"{host}-{i}"
        hosts.add_snapshot(conn, snapshot_id=sid, org_id=user_id, host_id=host_id,
                           received_at=at, taken_at=iso(snap.timestamp), body=body)  # fmt: skip
        if with_history:
            fp = diff.fingerprint(snap)
            if previous is not None and last_fp is not None and not diff.same(last_fp, fp):
                history.add_changes(conn, org_id=user_id, host_id=host_id, snapshot_id=sid,
                                    at=at, changes=diff.diff(previous, snap))  # fmt: skip
            previous, last_fp = snap, fp
        sent.append((sid, body))
    conn.execute(
        "INSERT INTO hosts (id, org_id, agent_id, hostname, first_seen_at, last_seen_at,"
        " snapshot_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (host_id, user_id, agent_id, f"bench-{host}", iso(DAY0), iso(DAY0), sent[-1][0]),
    )
    conn.execute("COMMIT")
    return host_id, sent


def compact_all(conn: sqlite3.Connection, before: str) -> None:
    """What the background compactor does (history/service.py), synchronously."""
    for user_id, host_id, hour in history.compactable(conn, before, limit=10**9):
        rows = history.rows_between(conn, user_id, host_id, hour + ":", hour + ";")
        conn.execute("BEGIN")
        history.store_segment(conn, user_id, host_id, rows, segments.pack(rows))
        conn.execute("COMMIT")


def thin_all(conn: sqlite3.Connection) -> None:
    """What retention does past the snapshot tier (history/service.py), synchronously."""
    for user_id, host_id, day in history.thinnable_days(conn, "9999", limit=10**9):
        found = history.segments_between(conn, user_id, host_id, day, day + "~", "9999")
        firsts = [segments.unpack(blob)[0] for _, blob in found]
        conn.execute("BEGIN")
        history.store_thinned(conn, user_id, host_id, [i for i, _ in found], firsts,
                              segments.pack(firsts))  # fmt: skip
        conn.execute("COMMIT")


def storage(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    today_db, new_db = work / "today.db", args.history_dir / "kefal.db"
    t_conn = connect(today_db)
    migrate(t_conn)
    n_conn = connect(new_db)
    user_id = n_conn.execute("SELECT id FROM users WHERE username = 'bench'").fetchone()[0]
    t_conn.execute("INSERT INTO users (id, username, password_hash, role, created_at)"
                   " VALUES (?, 'bench', 'x', 'user', 'x')", (user_id,))  # fmt: skip
    sent_all: dict[str, list[tuple[str, bytes]]] = {}
    changes_per_host = []
    started = time.perf_counter()
    for host in range(args.hosts):
        write_day(t_conn, user_id, host, random.Random(host), with_history=False)
        host_id, sent = write_day(n_conn, user_id, host, random.Random(host), with_history=True)
        sent_all[host_id] = sent
        changes_per_host.append(
            n_conn.execute("SELECT COUNT(*) FROM changes WHERE host_id = ?", (host_id,)).fetchone()[
                0
            ]
        )
    generated = time.perf_counter() - started
    started = time.perf_counter()
    compact_all(n_conn, iso(DAY0 + timedelta(days=1)))
    compact_seconds = time.perf_counter() - started
    # every snapshot comes back byte for byte
    checked = 0
    for host_id, sent in sent_all.items():
        for user_seg in n_conn.execute(
            "SELECT body FROM snapshot_segments WHERE host_id = ?", (host_id,)
        ).fetchall():
            for s in segments.unpack(user_seg[0]):
                assert s.body == dict(sent)[s.snapshot_id]
                checked += 1
        latest = history.latest_body(n_conn, user_id, sent[-1][0])
        assert latest == sent[-1][1]
        checked += 1
    assert checked == 1440 * args.hosts, checked
    t_conn.close()
    n_conn.close()
    # the schema's own pages (every table and index has one) are no host's history
    empty_db = work / "empty.db"
    e_conn = connect(empty_db)
    migrate(e_conn)
    e_conn.close()
    empty = used_bytes(empty_db)
    today = used_bytes(today_db) - empty
    full = used_bytes(new_db) - empty
    # keep a full copy for the /changes measurement, thin another
    thin_db = work / "thin.db"
    src = sqlite3.connect(new_db)
    dst = sqlite3.connect(thin_db)
    src.backup(dst)
    src.close()
    thin_conn = connect(thin_db)
    thin_all(thin_conn)
    thin_conn.close()
    dst.close()
    thin = used_bytes(thin_db) - empty
    h = args.hosts
    per_day_today, per_day_full, per_day_thin = today / h, full / h, thin / h
    ninety = 7 * per_day_full + 83 * per_day_thin
    return {
        "hosts": h,
        "snapshots_checked_byte_exact": checked,
        "changes_per_host_day": statistics.median(changes_per_host),
        "bytes_per_snapshot_today": round(per_day_today / 1440),
        "bytes_per_host_day_today": round(per_day_today),
        "bytes_per_host_day_history": round(per_day_full),
        "ratio_7_day_tier": round(per_day_today / per_day_full, 1),
        "bytes_per_host_day_past_7_days": round(per_day_thin),
        "bytes_per_host_90_days": round(ninety),
        "bytes_50_hosts_90_days": round(50 * ninety),
        "bytes_50_hosts_90_days_today_if_kept": round(50 * 90 * per_day_today),
        "bytes_50_hosts_7_days_today": round(50 * 7 * per_day_today),
        "generate_and_ingest_seconds": round(generated, 1),
        "compact_seconds_per_host_hour": round(compact_seconds / (24 * h), 3),
    }


def codecs(hosts_n: int) -> dict[str, Any]:
    """Body bytes per snapshot (no row or index overhead) and compression cost, over each
    host's day in hour-long groups: the options this design was chosen from."""

    def zdict(body: bytes, ref: bytes, level: int) -> bytes:
        co = zlib.compressobj(level, zdict=ref)
        return co.compress(body) + co.flush()

    sizes: dict[str, int] = {}
    spent: dict[str, float] = {}

    def add(name: str, fn: Any, *a: Any) -> None:
        t = time.perf_counter()
        out = fn(*a)
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
        sizes[name] = sizes.get(name, 0) + len(out)

    count = 0
    for host in range(hosts_n):
        bodies = [wire.encode(x) for x in day_of_snapshots(host, random.Random(host))]
        for start in range(0, len(bodies), 60):
            hour = bodies[start : start + 60]
            count += len(hour)
            for i, body in enumerate(hour):
                add("zlib-1 alone (today)", zlib.compress, body, 1)
                for level in (1, 6):
                    if i == 0:
                        add(f"zlib-{level} vs previous, key hourly", zlib.compress, body, level)
                        add(f"zlib-{level} vs hour's key", zlib.compress, body, level)
                    else:
                        add(
                            f"zlib-{level} vs previous, key hourly", zdict, body, hour[i - 1], level
                        )
                        add(f"zlib-{level} vs hour's key", zdict, body, hour[0], level)
            add("zlib-9 stream of the hour", zlib.compress, b"".join(hour), 9)
            add("xz segment of the hour (chosen)", segments.pack,
                [segments.Snapshot("x" * 36, "t" * 24, "t" * 24, b) for b in hour])  # fmt: skip
    return {name: {"bytes_per_snapshot": round(sizes[name] / count),
                   "us_per_snapshot": round(spent[name] / count * 1e6, 1)} for name in sizes}  # fmt: skip


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "kefal_lite", *args], input=stdin, text=True, env=env,
                   check=True, capture_output=True)  # fmt: skip


async def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "kefal_lite", "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(400):
        try:
            (await Conn.open(port)).close()
            return server, port
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("server did not start")


async def changes_latency(data_dir: Path) -> dict[str, Any]:
    env = {**os.environ, "KEFAL_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT / "src")}
    server, port = await start_server(env)
    try:
        conn = await Conn.open(port)
        status, body = await conn.request(
            "POST", "/auth/login", json.dumps({"username": "bench", "password": PASSWORD}).encode(),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 200, body
        auth = {"Authorization": "Bearer " + json.loads(body)["access_token"]}
        path = (f"/api/v1/hosts/host-0/changes?since={iso(DAY0)}"
                f"&until={iso(DAY0 + timedelta(days=1))}")  # fmt: skip
        latencies, total = [], 0
        for _ in range(50):
            t = time.perf_counter()
            status, body = await conn.request("GET", path, b"", auth)
            latencies.append(time.perf_counter() - t)
            assert status == 200, body
            total = json.loads(body)["total"]
        conn.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies.sort()
    return {"changes_in_the_day": total, "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p99_ms": round(latencies[-1] * 1000, 1)}  # fmt: skip


async def ingest_rate(src: Path, seconds: float, agents_n: int = 64) -> tuple[float, float]:
    """Snapshots/s over `seconds`, and the server's CPU time per snapshot (all its threads,
    user + system) in microseconds: on a machine shared with other jobs the rate follows
    their load, while the CPU a snapshot costs the server barely does."""
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "KEFAL_DATA_DIR": data, "PYTHONPATH": str(src)}
        cli(env, "user", "add", "bench", "--password-stdin", stdin=PASSWORD + "\n")
        server, port = await start_server(env)
        try:
            conn = await Conn.open(port)
            agents = []
            for i in range(agents_n):
                status, body = await conn.request(
                    "POST", "/api/v1/enroll",
                    json.dumps({"username": "bench", "password": PASSWORD, "name": f"a{i}"}).encode(),
                    {"Content-Type": "application/json"},
                )  # fmt: skip
                assert status == 200, body
                agents.append(json.loads(body))
            conn.close()
            rnd = random.Random(7)
            bodies = {a["agent_id"]: make_bodies(a["agent_id"], 10, rnd) for a in agents}
            counters = [0] * agents_n

            def ingest(w: int) -> tuple[str, str, bytes, dict[str, str]]:
                agent = agents[w % len(agents)]
                counters[w] += 1
                body = with_now(bodies[agent["agent_id"]][counters[w] % 10])
                return ("POST", "/api/v1/ingest", body,
                        {"Authorization": f"Bearer {agent['token']}",
                         "Content-Type": "application/json"})  # fmt: skip

            await hammer(port, 2, agents_n, ingest)  # warm-up (also ends learning)
            cpu = psutil.Process(server.pid)
            before = sum(cpu.cpu_times()[:2])
            n, _, codes = await hammer(port, seconds, agents_n, ingest)
            spent = sum(cpu.cpu_times()[:2]) - before
            assert set(codes) == {200}, codes
        finally:
            server.terminate()
            server.wait(timeout=30)
    return n / seconds, spent / n * 1e6


def ingest_parts(n: int = 2_000) -> dict[str, Any]:
    """What ingest does for history, per snapshot, in process (thread CPU time) on the load
    generator's bodies: the fingerprint always, and on a change building the new items
    and comparing them with those the host keeps (diff.Resident); decoding for scale."""
    from benchmarks.ingest_load import make_bodies, with_now
    from kefal_lite.graph import FACTS_BLOB, facts

    bodies = [with_now(b) for b in make_bodies("agent-x", 10, random.Random(7))]
    clock = time.thread_time
    spent = {"decode": 0.0, "fingerprint": 0.0, "change": 0.0, "estate_facts": 0.0}
    changed = 0
    resident: diff.Resident | None = None
    for i in range(1, n + 1):
        t0 = clock()
        snap = wire.decode(bodies[i % 10])
        t1 = clock()
        current = diff.fingerprint(snap)
        t2 = clock()
        if resident is None or resident.items is None:
            resident = diff.Resident(current, diff.items(snap))
        elif not diff.same(resident.fingerprint, current):
            after = diff.items(snap)
            diff.changes(resident.items, resident.fingerprint.uptime, after, snap.uptime_seconds)
            resident, changed = diff.Resident(current, after), changed + 1
        t3 = clock()
        FACTS_BLOB.encode(facts("h", snap.hostname, snap))
        t4 = clock()
        for key, a, b in (("decode", t0, t1), ("fingerprint", t1, t2), ("change", t2, t3),
                          ("estate_facts", t3, t4)):  # fmt: skip
            spent[key] += b - a
    return {"snapshots": n, "changed": changed,
            "us_per_snapshot": {k: round(v / n * 1e6, 1) for k, v in spent.items()},
            "us_per_change": round(spent["change"] / max(changed, 1) * 1e6, 1)}  # fmt: skip


async def throughput(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    def export(ref: str, name: str) -> Path:
        (work / name).mkdir()
        archive = subprocess.run(["git", "archive", ref, "src"], cwd=ROOT, check=True,
                                 capture_output=True).stdout  # fmt: skip
        (work / f"{name}.tar").write_bytes(archive)
        with tarfile.open(work / f"{name}.tar") as tar:
            tar.extractall(work / name, filter="data")
        return work / name / "src"

    # the candidate exported too (a commit), so that editing the tree during a long run
    # changes neither side
    trees = {"baseline": export(args.baseline, "baseline"),
             "history": export(args.candidate, "candidate") if args.candidate else ROOT / "src"}  # fmt: skip
    rates: dict[str, list[float]] = {"baseline": [], "history": []}
    cpus: dict[str, list[float]] = {"baseline": [], "history": []}
    for n in range(args.rounds):
        # ABBA: alternate which tree goes first, so a drift in the machine's load over
        # the run (other jobs on its cores) weighs on both alike
        for name in ("baseline", "history") if n % 2 == 0 else ("history", "baseline"):
            rate, cpu = await ingest_rate(trees[name], args.seconds)
            rates[name].append(rate)
            cpus[name].append(cpu)
    base, mine = statistics.median(rates["baseline"]), statistics.median(rates["history"])
    base_cpu, mine_cpu = statistics.median(cpus["baseline"]), statistics.median(cpus["history"])
    return {"baseline_ref": args.baseline, "candidate_ref": args.candidate or "working tree",
            "rounds": {k: [round(v) for v in vs]
                                                      for k, vs in rates.items()},
            "baseline_snapshots_per_s": round(base), "history_snapshots_per_s": round(mine),
            "ratio": round(mine / base, 3),
            "server_cpu_us_per_snapshot": {k: [round(v) for v in vs] for k, vs in cpus.items()},
            "cpu_ratio": round(mine_cpu / base_cpu, 3)}  # fmt: skip


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        args.history_dir = work / "history"
        env = {**os.environ, "KEFAL_DATA_DIR": str(args.history_dir),
               "PYTHONPATH": str(ROOT / "src")}  # fmt: skip
        cli(env, "user", "add", "bench", "--password-stdin", stdin=PASSWORD + "\n")
        report: dict[str, Any] = {"ingest_parts": ingest_parts()}
        if not args.ingest_only:
            report["storage"] = storage(args, work)
            report["codecs"] = codecs(args.hosts)
            report["changes_endpoint"] = await changes_latency(args.history_dir)
        if not args.skip_ingest:
            report["ingest"] = await throughput(args, work)
    print(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", default="main", help="git ref of today's code")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--candidate", help="git ref of the code to compare (default: this tree)")
    parser.add_argument("--ingest-only", action="store_true", help="only the A/B ingest rounds")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
