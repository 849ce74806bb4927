"""Host groups: the name a person gives a host (prod, dev, ...) for the estate graph."""

from __future__ import annotations

import sqlite3


def groups(conn: sqlite3.Connection, org_id: str) -> dict[str, str]:
    """host id -> group, for the user's hosts that have one."""
    rows = conn.execute(
        "SELECT id, host_group FROM hosts WHERE org_id = ? AND host_group IS NOT NULL",
        (org_id,),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def group(conn: sqlite3.Connection, org_id: str, host_id: str) -> str | None:
    row = conn.execute(
        "SELECT host_group FROM hosts WHERE org_id = ? AND id = ?", (org_id, host_id)
    ).fetchone()
    return row[0] if row else None


def set_group(conn: sqlite3.Connection, org_id: str, host_id: str, group: str | None) -> bool:
    """False when the user has no such host (nothing changed)."""
    cur = conn.execute(
        "UPDATE hosts SET host_group = ? WHERE id = ? AND org_id = ?", (group, host_id, org_id)
    )
    return cur.rowcount > 0


def facts(
    conn: sqlite3.Connection, org_id: str, host_ids: list[str]
) -> dict[str, tuple[str, bytes]]:
    """host id -> (the snapshot they were taken from, facts) of those of the user's hosts
    that have them (ingest writes them with the host row: store/hosts.py record)."""
    out: dict[str, tuple[str, bytes]] = {}
    for start in range(0, len(host_ids), 500):  # stay under SQLite's variable limit
        chunk = host_ids[start : start + 500]
        rows = conn.execute(
            "SELECT id, facts_of, facts FROM hosts WHERE org_id = ? AND facts IS NOT NULL"
            f" AND id IN ({','.join('?' * len(chunk))})",
            [org_id, *chunk],
        ).fetchall()
        out.update({r[0]: (r[1], r[2]) for r in rows})
    return out


def tenants_with_hosts(conn: sqlite3.Connection) -> list[str]:
    """Every user id with at least one host (the estate timer works for everyone)."""
    return [r[0] for r in conn.execute("SELECT DISTINCT org_id FROM hosts ORDER BY org_id")]


def critical_hosts(conn: sqlite3.Connection, org_id: str, exclude_prefix: str) -> set[str]:
    """Hosts with an open or acknowledged critical incident not raised by `exclude_prefix`."""
    rows = conn.execute(
        "SELECT DISTINCT host_id FROM incidents WHERE org_id = ? AND severity = 'critical'"
        " AND status IN ('open', 'acknowledged') AND substr(invariant_id, 1, ?) <> ?",
        (org_id, len(exclude_prefix), exclude_prefix),
    ).fetchall()
    return {r[0] for r in rows}


def active_by_prefix(
    conn: sqlite3.Connection, org_id: str, prefix: str
) -> dict[tuple[str, str, str], str]:
    """(host id, invariant id, subject) -> incident id of the user's active incidents whose
    rule id starts with `prefix`."""
    rows = conn.execute(
        "SELECT id, host_id, invariant_id, subject FROM incidents WHERE org_id = ?"
        " AND status IN ('open', 'acknowledged') AND substr(invariant_id, 1, ?) = ?",
        (org_id, len(prefix), prefix),
    ).fetchall()
    return {(r[1], r[2], r[3]): r[0] for r in rows}
