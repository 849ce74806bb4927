from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from kefal_lite.store.db import Conn, Database, DatabaseBusy, connect, open_sync
from kefal_lite.store.lock import DataDirLocked, ServerLock
from kefal_lite.store.migrations import MIGRATIONS, SchemaTooNew, migrate


def _insert(conn: Conn, value: int) -> int:
    conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
    if value < 0:
        raise ValueError("negative")
    return value


def _count(conn: Conn) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])


async def _started(path: Path, **kwargs: int) -> Database:
    db = Database(path, **kwargs)  # type: ignore[arg-type]
    await db.start()
    await db.write(lambda c: c.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)"))
    return db


async def test_pragmas_and_migrations(tmp_path: Path) -> None:
    db = await _started(tmp_path / "k.db")
    try:
        mode = await db.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        fks = await db.read(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0])
        version = await db.read(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
        assert (mode, fks, version) == ("wal", 1, len(MIGRATIONS))
        with pytest.raises(sqlite3.OperationalError):  # readers are read-only
            await db.read(_insert, 1)
    finally:
        await db.close()


async def test_group_commit_batches_concurrent_writes(tmp_path: Path) -> None:
    db = await _started(tmp_path / "k.db")
    try:
        results = await asyncio.gather(*(db.write(_insert, i) for i in range(200)))
        assert results == list(range(200))
        assert await db.read(_count) == 200
        assert db.stats.largest_batch > 1  # they were gathered, not committed one by one
        assert db.stats.batches < 200
    finally:
        await db.close()


async def test_failing_write_does_not_undo_its_batch_neighbours(tmp_path: Path) -> None:
    db = await _started(tmp_path / "k.db")
    try:
        outcomes = await asyncio.gather(
            db.write(_insert, 1),
            db.write(_insert, -1),
            db.write(_insert, 2),
            return_exceptions=True,
        )
        assert outcomes[0] == 1 and outcomes[2] == 2
        assert isinstance(outcomes[1], ValueError)
        rows = await db.read(lambda c: [r[0] for r in c.execute("SELECT v FROM t ORDER BY v")])
        assert rows == [1, 2]  # the failed write's INSERT was rolled back to its savepoint
    finally:
        await db.close()


async def test_full_queue_refuses_instead_of_growing(tmp_path: Path) -> None:
    db = await _started(tmp_path / "k.db", queue_max=4)
    try:
        tasks = [asyncio.ensure_future(db.write(_insert, i)) for i in range(4)]
        await asyncio.sleep(0)  # let them enqueue; the writer has not run yet
        with pytest.raises(DatabaseBusy):
            await db.write(_insert, 99)
        assert await asyncio.gather(*tasks) == [0, 1, 2, 3]
    finally:
        await db.close()


async def test_close_finishes_queued_writes(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    db = await _started(path)
    pending = [asyncio.ensure_future(db.write(_insert, i)) for i in range(50)]
    await asyncio.sleep(0)
    await db.close()
    assert [p.result() for p in pending] == list(range(50))
    conn = connect(path)
    assert _count(conn) == 50
    conn.close()


def test_schema_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    conn = open_sync(tmp_path / "k.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(SchemaTooNew, match="newer release"):
        migrate(conn)
    conn.close()


def test_second_lock_on_a_data_dir_is_refused(tmp_path: Path) -> None:
    first = ServerLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(DataDirLocked, match="already using the data dir"):
            ServerLock(tmp_path).acquire()
    finally:
        first.release()
    again = ServerLock(tmp_path)
    again.acquire()  # free once released
    again.release()
