"""Folding existing history: what a database written before history pays on upgrade.

    python -m benchmarks.history_migration --rows 50000
    python -m benchmarks.history_migration --rows 200000 --hosts 40 --fold-seconds 120

A database at schema 13 (history tables, nothing folded yet) with `--rows` snapshot rows
over `--hosts` hosts, one a minute each, stored as main stored them before history (each
body zlib-compressed alone). Bodies come from benchmarks/history.py's day of churn, so xz
sees the same redundancy as in the storage benchmark. Then, on a copy of that file:

1. `migrate()` (schema 13 -> current), timed: `serve` does not answer before it returns.
2. The background compactor (history/service.py `compact`) on a started Database, timed,
   while a probe writes one small row every 20 ms through the same group-commit writer as
   ingest does: the probe's p50/p99/max latency with and without the compactor running
   says whether folding starves ingest. Then every snapshot is read back by time and
   compared byte for byte with what was stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import tempfile
import time
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.history import DAY0, day_of_snapshots
from kefal_lite import snapshot as wire
from kefal_lite.clock import iso
from kefal_lite.history import service
from kefal_lite.store import history
from kefal_lite.store.db import Database, connect
from kefal_lite.store.migrations import MIGRATIONS, _statements, migrate

SCHEMA = 13  # history's tables exist, the history before them is not folded yet


def build(path: Path, rows: int, hosts_n: int) -> dict[str, list[tuple[str, bytes]]]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for step in MIGRATIONS[:SCHEMA]:
        assert isinstance(step, str)
        for statement in _statements(step):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA}")
    conn.execute("INSERT INTO users (id, username, password_hash, role, created_at)"
                 " VALUES ('u1', 'bench', 'x', 'admin', 'x')")  # fmt: skip
    per_host = rows // hosts_n
    day = [wire.encode(s) for s in day_of_snapshots(0, random.Random(1))]
    kept: dict[str, list[tuple[str, bytes]]] = {}
    for h in range(hosts_n):
        host_id = f"host-{h}"
        conn.execute("INSERT INTO agents (id, user_id, name, token_hash, created_at)"
                     " VALUES (?, 'u1', ?, randomblob(32), 'x')", (f"a{h}", f"a{h}"))  # fmt: skip
        sent = []
        for i in range(per_host):
            body = day[(i + h * 97) % len(day)]
            at = iso(DAY0 + timedelta(minutes=i, seconds=h % 60))
            sid = f"{h:04d}-{i:07d}"
            conn.execute("INSERT INTO snapshots (id, user_id, host_id, received_at, taken_at,"
                         " body) VALUES (?, 'u1', ?, ?, ?, ?)",
                         (sid, host_id, at, at, zlib.compress(body, 1)))  # fmt: skip
            sent.append((at, body))
        conn.execute(
            "INSERT INTO hosts (id, user_id, agent_id, hostname, first_seen_at, last_seen_at,"
            " snapshot_id) VALUES (?, 'u1', ?, ?, ?, ?, ?)",
            (host_id, f"a{h}", host_id, iso(DAY0), sent[-1][0], f"{h:04d}-{per_host - 1:07d}"),
        )
        kept[host_id] = sent[:: max(1, per_host // 500)] + sent[-1:]  # a sample to verify
    conn.execute("COMMIT")
    conn.close()
    return kept


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * q))] * 1000, 1)


async def probe(db: Database, stop: asyncio.Event) -> list[float]:
    """Latency of one small write through the writer, every 20 ms, until `stop`."""

    def touch(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE users SET created_at = 'x' WHERE id = 'u1'")

    out = []
    while not stop.is_set():
        t = time.perf_counter()
        await db.write(touch)
        out.append(time.perf_counter() - t)
        await asyncio.sleep(0.02)
    return out


async def compactor(path: Path, limit: float | None) -> dict[str, Any]:
    db = Database(path)
    await db.start()
    try:
        stop = asyncio.Event()
        task = asyncio.create_task(probe(db, stop))
        await asyncio.sleep(3)
        stop.set()
        idle = await task
        stop.clear()
        task = asyncio.create_task(probe(db, stop))
        rows = "SELECT COUNT(*) FROM snapshots"
        before = await db.read(lambda c: c.execute(rows).fetchone()[0])
        t = time.perf_counter()
        folding = asyncio.create_task(service.compact(db, DAY0 + timedelta(days=3650)))
        done, _ = await asyncio.wait([folding], timeout=limit)
        spent = time.perf_counter() - t
        if not done:  # --fold-seconds: stopped midway, as a server stopping would stop it
            folding.cancel()
            await asyncio.gather(folding, return_exceptions=True)
        moved = before - await db.read(lambda c: c.execute(rows).fetchone()[0])
        stop.set()
        busy = await task
    finally:
        await db.close()
    return {"snapshots_folded": moved, "finished": bool(done), "seconds": round(spent, 1),
            "ms_per_snapshot": round(spent / max(moved, 1) * 1000, 3),
            "probe_write_ms_idle": {"p50": pct(idle, 0.5), "p99": pct(idle, 0.99),
                                    "max": pct(idle, 1.0)},
            "probe_write_ms_while_folding": {"p50": pct(busy, 0.5), "p99": pct(busy, 0.99),
                                             "max": pct(busy, 1.0), "n": len(busy)}}  # fmt: skip


def verify(path: Path, kept: dict[str, list[tuple[str, bytes]]], finished: bool) -> int:
    conn = connect(path)
    n = 0
    try:
        for host_id, sent in kept.items():
            for at, body in sent:
                got = history.snapshot_at(conn, "u1", host_id, at)
                assert got is not None and got.body == body and got.received_at == at, at
                n += 1
        left = conn.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
        assert left == len(kept) or not finished, f"{left} rows left unfolded"
    finally:
        conn.close()
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--fold-seconds", type=float,
                        help="stop the compactor after this long (reads are verified midway)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        original = Path(tmp) / "v13.db"
        t = time.perf_counter()
        kept = build(original, args.rows, args.hosts)
        built = time.perf_counter() - t
        work = Path(tmp) / "kefal.db"
        shutil.copyfile(original, work)
        conn = connect(work)
        t = time.perf_counter()
        migrate(conn)
        migration = time.perf_counter() - t
        conn.close()
        report: dict[str, Any] = {
            "rows": args.rows, "hosts": args.hosts, "build_seconds": round(built, 1),
            "migrate_seconds": round(migration, 2),
            "migrate_ms_per_snapshot": round(migration / args.rows * 1000, 3),
        }  # fmt: skip
        report["compactor"] = asyncio.run(compactor(work, args.fold_seconds))
        report["verified_byte_exact"] = verify(work, kept, report["compactor"]["finished"])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
