"""The PostgreSQL switch for the tests: KEFAL_TEST_DATABASE_URL (or `pytest --db postgres`)
runs every test that builds its settings with conftest.make_settings on PostgreSQL.

Each test gets its own schema (CREATE SCHEMA + search_path in the URL): a few
milliseconds, where a database per test would copy a template for each. The schemas of a
run are dropped when it ends, and any left by an interrupted run when the next starts.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from pathlib import Path
from typing import Any

ENV = "KEFAL_TEST_DATABASE_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PREFIX = "kefal_test_"


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def _admin() -> Any:
    import psycopg

    return psycopg.connect(os.environ[ENV], autocommit=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop_test_schemas(only_ours: bool) -> None:
    """This run's schemas, and those of runs that are gone (never a concurrent run's)."""
    with _admin() as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (PREFIX + "%",)
        ).fetchall()
        for (name,) in rows:
            pid = name[len(PREFIX):].split("_", 1)[0]
            mine = pid == str(os.getpid())
            if mine or (not only_ours and pid.isdigit() and not _alive(int(pid))):
                conn.execute(f'DROP SCHEMA "{name}" CASCADE')  # type: ignore[arg-type]


def begin_session() -> None:
    if not enabled():
        return
    _drop_test_schemas(only_ours=False)
    with _admin() as conn:
        # In public, once: every test schema finds it through its search_path.
        conn.execute("CREATE EXTENSION IF NOT EXISTS citext SCHEMA public")


def end_session() -> None:
    if enabled() and not os.environ.get("KEFAL_TEST_KEEP_SCHEMAS"):
        _drop_test_schemas(only_ours=True)


# The running test's URL (conftest's autouse fixture sets it, and KEFAL_DATABASE_URL for
# the commands and servers the test starts). The first data dir a test builds settings for
# uses it; another data dir is another server with a store of its own (export from one,
# import into the other), so it gets a schema of its own.
current = ""
data_dirs: dict[Path, str] = {}


def url_for_data_dir(data_dir: Path) -> str:
    if not data_dirs:
        data_dirs[data_dir] = current
    if data_dir not in data_dirs:
        data_dirs[data_dir] = url_for(f"{current} {data_dir}")
    return data_dirs[data_dir]


def url_for(key: str | Path) -> str:
    """A URL whose search_path is a schema of its own for `key` (created if missing)."""
    # the run's pid first: concurrent runs never share (or drop) each other's schemas
    name = f"{PREFIX}{os.getpid()}_{hashlib.sha256(str(key).encode()).hexdigest()[:16]}"
    with _admin() as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')  # type: ignore[arg-type]
    base = os.environ[ENV]
    options = urllib.parse.quote(f"-c search_path={name},public")
    return f"{base}{'&' if '?' in base else '?'}options={options}"


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    from kefal_lite.store import pg

    conn = pg.connect(url)
    try:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def execute_many(url: str, sql: str, rows: list[tuple[Any, ...]]) -> None:
    from kefal_lite.store import pg

    conn = pg.connect(url)
    try:
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    finally:
        conn.close()


def dump(url: str) -> bytes:
    """Every row of every table of the schema, as text: what a file's bytes are to SQLite
    (to check that a secret is stored nowhere)."""
    from kefal_lite.store import pg

    conn = pg.connect(url)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() ORDER BY table_name"
        ).fetchall()]  # fmt: skip
        out = [
            str(row[0]) for t in tables for row in conn.execute(f'SELECT r::text FROM "{t}" r')
        ]
        return "\n".join(out).encode()
    finally:
        conn.close()
