"""Notification channels and the notify jobs queued inside the transaction that caused them."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

import msgspec

from kefal_lite.clock import iso, parse_iso
from kefal_lite.store import jobs
from kefal_lite.store.rows import struct

RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
FLAP_LIMIT = 4  # silent/back messages per host per hour; more means the host flaps


class Channel(msgspec.Struct, frozen=True):
    id: str
    org_id: str
    name: str
    url_sealed: str
    url_masked: str
    secret_sealed: str | None
    min_severity: str
    created_at: str
    last_success_at: str | None
    last_error: str | None
    last_error_at: str | None


_FIELDS = Channel.__struct_fields__
_COLUMNS = ", ".join(_FIELDS)


def add(conn: sqlite3.Connection, channel: Channel) -> None:
    conn.execute(
        f"INSERT INTO channels ({_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))})",
        msgspec.structs.astuple(channel),
    )


def list_for_user(conn: sqlite3.Connection, org_id: str) -> list[Channel]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM channels WHERE org_id = ? ORDER BY created_at, id", (org_id,)
    ).fetchall()
    return [struct(Channel, r) for r in rows]


def get(conn: sqlite3.Connection, channel_id: str, org_id: str | None = None) -> Channel | None:
    if org_id is None:  # the delivery job: the channel id came from our own jobs table
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM channels WHERE id = ?", (channel_id,)
        ).fetchone()
    else:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM channels WHERE id = ? AND org_id = ?", (channel_id, org_id)
        ).fetchone()
    return struct(Channel, row) if row else None


def delete(conn: sqlite3.Connection, org_id: str, channel_id: str) -> bool:
    """False: no such channel of this tenant."""
    cur = conn.execute("DELETE FROM channels WHERE id = ? AND org_id = ?", (channel_id, org_id))
    return cur.rowcount == 1


def record_result(conn: sqlite3.Connection, channel_id: str, now: str, error: str | None) -> None:
    if error is None:
        conn.execute("UPDATE channels SET last_success_at = ? WHERE id = ?", (now, channel_id))
    else:
        conn.execute(
            "UPDATE channels SET last_error = ?, last_error_at = ? WHERE id = ?",
            (error[:500], now, channel_id),
        )


def queue(conn: sqlite3.Connection, *, org_id: str, host_id: str, event: str,
          incident_id: str, severity: str, now: str) -> int:  # fmt: skip
    """One notify job per channel of the tenant that wants this severity. Host silent/back
    messages are rate limited per host, so a flapping host does not flood anyone."""
    if event in ("host.silent", "host.recovered"):
        hour_ago = iso(parse_iso(now) - timedelta(hours=1))
        recent = conn.execute(
            "SELECT COUNT(*) FROM host_notices WHERE host_id = ? AND at > ?", (host_id, hour_ago)
        ).fetchone()[0]
        if recent >= FLAP_LIMIT:
            return 0
        conn.execute("INSERT INTO host_notices (host_id, at) VALUES (?, ?)", (host_id, now))
    elif RANK.get(severity, 0) < RANK["medium"]:
        return 0  # a low incident is a notice on the host's page (novelty alone), never a message
    queued = 0
    for channel_id, minimum in conn.execute(
        "SELECT id, min_severity FROM channels WHERE org_id = ?", (org_id,)
    ).fetchall():
        if RANK.get(severity, 0) >= RANK.get(minimum, 0):
            payload: dict[str, Any] = {
                "channel_id": channel_id,
                "event": event,
                "incident_id": incident_id,
            }
            jobs.add(conn, "notify", payload, now)
            queued += 1
    return queued


def queue_changes(conn: sqlite3.Connection, *, org_id: str, host_id: str, opened: list[str],
                  resolved: list[str], now: str,
                  failed: list[str] | None = None) -> None:  # fmt: skip
    """Notify jobs for what a write just opened or resolved, and for remediations whose
    verification failed (repeats never notify)."""
    for ids, kinds in ((opened, ("incident.opened", "host.silent")),
                       (resolved, ("incident.resolved", "host.recovered")),
                       (failed or [], ("remediation.failed", "remediation.failed"))):  # fmt: skip
        if not ids:
            continue
        marks = ",".join("?" * len(ids))
        for incident_id, severity, timer in conn.execute(
            f"SELECT id, severity, timer FROM incidents WHERE id IN ({marks})", ids
        ).fetchall():
            event = kinds[1] if timer else kinds[0]  # a timer rule's: the host itself
            queue(conn, org_id=org_id, host_id=host_id, event=event, incident_id=incident_id,
                  severity=severity, now=now)  # fmt: skip


def prune_notices(conn: sqlite3.Connection, cutoff: str) -> int:
    return conn.execute("DELETE FROM host_notices WHERE at < ?", (cutoff,)).rowcount
