"""PostgreSQL backend: the same Database (group commit, readers) over psycopg 3.

Selected by `database_url = "postgresql://..."` (env KEFAL_DATABASE_URL); without it the
SQLite file in the data dir stays the store, and nothing here is imported (psycopg is the
optional `postgres` extra).

Why psycopg 3, sync: the entity modules are plain functions over a connection, run on an
executor thread; psycopg's sync connection is exactly that shape, and at 8 writers it
matched asyncpg on an ingest-like transaction (benchmarks/README.md, "PostgreSQL
driver"), where COMMIT dominates. asyncpg would have meant an async twin of every entity
function.

`PgConnection` presents the slice of sqlite3.Connection the entity modules use
(execute, executemany, fetch*, rowcount, in_transaction) and translates on the way:
`?` placeholders become `%s` (never inside a string literal or quoted identifier), a
literal `%` is doubled for psycopg, `BEGIN IMMEDIATE` is `BEGIN`, a PRAGMA that only
tunes SQLite is a no-op. Rows answer by column name and by position like sqlite3.Row,
so store/rows.py and tuple unpacking work unchanged. psycopg's errors come back as
sqlite3's DB-API classes (IntegrityError stays IntegrityError), so the entity modules
keep catching one set of exceptions whatever the backend.

The migrations are the SQLite list, translated statement by statement (`ddl`), not a
parallel PostgreSQL list: migrations.py is append-only and shared by every branch, and
a second list would have to be written twice for every future migration and could
drift. The translation is small because the DDL sticks to portable types.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import psycopg
import psycopg.adapt
import psycopg.errors
import psycopg.pq
from psycopg.rows import RowMaker

from kefal_lite.store import migrations
from kefal_lite.store.db import BATCH_MAX, Conn, Database

log = logging.getLogger(__name__)

# Advisory lock keys: (a number per purpose, the schema's hash). Advisory locks are per
# database; the schema half keeps two deployments (or two test schemas) in one database
# from electing or migrating for each other.
MIGRATE_LOCK = 0x6B656661  # "kefa"
VERSION_TABLE = "kefal_schema_version"


class Row:
    """sqlite3.Row's interface: row["name"], row[0], keys(), iteration, len."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key]]
            except KeyError:
                # sqlite3.Row is case-insensitive; PostgreSQL folds unquoted aliases to lower
                return self._values[self._index[key.lower()]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return self._values == other._values and self._index == other._index
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"


def _row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[Row]:
    index = {col.name: i for i, col in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> Row:
        return Row(values, index)

    return make


class _BoolAsInt(psycopg.adapt.Dumper):
    """SQLite stores booleans as 0/1 INTEGER columns and the entity modules pass Python
    bools for them; PostgreSQL refuses a boolean into an integer column."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class _NumericLoader(psycopg.adapt.Loader):
    """SUM() and AVG() of integers are numeric in PostgreSQL; SQLite answers int (or
    float). Decimal would reach Structs typed int and fail there."""

    def load(self, data: Any) -> Any:
        text = bytes(data).decode()
        if "." in text or "e" in text or "N" in text:
            return float(text)
        return int(text)


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """SQLite-dialect statement -> psycopg: `?` -> `%s` outside literals, `%` -> `%%`."""
    stripped = sql.lstrip()
    head = stripped[:16].upper()
    if head.startswith("BEGIN"):
        return "BEGIN"
    if head.startswith("PRAGMA"):
        # Tuning for SQLite's file (WAL, busy timeout, foreign_keys...): nothing to do here.
        return "SELECT 1 WHERE false"
    out: list[str] = []
    quote = ""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if quote:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
            continue
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


_NOCASE = re.compile(r"\bTEXT\b([^,\n]*?)\s+COLLATE\s+NOCASE\b", re.IGNORECASE)
_INT_PK = re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\b", re.IGNORECASE)


def ddl(statement: str) -> str:
    """One migration statement, SQLite -> PostgreSQL.

    COLLATE NOCASE -> CITEXT (case-insensitive UNIQUE and =, and LIKE still works, which
    a nondeterministic collation does not allow in PostgreSQL 15); INTEGER PRIMARY KEY
    (SQLite's rowid alias) -> an identity column; INTEGER -> BIGINT (SQLite integers are
    64-bit); BLOB -> BYTEA; other TEXT -> TEXT COLLATE "C", so ordering and range
    comparisons on ids and ISO timestamps are byte order as in SQLite, whatever locale
    the operator's database was created with.
    """
    s = _NOCASE.sub(r"CITEXT\1", statement)
    s = _INT_PK.sub("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", s)
    s = re.sub(r"\bINTEGER\b", "BIGINT", s)
    s = re.sub(r"\bBLOB\b", "BYTEA", s)
    s = re.sub(r"(?<!CI)\bTEXT\b", 'TEXT COLLATE "C"', s)
    return s


def _sqlite_error(exc: psycopg.Error) -> sqlite3.Error:
    if isinstance(exc, psycopg.IntegrityError):
        return sqlite3.IntegrityError(str(exc))
    if isinstance(exc, psycopg.OperationalError):
        return sqlite3.OperationalError(str(exc))
    if isinstance(exc, psycopg.ProgrammingError):
        return sqlite3.ProgrammingError(str(exc))
    return sqlite3.DatabaseError(str(exc))


class PgCursor:
    __slots__ = ("_cur",)

    def __init__(self, cur: psycopg.Cursor[Row]) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    @property
    def description(self) -> Any:
        return self._cur.description

    @property
    def lastrowid(self) -> None:
        # No rowid in PostgreSQL: write INSERT ... RETURNING id (portable to SQLite 3.35+).
        raise NotImplementedError("use INSERT ... RETURNING id")

    def fetchone(self) -> Row | None:
        if self._cur.pgresult is None or self._cur.description is None:
            return None
        return self._cur.fetchone()

    def fetchall(self) -> list[Row]:
        if self._cur.description is None:
            return []
        return self._cur.fetchall()

    def fetchmany(self, size: int = 1) -> list[Row]:
        if self._cur.description is None:
            return []
        return self._cur.fetchmany(size)

    def __iter__(self) -> Iterator[Row]:
        if self._cur.description is None:
            return iter(())
        return iter(self._cur)


class PgConnection:
    """The sqlite3.Connection surface the store uses, over one psycopg connection in
    autocommit mode (BEGIN/COMMIT are ours, as with isolation_level=None)."""

    dialect = "postgresql"  # store/db.py's skip_locked asks

    def __init__(self, raw: psycopg.Connection[Row]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> PgCursor:
        cur = self.raw.cursor()
        try:
            cur.execute(translate(sql), params)
        except psycopg.Error as exc:
            raise _sqlite_error(exc) from exc
        return PgCursor(cur)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> PgCursor:
        cur = self.raw.cursor()
        try:
            cur.executemany(translate(sql), seq)
        except psycopg.Error as exc:
            raise _sqlite_error(exc) from exc
        return PgCursor(cur)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


def connect(url: str, *, readonly: bool = False) -> PgConnection:
    try:
        raw = psycopg.connect(url, autocommit=True, row_factory=_row_factory)
        if readonly:
            # SET, not an `options` argument: that would replace the URL's own options
            # (a search_path, for one).
            raw.execute("SET default_transaction_read_only = on")
    except psycopg.Error as exc:
        raise _sqlite_error(exc) from exc
    raw.adapters.register_dumper(bool, _BoolAsInt)
    raw.adapters.register_loader("numeric", _NumericLoader)
    return PgConnection(raw)


def migrate(conn: PgConnection) -> int:
    """Apply the missing migrations, each in its own transaction, under an advisory lock
    so several processes starting at once migrate once (the others wait, then see the
    version and apply nothing)."""
    total = len(migrations.MIGRATIONS)
    conn.execute("SELECT pg_advisory_lock(?, hashtext(current_schema()))", (MIGRATE_LOCK,))
    try:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version BIGINT NOT NULL)")
        conn.execute("CREATE EXTENSION IF NOT EXISTS citext")
        row = conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone()
        if row is None:
            conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (0)")
            version = 0
        else:
            version = int(row[0])
        if version > total:
            raise migrations.SchemaTooNew(
                f"the database is at schema {version} but this kefal-lite knows {total}:"
                " it was written by a newer release; upgrade kefal-lite"
            )
        for number in range(version + 1, total + 1):
            conn.execute("BEGIN")
            try:
                step = migrations.MIGRATIONS[number - 1]
                if isinstance(step, str):
                    for statement in migrations._statements(step):
                        conn.execute(ddl(statement))
                else:
                    step(conn)  # type: ignore[arg-type]
                conn.execute(f"UPDATE {VERSION_TABLE} SET version = ?", (number,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    finally:
        conn.execute("SELECT pg_advisory_unlock(?, hashtext(current_schema()))", (MIGRATE_LOCK,))
    return total


def schema_version(conn: PgConnection) -> int:
    row = conn.execute(
        "SELECT to_regclass(?) IS NOT NULL", (VERSION_TABLE,)
    ).fetchone()
    if row is None or not row[0]:
        return 0
    got = conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone()
    return int(got[0]) if got is not None else 0


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


class PgDatabase(Database):
    """Group commit and a reader pool as on SQLite, over PostgreSQL connections.

    One writer connection still gathers concurrent writes into one transaction: the
    entity modules and use cases were written for serialized writes (a first
    registration becoming admin is decided inside the write transaction), and one
    COMMIT per batch is also what makes PostgreSQL fast here (the driver benchmark is
    bound by COMMIT). Several processes on one database are the next step (issue #22).
    """

    def __init__(
        self,
        url: str,
        *,
        readers: int = 4,
        queue_max: int = 10_000,
        batch_max: int = BATCH_MAX,
    ) -> None:
        super().__init__(Path(), readers=readers, queue_max=queue_max, batch_max=batch_max)
        self.url = url

    def _prepare(self) -> None:
        self._leader_conn: PgConnection | None = None
        self._led: set[str] = set()
        self._lead_lock = threading.Lock()  # ticks may ask at once, from reader threads

    async def leader(self, role: str) -> bool:
        """Elected by a session advisory lock per role on a connection of its own: the
        first process to ask holds it for as long as it lives; when it dies, its
        connection closes, the lock goes with it, and the next process to ask takes over.
        Asked before each tick, so a lost connection is noticed within one period."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._rexec, self._try_lead, role)

    def _try_lead(self, role: str) -> bool:
        with self._lead_lock:
            return self._try_lead_locked(role)

    def _try_lead_locked(self, role: str) -> bool:
        key = zlib.crc32(f"kefal-lite leader {role}".encode()) - 2**31  # an int4
        try:
            if self._leader_conn is None:
                self._leader_conn = connect(self.url)
                self._led.clear()
            if role in self._led:
                self._leader_conn.execute("SELECT 1")  # still connected, so still holding it
                return True
            row = self._leader_conn.execute(
                "SELECT pg_try_advisory_lock(?, hashtext(current_schema()))", (key,)
            ).fetchone()
        except sqlite3.Error:
            log.warning("leader election for %s failed; retrying at the next tick", role)
            if self._leader_conn is not None:
                with contextlib.suppress(Exception):
                    self._leader_conn.close()
            self._leader_conn = None
            self._led.clear()
            return False
        if row is not None and row[0]:
            self._led.add(role)
            return True
        return False

    async def close(self) -> None:
        await super().close()
        if self._leader_conn is not None:
            self._leader_conn.close()  # releases the leader locks: another process takes over
            self._leader_conn = None

    def _open_reader(self) -> Conn:
        return cast(Conn, connect(self.url, readonly=True))

    def _open_writer(self) -> Conn:
        conn = connect(self.url)
        migrate(conn)
        return cast(Conn, conn)

    @staticmethod
    def _close_writer(conn: Conn) -> None:
        conn.close()


def open_sync(url: str) -> Conn:
    """A migrated connection for the CLI; safe beside running servers."""
    conn = connect(url)
    migrate(conn)
    return cast(Conn, conn)
