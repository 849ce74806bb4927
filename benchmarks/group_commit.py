"""Group commit vs one transaction per write, at 1, 8 and 64 concurrent writers.

    python benchmarks/group_commit.py [--writes 4000] [--synchronous NORMAL]

Both sides write the same rows (a 1 KB payload and an index) to a fresh SQLite
file in WAL mode with the same PRAGMAs. The baseline is what an aiosqlite
handler does per request: BEGIN, INSERT, COMMIT, each an await (a thread hop).
Only the ratio within one run means anything on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import aiosqlite

from kefal_lite.store.db import Conn, Database

SCHEMA = "CREATE TABLE IF NOT EXISTS w (id INTEGER PRIMARY KEY, k TEXT, payload BLOB)"
INDEX = "CREATE INDEX IF NOT EXISTS w_k ON w(k)"
PAYLOAD = os.urandom(1024)


def _insert(conn: Conn, key: str) -> None:
    conn.execute("INSERT INTO w (k, payload) VALUES (?, ?)", (key, PAYLOAD))


async def _drive(concurrency: int, writes: int, write_one: object) -> float:
    per_worker = writes // concurrency
    started = time.perf_counter()

    async def worker(n: int) -> None:
        for i in range(per_worker):
            await write_one(f"{n}-{i}")  # type: ignore[operator]

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return per_worker * concurrency / (time.perf_counter() - started)


async def group_commit(path: Path, concurrency: int, writes: int, sync: str) -> tuple[float, float]:
    db = Database(path, synchronous=sync)
    await db.start()
    try:
        await db.write(lambda c: (c.execute(SCHEMA), c.execute(INDEX)))
        rate = await _drive(concurrency, writes, lambda key: db.write(_insert, key))
        return rate, db.stats.writes / max(1, db.stats.batches)
    finally:
        await db.close()


async def per_request(path: Path, concurrency: int, writes: int, sync: str) -> float:
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        for pragma in ("journal_mode=WAL", f"synchronous={sync}", "busy_timeout=5000"):
            await conn.execute(f"PRAGMA {pragma}")
        await conn.execute(SCHEMA)
        await conn.execute(INDEX)
        lock = asyncio.Lock()  # one connection: a request waits for the previous COMMIT

        async def write_one(key: str) -> None:
            async with lock:
                await conn.execute("BEGIN IMMEDIATE")
                await conn.execute("INSERT INTO w (k, payload) VALUES (?, ?)", (key, PAYLOAD))
                await conn.execute("COMMIT")

        return await _drive(concurrency, writes, write_one)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=4000)
    parser.add_argument("--synchronous", default="NORMAL", choices=["NORMAL", "FULL"])
    args = parser.parse_args()
    print(f"{args.writes} writes per run, synchronous={args.synchronous}")
    print(f"{'writers':>8} {'per-request/s':>14} {'group/s':>10} {'ratio':>6} {'avg batch':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for concurrency in (1, 8, 64):
            base = await per_request(
                Path(tmp) / f"b{concurrency}.db", concurrency, args.writes, args.synchronous
            )
            rate, batch = await group_commit(
                Path(tmp) / f"g{concurrency}.db", concurrency, args.writes, args.synchronous
            )
            print(
                f"{concurrency:>8} {base:>14.0f} {rate:>10.0f} {rate / base:>6.2f} {batch:>10.1f}"
            )


if __name__ == "__main__":
    asyncio.run(main())
