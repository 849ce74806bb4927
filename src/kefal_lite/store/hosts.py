"""Hosts (one per agent) with their detection state; snapshot history.

A host row points at its latest snapshot (kept out of retention pruning and
compaction, store/history.py) rather than holding a second copy of it: every
ingest writes the body once.
"""

from __future__ import annotations

import sqlite3
import zlib

import msgspec

from kefal_lite.store.rows import struct

# Snapshot bodies are stored zlib-compressed (level 1): 12.4 KB of JSON becomes 2.7 KB,
# for ~24 us on the writer thread (zlib lets go of the GIL while it works). A week of
# minute-by-minute history for 100 hosts is then ~2.7 GB instead of ~12.5 GB.
_ZLIB = 0x78  # the first byte of a zlib stream; JSON starts with "{" or whitespace


def pack(body: bytes) -> bytes:
    return zlib.compress(body, 1)


def unpack(blob: bytes | None) -> bytes | None:
    if blob is None or not blob or blob[0] != _ZLIB:
        return blob  # empty, or stored before compression
    return zlib.decompress(blob)


class HostRef(msgspec.Struct, frozen=True):
    """What ingest needs to resume a host: its id, silence flag and engine state."""

    host_id: str
    silent: bool
    state: bytes | None
    snapshot_id: str | None = None


class Host(msgspec.Struct, frozen=True):
    id: str
    org_id: str
    agent_id: str
    hostname: str
    os: str | None
    kernel: str | None
    agent_version: str | None
    first_seen_at: str
    last_seen_at: str
    snapshot_id: str | None
    silent: bool
    latest: bytes | None


_COLUMNS = (
    "h.id, h.org_id, h.agent_id, h.hostname, h.os, h.kernel, h.agent_version, h.first_seen_at,"
    " h.last_seen_at, h.snapshot_id, h.silent"
)
_WITH_LATEST = (
    f"SELECT {_COLUMNS}, s.body AS latest FROM hosts h"
    " LEFT JOIN snapshots s ON s.id = h.snapshot_id"
)


def _host(row: sqlite3.Row, with_latest: bool) -> Host:
    # `latest`: the latest snapshot's body, joined (compressed at rest)
    latest = unpack(row["latest"]) if with_latest else None
    return struct(Host, row, silent=bool(row["silent"]), latest=latest)


def ref_by_agent(conn: sqlite3.Connection, org_id: str, agent_id: str) -> HostRef | None:
    row = conn.execute(
        "SELECT id AS host_id, silent, state, snapshot_id FROM hosts"
        " WHERE org_id = ? AND agent_id = ?",
        (org_id, agent_id),
    ).fetchone()
    return struct(HostRef, row, silent=bool(row["silent"])) if row else None


def record(
    conn: sqlite3.Connection,
    *,
    host_id: str,
    org_id: str,
    agent_id: str,
    hostname: str,
    os: str,
    kernel: str,
    agent_version: str | None,
    now: str,
    snapshot_id: str,
    state: bytes,
    facts: bytes | None = None,
) -> None:
    """Make this snapshot the host's latest (creating the host on its first snapshot), with
    its estate facts (graph.FACTS_BLOB) when given."""
    conn.execute(
        "INSERT INTO hosts (id, org_id, agent_id, hostname, os, kernel, agent_version,"
        " first_seen_at, last_seen_at, snapshot_id, state, silent, facts, facts_of)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, os = excluded.os,"
        " kernel = excluded.kernel, agent_version = excluded.agent_version,"
        " last_seen_at = excluded.last_seen_at, snapshot_id = excluded.snapshot_id,"
        " state = excluded.state, silent = 0, facts = excluded.facts,"
        " facts_of = excluded.facts_of",
        (host_id, org_id, agent_id, hostname, os, kernel, agent_version, now, now, snapshot_id,
         state, facts, snapshot_id if facts is not None else None),
    )  # fmt: skip
    conn.execute(
        "UPDATE agents SET hostname = ?, agent_version = ?, last_seen_at = ?"
        " WHERE id = ? AND org_id = ?",
        (hostname, agent_version, now, agent_id, org_id),
    )


def add_snapshot(
    conn: sqlite3.Connection,
    *,
    snapshot_id: str,
    org_id: str,
    host_id: str,
    received_at: str,
    taken_at: str,
    body: bytes,
) -> None:
    conn.execute(
        "INSERT INTO snapshots (id, org_id, host_id, received_at, taken_at, body)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (snapshot_id, org_id, host_id, received_at, taken_at, pack(body)),
    )


def get(conn: sqlite3.Connection, org_id: str, host_id: str) -> Host | None:
    row = conn.execute(
        _WITH_LATEST + " WHERE h.org_id = ? AND h.id = ?", (org_id, host_id)
    ).fetchone()
    return _host(row, True) if row else None


def list_for_user(conn: sqlite3.Connection, org_id: str) -> list[Host]:
    rows = conn.execute(
        _WITH_LATEST + " WHERE h.org_id = ? ORDER BY h.hostname, h.id", (org_id,)
    ).fetchall()
    return [_host(row, True) for row in rows]


def silent_past(conn: sqlite3.Connection, invariant_id: str, cutoff: str) -> list[Host]:
    """Hosts whose last snapshot is older than `cutoff` and on which this rule has not
    fired since that snapshot (all tenants: the timer works for everyone; every row
    carries its org_id). Each rule keeps its own timer, so no rule's firing, however
    early, stands in for another's."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM hosts h WHERE h.last_seen_at < ?"
        " AND EXISTS (SELECT 1 FROM agents a WHERE a.id = h.agent_id AND a.status = 'active')"
        " AND NOT EXISTS (SELECT 1 FROM silent_timers t WHERE t.host_id = h.id"
        " AND t.invariant_id = ? AND t.last_seen_at = h.last_seen_at)",
        (cutoff, invariant_id),
    ).fetchall()
    return [_host(row, False) for row in rows]


def mark_silent(conn: sqlite3.Connection, org_id: str, host_id: str, last_seen_at: str,
                invariant_ids: list[str]) -> bool | None:  # fmt: skip
    """Record that these rules fired in the silence that began at `last_seen_at`. None when
    the host has reported since (nothing recorded); else whether it is newly silent."""
    row = conn.execute(
        "SELECT silent FROM hosts WHERE org_id = ? AND id = ? AND last_seen_at = ?",
        (org_id, host_id, last_seen_at),
    ).fetchone()
    if row is None:
        return None
    conn.execute("UPDATE hosts SET silent = 1 WHERE org_id = ? AND id = ?", (org_id, host_id))
    for invariant_id in invariant_ids:
        conn.execute(
            "INSERT INTO silent_timers (host_id, invariant_id, last_seen_at) VALUES (?, ?, ?)"
            " ON CONFLICT (host_id, invariant_id)"
            " DO UPDATE SET last_seen_at = excluded.last_seen_at",
            (host_id, invariant_id, last_seen_at),
        )
    return not row[0]


def list_meta_for_user(conn: sqlite3.Connection, org_id: str) -> list[Host]:
    """Every host of the user without snapshot bodies (the graph fetches only what changed)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM hosts h WHERE h.org_id = ? ORDER BY h.hostname, h.id",
        (org_id,),
    ).fetchall()
    return [_host(row, False) for row in rows]


def snapshot_bodies(
    conn: sqlite3.Connection, org_id: str, snapshot_ids: list[str]
) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for start in range(0, len(snapshot_ids), 500):  # stay under SQLite's variable limit
        chunk = snapshot_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT id, body FROM snapshots WHERE org_id = ? AND id IN ({marks})",
            [org_id, *chunk],
        ).fetchall()
        out.update({r[0]: unpack(r[1]) or b"" for r in rows})
    return out


class HostSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A row of the host list: what a table of hosts shows, without snapshot bodies."""

    host_id: str
    hostname: str
    agent_id: str
    os: str | None
    kernel: str | None
    agent_version: str | None
    status: str  # online | silent
    first_seen_at: str
    last_seen_at: str
    open_incidents: int


def _like(text: str) -> str:
    """A LIKE pattern matching `text` literally (ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_page(
    conn: sqlite3.Connection,
    org_id: str,
    *,
    status: str | None = None,
    os: str | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[HostSummary], int]:
    """The user's hosts by hostname, filtered: `status` online|silent, `os` (the OS name,
    case-insensitive, a prefix: "linux", "ubuntu 24"), `q` (a substring of the hostname)."""
    clause = " WHERE h.org_id = ?"
    params: list[object] = [org_id]
    if status is not None:
        clause += " AND h.silent = ?"
        params.append(1 if status == "silent" else 0)
    if os:
        clause += " AND lower(h.os) LIKE ? ESCAPE '\\'"
        params.append(_like(os.lower()) + "%")
    if q:
        clause += " AND lower(h.hostname) LIKE ? ESCAPE '\\'"
        params.append("%" + _like(q.lower()) + "%")
    total = conn.execute("SELECT COUNT(*) FROM hosts h" + clause, params).fetchone()[0]
    rows = conn.execute(
        "SELECT h.id AS host_id, h.hostname, h.agent_id, h.os, h.kernel, h.agent_version,"
        " CASE WHEN h.silent = 1 THEN 'silent' ELSE 'online' END AS status, h.first_seen_at,"
        " h.last_seen_at, (SELECT COUNT(*) FROM incidents i WHERE i.org_id = h.org_id"
        " AND i.host_id = h.id AND i.status IN ('open', 'acknowledged')) AS open_incidents"
        " FROM hosts h" + clause + " ORDER BY h.hostname, h.id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [msgspec.convert(dict(zip(r.keys(), r, strict=True)), HostSummary) for r in rows], total


def exists(conn: sqlite3.Connection, org_id: str, host_id: str) -> bool:
    row = conn.execute("SELECT 1 FROM hosts WHERE id = ? AND org_id = ?", (host_id, org_id))
    return row.fetchone() is not None


def set_state(conn: sqlite3.Connection, org_id: str, host_id: str, state: bytes) -> None:
    """Replace the engine state outside an ingest (a value accepted into the baseline)."""
    conn.execute(
        "UPDATE hosts SET state = ? WHERE id = ? AND org_id = ?", (state, host_id, org_id)
    )
