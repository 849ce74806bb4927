"""The PostgreSQL switch for the tests: KEFAL_TEST_DATABASE_URL (or `pytest --db postgres`)
runs every test that builds its settings with conftest.make_settings on PostgreSQL.

Each data dir gets its own schema (CREATE SCHEMA + search_path in the URL): a few
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


def _drop_test_schemas() -> None:
    with _admin() as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (PREFIX + "%",)
        ).fetchall()
        for (name,) in rows:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')  # type: ignore[arg-type]


def begin_session() -> None:
    if not enabled():
        return
    _drop_test_schemas()
    with _admin() as conn:
        # In public, once: every test schema finds it through its search_path.
        conn.execute("CREATE EXTENSION IF NOT EXISTS citext SCHEMA public")


def end_session() -> None:
    if enabled() and not os.environ.get("KEFAL_TEST_KEEP_SCHEMAS"):
        _drop_test_schemas()


def url_for(data_dir: Path) -> str:
    name = PREFIX + hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
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
