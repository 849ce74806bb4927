"""`kefal-lite migrate-to-postgres`: copy a SQLite store into an empty PostgreSQL one.

The source is read inside one read transaction, so a server still writing to the file
(WAL) cannot make the copy inconsistent: it is the database as of that moment. The
target is written in one transaction: a failure leaves it empty, never half-filled.
Tables go parents first (by their foreign keys), rows by COPY, and each table's row
count is compared on both sides before the copy is reported done.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from kefal_lite.store import migrations, pg

BATCH = 2_000


class CopyRefused(Exception):
    """The source or the target is not in a state to copy from or into."""


def _tables(source: sqlite3.Connection) -> list[str]:
    names = [r[0] for r in source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " ORDER BY name"
    ).fetchall()]  # fmt: skip
    parents = {
        name: {r[2] for r in source.execute(f'PRAGMA foreign_key_list("{name}")')} - {name}
        for name in names
    }
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and parents[n] <= set(ordered)]
        if not ready:  # a cycle: none today; copy the rest as they come rather than loop
            ready = [n for n in names if n not in ordered]
        ordered.extend(ready)
    return ordered


def _rows(
    source: sqlite3.Connection, table: str, columns: list[str]
) -> Iterator[tuple[object, ...]]:
    cols = ", ".join(f'"{c}"' for c in columns)
    cur = source.execute(f'SELECT {cols} FROM "{table}" ORDER BY rowid')
    while batch := cur.fetchmany(BATCH):
        yield from (tuple(row) for row in batch)


def copy(source: sqlite3.Connection, target: pg.PgConnection) -> list[tuple[str, int, int]]:
    """Copy every table; return (table, rows in SQLite, rows in PostgreSQL)."""
    (version,) = source.execute("PRAGMA user_version").fetchone()
    if version != len(migrations.MIGRATIONS):
        raise CopyRefused(
            f"the SQLite database is at schema {version}, this kefal-lite at"
            f" {len(migrations.MIGRATIONS)}: start this release on it once (or run"
            " `kefal-lite migrate` with its data dir), then copy"
        )
    pg.migrate(target)
    source.execute("BEGIN")  # one read snapshot for the whole copy
    try:
        tables = _tables(source)
        counts: dict[str, int] = {}
        target.execute("BEGIN")
        try:
            for table in tables:
                busy = target.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone()
                if busy is not None:
                    raise CopyRefused(
                        f"table {table} in the PostgreSQL database already has rows: copy into"
                        " an empty database"
                    )
            for table in tables:
                columns = [r[1] for r in source.execute(f'PRAGMA table_info("{table}")')]
                counts[table] = source.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
                cols = ", ".join(f'"{c}"' for c in columns)
                with target.raw.cursor() as cur:
                    with cur.copy(f'COPY "{table}" ({cols}) FROM STDIN') as out:
                        for row in _rows(source, table, columns):
                            out.write_row(row)
                seq = None
                if "id" in columns:
                    seq = target.execute(
                        "SELECT pg_get_serial_sequence(?, 'id')", (table,)
                    ).fetchone()
                if seq is not None and seq[0] is not None and counts[table]:
                    # an identity column: the next id follows the copied ones
                    target.execute(
                        f'SELECT setval(?, (SELECT MAX(id) FROM "{table}"))', (seq[0],)
                    )
            target.execute("COMMIT")
        except BaseException:
            target.execute("ROLLBACK")
            raise
    finally:
        source.execute("ROLLBACK")
    return [
        (t, counts[t], int(target.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]))  # type: ignore[index]
        for t in tables
    ]
