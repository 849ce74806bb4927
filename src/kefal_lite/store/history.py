"""Host history: change records, and snapshots compacted into hourly segments.

A snapshot is first a row of `snapshots` (zlib-compressed alone, as ingest writes it).
Once its hour is over, the compactor folds the host's rows of that hour into one
`snapshot_segments` row (history/segments.py), except each host's latest snapshot,
which stays a row: ingest diffs against it and the host page shows it. Past the
snapshot tier a host's day of segments becomes one segment of their first snapshots
(one an hour, compressed against each other); past the change tier it goes, with the
change records.
"""

from __future__ import annotations

import sqlite3

import msgspec

from kefal_lite.history import segments
from kefal_lite.history.diff import Change
from kefal_lite.store.hosts import unpack

_LATEST = "SELECT snapshot_id FROM hosts WHERE snapshot_id IS NOT NULL"


class ChangeRecord(msgspec.Struct, frozen=True):
    at: str
    snapshot_id: str
    kind: str
    change: str
    subject: str
    before: str | None
    after: str | None


class SegmentRace(Exception):
    """The rows a segment was built from changed meanwhile (pruned): nothing is written."""


def add_changes(conn: sqlite3.Connection, *, user_id: str, host_id: str, snapshot_id: str,
                at: str, changes: list[Change]) -> None:  # fmt: skip
    conn.executemany(
        "INSERT INTO changes (user_id, host_id, snapshot_id, at, kind, change, subject, before,"
        " after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(user_id, host_id, snapshot_id, at, c.kind, c.change, c.subject, c.before, c.after)
         for c in changes],
    )  # fmt: skip


def list_changes(
    conn: sqlite3.Connection,
    user_id: str,
    host_id: str,
    *,
    since: str,
    until: str,
    kinds: tuple[str, ...] = (),
    limit: int = 500,
    offset: int = 0,
) -> tuple[list[ChangeRecord], int]:
    """A host's change records with since <= at <= until, oldest first."""
    clause = " WHERE user_id = ? AND host_id = ? AND at >= ? AND at <= ?"
    params: list[object] = [user_id, host_id, since, until]
    if kinds:
        clause += f" AND kind IN ({','.join('?' * len(kinds))})"
        params.extend(kinds)
    total = conn.execute("SELECT COUNT(*) FROM changes" + clause, params).fetchone()[0]
    rows = conn.execute(
        "SELECT at, snapshot_id, kind, change, subject, before, after FROM changes" + clause
        + " ORDER BY at, id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()  # fmt: skip
    return [msgspec.convert(dict(zip(r.keys(), r, strict=True)), ChangeRecord) for r in rows], total


def latest_body(conn: sqlite3.Connection, user_id: str, snapshot_id: str) -> bytes | None:
    """A snapshot still stored as a row (a host's latest always is), as ingested."""
    row = conn.execute(
        "SELECT body FROM snapshots WHERE user_id = ? AND id = ?", (user_id, snapshot_id)
    ).fetchone()
    return unpack(row[0]) if row else None


def snapshot_at(
    conn: sqlite3.Connection, user_id: str, host_id: str, at: str
) -> segments.Snapshot | None:
    """The host's snapshot in force at `at`: the last one received at or before it."""
    row = conn.execute(
        "SELECT id, received_at, taken_at, body FROM snapshots"
        " WHERE user_id = ? AND host_id = ? AND received_at <= ?"
        " ORDER BY received_at DESC, id DESC LIMIT 1",
        (user_id, host_id, at),
    ).fetchone()
    best = segments.Snapshot(row[0], row[1], row[2], unpack(row[3]) or b"") if row else None
    seg = conn.execute(
        "SELECT body FROM snapshot_segments WHERE user_id = ? AND host_id = ? AND first_at <= ?"
        " ORDER BY first_at DESC, id DESC LIMIT 1",
        (user_id, host_id, at),
    ).fetchone()
    if seg is not None:
        # Rows and segments may overlap in time (a silent host's latest row gets a segment
        # of its own later): the newer snapshot wins.
        inside = [s for s in segments.unpack(seg[0]) if s.received_at <= at]
        if inside and (best is None or inside[-1].received_at > best.received_at):
            best = inside[-1]
    return best


# --- compaction and retention (background; every tenant, each row keeps its user_id) ---


def compactable(
    conn: sqlite3.Connection, before: str, limit: int = 100
) -> list[tuple[str, str, str]]:
    """(user_id, host_id, hour) of history rows received before `before` (an hour
    boundary), other than hosts' latest snapshots."""
    rows = conn.execute(
        "SELECT user_id, host_id, substr(received_at, 1, 13) AS hour FROM snapshots"
        f" WHERE received_at < ? AND id NOT IN ({_LATEST})"
        " GROUP BY user_id, host_id, hour ORDER BY hour LIMIT ?",
        (before, limit),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def rows_between(conn: sqlite3.Connection, user_id: str, host_id: str, start: str,
                 end: str) -> list[segments.Snapshot]:  # fmt: skip
    rows = conn.execute(
        "SELECT id, received_at, taken_at, body FROM snapshots WHERE user_id = ? AND host_id = ?"
        f" AND received_at >= ? AND received_at < ? AND id NOT IN ({_LATEST})"
        " ORDER BY received_at, id",
        (user_id, host_id, start, end),
    ).fetchall()
    return [segments.Snapshot(r[0], r[1], r[2], unpack(r[3]) or b"") for r in rows]


def store_segment(conn: sqlite3.Connection, user_id: str, host_id: str,
                  snaps: list[segments.Snapshot], blob: bytes) -> int:  # fmt: skip
    """Replace these rows by one segment; SegmentRace (nothing written) if any went."""
    ids = [s.snapshot_id for s in snaps]
    deleted = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        deleted += conn.execute(
            f"DELETE FROM snapshots WHERE user_id = ? AND id IN ({','.join('?' * len(chunk))})"
            f" AND id NOT IN ({_LATEST})",
            [user_id, *chunk],
        ).rowcount
    if deleted != len(ids):
        raise SegmentRace(f"{len(ids) - deleted} of the segment's snapshots went meanwhile")
    conn.execute(
        "INSERT INTO snapshot_segments (user_id, host_id, first_at, last_at, entries, body)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, host_id, snaps[0].received_at, snaps[-1].received_at, len(snaps), blob),
    )
    return len(snaps)


def thinnable_days(
    conn: sqlite3.Connection, before: str, limit: int = 100
) -> list[tuple[str, str, str]]:
    """(user_id, host_id, day) of segments wholly before `before` not thinned yet."""
    rows = conn.execute(
        "SELECT user_id, host_id, substr(first_at, 1, 10) AS day FROM snapshot_segments"
        " WHERE last_at < ? AND thinned = 0 GROUP BY user_id, host_id, day ORDER BY day LIMIT ?",
        (before, limit),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def segments_between(conn: sqlite3.Connection, user_id: str, host_id: str, start: str, end: str,
                     before: str) -> list[tuple[int, bytes]]:  # fmt: skip
    rows = conn.execute(
        "SELECT id, body FROM snapshot_segments WHERE user_id = ? AND host_id = ?"
        " AND first_at >= ? AND first_at < ? AND last_at < ? AND thinned = 0 ORDER BY first_at",
        (user_id, host_id, start, end, before),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def store_thinned(conn: sqlite3.Connection, user_id: str, host_id: str, replaced: list[int],
                  snaps: list[segments.Snapshot], blob: bytes) -> None:  # fmt: skip
    """Replace these segments by one holding `snaps` (their first snapshots)."""
    deleted = conn.execute(
        f"DELETE FROM snapshot_segments WHERE user_id = ? AND thinned = 0"
        f" AND id IN ({','.join('?' * len(replaced))})",
        [user_id, *replaced],
    ).rowcount
    if deleted != len(replaced):
        raise SegmentRace("a segment changed meanwhile")
    conn.execute(
        "INSERT INTO snapshot_segments (user_id, host_id, first_at, last_at, entries, thinned,"
        " body) VALUES (?, ?, ?, ?, ?, 1, ?)",
        (user_id, host_id, snaps[0].received_at, snaps[-1].received_at, len(snaps), blob),
    )


def prune(conn: sqlite3.Connection, before: str, limit: int = 5_000) -> int:
    """Everything of the history received before `before`: segments, rows (but each host's
    latest) and change records. Returns how many snapshots went."""
    gone = conn.execute(
        "SELECT COALESCE(SUM(entries), 0) FROM (SELECT entries FROM snapshot_segments"
        " WHERE last_at < ? ORDER BY last_at LIMIT ?) AS oldest",  # an alias: PostgreSQL needs one
        (before, limit),
    ).fetchone()[0]
    conn.execute(
        "DELETE FROM snapshot_segments WHERE id IN (SELECT id FROM snapshot_segments"
        " WHERE last_at < ? ORDER BY last_at LIMIT ?)",
        (before, limit),
    )
    gone += conn.execute(
        "DELETE FROM snapshots WHERE id IN (SELECT id FROM snapshots WHERE received_at < ?"
        f" AND id NOT IN ({_LATEST}) ORDER BY received_at LIMIT ?)",
        (before, limit),
    ).rowcount
    conn.execute(
        "DELETE FROM changes WHERE id IN (SELECT id FROM changes WHERE at < ? ORDER BY at LIMIT ?)",
        (before, limit),
    )
    return int(gone)


def has_old(conn: sqlite3.Connection, before: str) -> bool:
    for sql in (
        "SELECT 1 FROM snapshot_segments WHERE last_at < ? LIMIT 1",
        f"SELECT 1 FROM snapshots WHERE received_at < ? AND id NOT IN ({_LATEST}) LIMIT 1",
        "SELECT 1 FROM changes WHERE at < ? LIMIT 1",
    ):
        if conn.execute(sql, (before,)).fetchone():
            return True
    return False
