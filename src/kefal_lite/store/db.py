"""Database: one writer thread with group commit, a pool of reader connections.

Why not one transaction per request: every aiosqlite await is a thread hop, and
each request paying its own COMMIT (an fsync in WAL at checkpoint time, a lock
round-trip always) caps throughput near 1k writes/s here. Instead, requests
queue a function; the writer task takes whatever is queued the moment it is
free (no collection window: that only adds latency), runs the whole batch in
one call on its own thread inside one transaction, and resolves each request's
future after the COMMIT. A SAVEPOINT per item keeps one failing write from
undoing its neighbours.

Entity modules (`store/users.py`, ...) are plain functions `fn(conn, ...)`; they
never BEGIN or COMMIT themselves. SQL there is standard with `?` placeholders,
so a PostgreSQL backend is a new db.py, not a rewrite.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from kefal_lite.datadir import prepare_database
from kefal_lite.store.migrations import migrate

if TYPE_CHECKING:
    from kefal_lite.config import Settings

log = logging.getLogger(__name__)

Conn = sqlite3.Connection
P = ParamSpec("P")
T = TypeVar("T")
_Item = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]

BUSY_TIMEOUT_MS = 5000
BATCH_MAX = 500


class DatabaseBusy(Exception):
    """The write queue is full: the caller should answer 503 with Retry-After."""


def connect(path: Path | str, *, synchronous: str = "NORMAL", readonly: bool = False) -> Conn:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves; check_same_thread is
    # off because a connection is owned by one executor thread but created elsewhere.
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    return conn


@contextlib.contextmanager
def transaction(conn: Conn) -> Iterator[Conn]:
    """One write transaction outside the server (CLI commands, tests' setup)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def open_sync(path: Path, *, synchronous: str = "NORMAL") -> Conn:
    """A migrated connection for the CLI; safe beside a running server (WAL + busy timeout)."""
    prepare_database(path)
    conn = connect(path, synchronous=synchronous)
    migrate(conn)
    return conn


def skip_locked(conn: Conn) -> str:
    """` FOR UPDATE SKIP LOCKED` on PostgreSQL, where several servers claim rows (jobs)
    concurrently; nothing on SQLite, whose single writer already makes a claim exclusive
    and which has no row locks. The one dialect difference the entity SQL asks for."""
    return " FOR UPDATE SKIP LOCKED" if getattr(conn, "dialect", "sqlite") == "postgresql" else ""


def for_settings(settings: Settings) -> Database:
    """The configured store: PostgreSQL when database_url is set, else the SQLite file."""
    if settings.database_url:
        from kefal_lite.store.pg import PgDatabase  # psycopg is the optional extra

        return PgDatabase(
            settings.database_url,
            readers=settings.database_readers,
            queue_max=settings.database_write_queue_max,
        )
    return Database(
        settings.db_path,
        synchronous=settings.database_synchronous,
        readers=settings.database_readers,
        queue_max=settings.database_write_queue_max,
    )


def open_sync_for(settings: Settings) -> Conn:
    """A migrated connection for the CLI on the configured store."""
    if settings.database_url:
        from kefal_lite.store.pg import open_sync as open_pg

        return open_pg(settings.database_url)
    return open_sync(settings.db_path, synchronous=settings.database_synchronous)


@dataclass
class WriterStats:
    batches: int = 0
    writes: int = 0
    failed_writes: int = 0
    largest_batch: int = 0
    last_batch_size: int = 0
    last_commit_seconds: float = 0.0


class Database:
    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        readers: int = 4,
        queue_max: int = 10_000,
        batch_max: int = BATCH_MAX,
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self._reader_count = readers
        self._queue_max = queue_max
        self._batch_max = batch_max
        self.stats = WriterStats()
        # called on the event loop after each committed batch: (writes, seconds)
        self.on_batch: Callable[[int, float], None] | None = None
        self._wconn: Conn | None = None
        self._readers: asyncio.Queue[Conn] | None = None
        self._reader_conns: list[Conn] = []
        self._queue: asyncio.Queue[_Item | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wexec: ThreadPoolExecutor | None = None
        self._rexec: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._prepare()
        self._wexec = ThreadPoolExecutor(1, thread_name_prefix="kefal-writer")
        self._rexec = ThreadPoolExecutor(self._reader_count, thread_name_prefix="kefal-reader")
        self._wconn = await loop.run_in_executor(self._wexec, self._open_writer)
        self._readers = asyncio.Queue()
        for _ in range(self._reader_count):
            rconn = self._open_reader()
            self._reader_conns.append(rconn)
            self._readers.put_nowait(rconn)
        self._queue = asyncio.Queue(maxsize=self._queue_max)
        self._task = asyncio.create_task(self._writer_loop(), name="kefal-writer")

    # The backend's own steps; store/pg.py's PgDatabase overrides these four.
    def _prepare(self) -> None:
        prepare_database(self.path)

    def _open_reader(self) -> Conn:
        return connect(self.path, synchronous=self._synchronous, readonly=True)

    def _open_writer(self) -> Conn:
        conn = connect(self.path, synchronous=self._synchronous)
        migrate(conn)
        return conn

    async def close(self) -> None:
        """Finish every queued write, then close. Nothing acknowledged is lost."""
        if self._queue is not None and self._task is not None:
            await self._queue.put(None)
            await self._task
        loop = asyncio.get_running_loop()
        if self._wconn is not None and self._wexec is not None:
            wconn = self._wconn
            await loop.run_in_executor(self._wexec, self._close_writer, wconn)
            self._wconn = None
        for rconn in self._reader_conns:
            rconn.close()
        self._reader_conns.clear()
        for executor in (self._wexec, self._rexec):
            if executor is not None:
                executor.shutdown(wait=True)
        self._wexec = self._rexec = None

    @staticmethod
    def _close_writer(conn: Conn) -> None:
        # Fold the WAL back into the main file so a copied data dir is complete.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()

    async def write(
        self, fn: Callable[Concatenate[Conn, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(conn, ...)` in the next write batch; return after its COMMIT."""
        if self._queue is None:
            raise RuntimeError("database is not started")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((fn, args, kwargs, fut))
        except asyncio.QueueFull:
            raise DatabaseBusy("the write queue is full") from None
        return await fut

    async def read(
        self, fn: Callable[Concatenate[Conn, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(conn, ...)` on a reader connection (sees every committed write)."""
        if self._readers is None or self._rexec is None:
            raise RuntimeError("database is not started")
        conn = await self._readers.get()
        try:
            call = functools.partial(fn, conn, *args, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(self._rexec, call)
        finally:
            self._readers.put_nowait(conn)

    async def _writer_loop(self) -> None:
        assert self._queue is not None and self._wexec is not None
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._batch_max:
                try:
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            calls = [(fn, args, kwargs) for fn, args, kwargs, _ in batch]
            try:
                outcomes = await loop.run_in_executor(self._wexec, self._run_batch, calls)
            except BaseException as exc:  # the writer must survive anything a batch does
                log.exception("write batch of %d failed", len(batch))
                outcomes = [(False, exc)] * len(batch)
            if self.on_batch is not None:
                self.on_batch(len(batch), self.stats.last_commit_seconds)
            for (_, _, _, fut), (ok, value) in zip(batch, outcomes, strict=True):
                if fut.done():  # the request went away; its write still committed
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)

    async def leader(self, role: str) -> bool:
        """Whether this process runs the cluster-wide timer `role` (silent agents,
        retention). One process owns a SQLite file, so always; PgDatabase elects one."""
        return True

    def _run_batch(
        self, calls: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]
    ) -> list[tuple[bool, Any]]:
        conn = self._wconn
        assert conn is not None
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(False, exc)] * len(calls)
        out: list[tuple[bool, Any]] = []
        for fn, args, kwargs in calls:
            conn.execute("SAVEPOINT item")
            try:
                result = fn(conn, *args, **kwargs)
            except Exception as exc:
                conn.execute("ROLLBACK TO item")
                conn.execute("RELEASE item")
                out.append((False, exc))
            else:
                conn.execute("RELEASE item")
                out.append((True, result))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(False, exc)] * len(calls)
        stats = self.stats
        stats.batches += 1
        stats.writes += len(calls)
        stats.failed_writes += sum(1 for ok, _ in out if not ok)
        stats.last_batch_size = len(calls)
        stats.largest_batch = max(stats.largest_batch, len(calls))
        stats.last_commit_seconds = time.perf_counter() - started
        return out
