"""Incidents: dedup by (host, invariant, subject), auto-resolve, dismissals, history."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from kefal_lite.ids import new_id
from kefal_lite.store import jobs
from kefal_lite.store.rows import struct

ACTIVE = ("open", "acknowledged")
SYSTEM = "kefal"

_json = msgspec.json.Encoder()
_decode_json = msgspec.json.Decoder()


class NewFinding(msgspec.Struct, frozen=True):
    """A finding with the invariant facts an incident row keeps."""

    invariant_id: str
    invariant_name: str
    category: str
    severity: str
    state_like: bool
    attack: str | None
    contributed_by: str | None
    subject: str
    title: str
    evidence: dict[str, Any]
    timer: bool = False  # a timer rule's (agent silence): see Invariant.timer


class Changes(msgspec.Struct):
    opened: list[str] = []
    updated: list[str] = []
    resolved: list[str] = []
    recovered: list[str] = []  # resolved timer incidents: the host is back
    opened_severities: list[str] = []


class Incident(msgspec.Struct, frozen=True):
    id: str
    host_id: str
    hostname: str
    invariant_id: str
    invariant_name: str
    category: str
    severity: str
    status: str
    subject: str
    title: str
    evidence: Any
    snapshot_id: str | None
    attack: str | None
    contributed_by: str | None
    first_seen_at: str
    last_seen_at: str
    occurrences: int
    resolved_at: str | None
    resolved_by: str | None
    dismiss_reason: str | None
    dismissed_until: str | None
    remediation_status: str
    remediation_mode: str | None
    remediation_source: str | None
    remediation_actions: Any
    remediation_generated_at: str | None
    remediation_error: str | None
    stored_status: str  # `status` is what is shown (stale); this is what the state machine reads


class Event(msgspec.Struct, frozen=True):
    at: str
    actor: str
    action: str
    detail: Any


# `stale`: an open or acknowledged incident of a host that went silent is shown as
# stale (not resolved) until the host reports again; the silence incident itself stays open.
_DISPLAY_STATUS = (
    "CASE WHEN i.status IN ('open', 'acknowledged') AND h.silent = 1"
    " AND i.timer = 0 THEN 'stale' ELSE i.status END"
)
_SELECT = (
    "SELECT i.id, i.host_id, h.hostname, i.invariant_id, i.invariant_name, i.category,"
    f" i.severity, {_DISPLAY_STATUS} AS status, i.status AS stored_status, i.subject, i.title,"
    " i.evidence, i.snapshot_id, i.attack,"
    " i.contributed_by, i.first_seen_at, i.last_seen_at, i.occurrences, i.resolved_at,"
    " i.resolved_by, i.dismiss_reason, i.dismissed_until, i.remediation_status,"
    " i.remediation_mode, i.remediation_source, i.remediation_actions,"
    " i.remediation_generated_at, i.remediation_error"
    " FROM incidents i JOIN hosts h ON h.id = i.host_id"
)


def _incident(row: sqlite3.Row) -> Incident:
    actions = row["remediation_actions"]
    return struct(
        Incident, row, evidence=_decode_json.decode(row["evidence"]),
        remediation_actions=_decode_json.decode(actions) if actions else [],
    )  # fmt: skip


def _event(conn: sqlite3.Connection, incident_id: str, at: str, actor: str, action: str,
           detail: dict[str, Any] | None = None) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO incident_events (incident_id, at, actor, action, detail)"
        " VALUES (?, ?, ?, ?, ?)",
        (incident_id, at, actor, action, _json.encode(detail).decode() if detail else None),
    )


def _suppressed(conn: sqlite3.Connection, host_id: str, invariant_id: str, subject: str,
                now: str) -> bool:  # fmt: skip
    row = conn.execute(
        "SELECT 1 FROM incidents WHERE host_id = ? AND invariant_id = ? AND subject = ?"
        " AND status = 'dismissed' AND (dismissed_until IS NULL OR dismissed_until > ?) LIMIT 1",
        (host_id, invariant_id, subject, now),
    ).fetchone()
    return row is not None


def open_incident(
    conn: sqlite3.Connection, *, org_id: str, host_id: str, snapshot_id: str | None,
    finding: NewFinding, now: str, auto_remediate: bool = False,
) -> str | None:  # fmt: skip
    """Open a new incident unless its key is active (then count it) or dismissed.
    Returns the new id, or None when nothing new was opened."""
    row = conn.execute(
        "SELECT id FROM incidents WHERE host_id = ? AND invariant_id = ? AND subject = ?"
        " AND status IN ('open', 'acknowledged')",
        (host_id, finding.invariant_id, finding.subject),
    ).fetchone()
    if row is not None:
        _repeat(conn, row[0], finding, snapshot_id, now)
        return None
    opened = _open(conn, org_id=org_id, host_id=host_id, snapshot_id=snapshot_id,
                   finding=finding, now=now)  # fmt: skip
    if opened and auto_remediate:
        _queue_remediation(conn, opened, "auto", now)
    return opened


def _open(
    conn: sqlite3.Connection, *, org_id: str, host_id: str, snapshot_id: str | None,
    finding: NewFinding, now: str,
) -> str | None:  # fmt: skip
    if _suppressed(conn, host_id, finding.invariant_id, finding.subject, now):
        return None
    incident_id = new_id()
    conn.execute(
        "INSERT INTO incidents (id, org_id, host_id, invariant_id, invariant_name, category,"
        " severity, status, state_like, subject, title, evidence, snapshot_id, attack,"
        " contributed_by, first_seen_at, last_seen_at, timer)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (incident_id, org_id, host_id, finding.invariant_id, finding.invariant_name,
         finding.category, finding.severity, int(finding.state_like), finding.subject,
         finding.title, _json.encode(finding.evidence).decode(), snapshot_id, finding.attack,
         finding.contributed_by, now, now, int(finding.timer)),
    )  # fmt: skip
    _event(conn, incident_id, now, SYSTEM, "opened", {"snapshot_id": snapshot_id})
    return incident_id


def _repeat(conn: sqlite3.Connection, incident_id: str, finding: NewFinding,
            snapshot_id: str | None, now: str) -> None:  # fmt: skip
    conn.execute(
        "UPDATE incidents SET last_seen_at = ?, occurrences = occurrences + 1, snapshot_id = ?,"
        " evidence = ?, title = ?, severity = ? WHERE id = ?",
        (now, snapshot_id, _json.encode(finding.evidence).decode(), finding.title,
         finding.severity, incident_id),
    )  # fmt: skip


def apply_findings(
    conn: sqlite3.Connection,
    *,
    org_id: str,
    host_id: str,
    snapshot_id: str,
    findings: list[NewFinding],
    auto_resolve: frozenset[str],
    now: str,
    auto_remediate: bool = False,
    held: frozenset[tuple[str, str]] = frozenset(),
) -> Changes:
    """One snapshot's findings: repeats counted, new keys opened (unless dismissed), and
    state-like incidents this snapshot no longer shows resolved. `held` keys were found but
    suppressed: their incidents are neither counted nor resolved."""
    changes = Changes()
    active: dict[tuple[str, str], str] = {}
    timers: set[str] = set()
    for r in conn.execute(
        "SELECT id, invariant_id, subject, timer FROM incidents"
        " WHERE host_id = ? AND status IN ('open', 'acknowledged')",
        (host_id,),
    ):
        active[(r["invariant_id"], r["subject"])] = r["id"]
        if r["timer"]:
            timers.add(r["id"])
    seen: set[tuple[str, str]] = set(held)
    for f in findings:
        key = (f.invariant_id, f.subject)
        if key in seen:
            continue
        seen.add(key)
        existing = active.get(key)
        if existing is not None:
            _repeat(conn, existing, f, snapshot_id, now)
            changes.updated.append(existing)
            continue
        opened = _open(conn, org_id=org_id, host_id=host_id, snapshot_id=snapshot_id,
                       finding=f, now=now)  # fmt: skip
        if opened:
            changes.opened.append(opened)
            changes.opened_severities.append(f.severity)
            if auto_remediate:
                _queue_remediation(conn, opened, "auto", now)
    for (invariant_id, subject), incident_id in active.items():
        if invariant_id in auto_resolve and (invariant_id, subject) not in seen:
            resolve(conn, incident_id, now, by="auto", snapshot_id=snapshot_id)
            changes.resolved.append(incident_id)
            if incident_id in timers:
                changes.recovered.append(incident_id)
    return changes


def resolve(conn: sqlite3.Connection, incident_id: str, now: str, *, by: str,
            snapshot_id: str | None = None) -> None:  # fmt: skip
    conn.execute(
        "UPDATE incidents SET status = 'resolved', resolved_at = ?, resolved_by = ? WHERE id = ?",
        (now, by, incident_id),
    )
    _event(conn, incident_id, now, SYSTEM, "resolved", {"by": by, "snapshot_id": snapshot_id})


def list_for_user(
    conn: sqlite3.Connection,
    org_id: str,
    *,
    status: str | None,
    severity: str | None,
    host_id: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Incident], int]:
    """`status`: one display status, "active" (open, acknowledged or stale), or None/"all"."""
    where = ["i.org_id = ?"]
    params: list[Any] = [org_id]
    if status == "active":
        where.append("i.status IN ('open', 'acknowledged')")
    elif status and status != "all":
        where.append(f"{_DISPLAY_STATUS} = ?")
        params.append(status)
    if severity:
        where.append("i.severity = ?")
        params.append(severity)
    if host_id:
        where.append("i.host_id = ?")
        params.append(host_id)
    clause = " WHERE " + " AND ".join(where)
    total = conn.execute(
        "SELECT COUNT(*) FROM incidents i JOIN hosts h ON h.id = i.host_id" + clause, params
    ).fetchone()[0]
    rows = conn.execute(
        _SELECT + clause + " ORDER BY i.last_seen_at DESC, i.id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [_incident(r) for r in rows], int(total)


def active_for_host(conn: sqlite3.Connection, org_id: str, host_id: str) -> list[Incident]:
    rows = conn.execute(
        _SELECT + " WHERE i.org_id = ? AND i.host_id = ? AND i.status IN ('open', 'acknowledged')"
        " ORDER BY i.last_seen_at DESC, i.id",
        (org_id, host_id),
    ).fetchall()
    return [_incident(r) for r in rows]


def get(conn: sqlite3.Connection, org_id: str, incident_id: str) -> Incident | None:
    row = conn.execute(_SELECT + " WHERE i.org_id = ? AND i.id = ?", (org_id, incident_id))
    found = row.fetchone()
    return _incident(found) if found else None


def history(conn: sqlite3.Connection, org_id: str, incident_id: str) -> list[Event]:
    rows = conn.execute(
        "SELECT e.at, e.actor, e.action, e.detail FROM incident_events e"
        " JOIN incidents i ON i.id = e.incident_id WHERE i.org_id = ? AND e.incident_id = ?"
        " ORDER BY e.id",
        (org_id, incident_id),
    ).fetchall()
    return [
        struct(Event, r, detail=_decode_json.decode(r["detail"]) if r["detail"] else None)
        for r in rows
    ]


class State(msgspec.Struct, frozen=True):
    """What the state machine reads of an incident (stored status, not the display one)."""

    status: str
    remediation_status: str
    host_id: str
    invariant_id: str
    subject: str


def state(conn: sqlite3.Connection, org_id: str, incident_id: str) -> State | None:
    row = conn.execute(
        "SELECT status, remediation_status, host_id, invariant_id, subject FROM incidents"
        " WHERE org_id = ? AND id = ?",
        (org_id, incident_id),
    ).fetchone()
    return struct(State, row) if row else None


def set_acknowledged(conn: sqlite3.Connection, org_id: str, incident_id: str, actor: str,
                     now: str) -> None:  # fmt: skip
    conn.execute(
        "UPDATE incidents SET status = 'acknowledged' WHERE org_id = ? AND id = ?",
        (org_id, incident_id),
    )
    _event(conn, incident_id, now, actor, "acknowledged")


def set_dismissed(conn: sqlite3.Connection, org_id: str, incident_id: str, actor: str, now: str,
                  reason: str | None, until: str | None) -> None:  # fmt: skip
    conn.execute(
        "UPDATE incidents SET status = 'dismissed', dismiss_reason = ?, dismissed_until = ?"
        " WHERE org_id = ? AND id = ?",
        (reason, until, org_id, incident_id),
    )
    _event(conn, incident_id, now, actor, "dismissed", {"reason": reason, "until": until})


def set_resolved(conn: sqlite3.Connection, org_id: str, incident_id: str, actor: str, now: str,
                 *, by: str, detail: dict[str, Any] | None = None) -> None:  # fmt: skip
    """A person's resolution (`by`: manual, suppression, baseline)."""
    conn.execute(
        "UPDATE incidents SET status = 'resolved', resolved_at = ?, resolved_by = ?"
        " WHERE org_id = ? AND id = ?",
        (now, by, org_id, incident_id),
    )
    _event(conn, incident_id, now, actor, "resolved", {"by": by, **(detail or {})})


def active_id(
    conn: sqlite3.Connection, host_id: str, invariant_id: str, subject: str
) -> str | None:
    row = conn.execute(
        "SELECT id FROM incidents WHERE host_id = ? AND invariant_id = ? AND subject = ?"
        " AND status IN ('open', 'acknowledged')",
        (host_id, invariant_id, subject),
    ).fetchone()
    return str(row[0]) if row else None


def resolve_key(conn: sqlite3.Connection, host_id: str, invariant_id: str, subject: str,
                now: str, *, by: str) -> str | None:  # fmt: skip
    incident_id = active_id(conn, host_id, invariant_id, subject)
    if incident_id is not None:
        resolve(conn, incident_id, now, by=by)
    return incident_id


def open_summary(conn: sqlite3.Connection, org_id: str) -> list[tuple[str, str, str]]:
    """(host_id, subject, severity) of every open or acknowledged incident: the graph overlay."""
    rows = conn.execute(
        "SELECT host_id, subject, severity FROM incidents"
        " WHERE org_id = ? AND status IN ('open', 'acknowledged')",
        (org_id,),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


# --- remediation -------------------------------------------------------------------
# none -> pending (a job is queued) -> proposed -> accepted | rejected;
# proposed | accepted -> applied -> verified (incident resolved) | failed.


class RemediationTarget(msgspec.Struct, frozen=True):
    incident_id: str
    org_id: str
    invariant_id: str
    subject: str
    evidence: dict[str, Any]
    status: str
    hostname: str
    os: str | None
    kernel: str | None


def _queue_remediation(conn: sqlite3.Connection, incident_id: str, mode: str, now: str) -> None:
    conn.execute(
        "UPDATE incidents SET remediation_status = 'pending', remediation_mode = ? WHERE id = ?",
        (mode, incident_id),
    )
    jobs.add(conn, "remediate", {"incident_id": incident_id}, now)


def queue_remediation(conn: sqlite3.Connection, org_id: str, incident_id: str, actor: str,
                      now: str) -> None:  # fmt: skip
    """Mode 2: a person asks for a (new) remediation: a job generates it."""
    conn.execute(
        "UPDATE incidents SET remediation_status = 'pending', remediation_mode = 'on_demand'"
        " WHERE org_id = ? AND id = ?",
        (org_id, incident_id),
    )
    jobs.add(conn, "remediate", {"incident_id": incident_id}, now)
    _event(conn, incident_id, now, actor, "remediation_requested")


def remediation_target(conn: sqlite3.Connection, incident_id: str) -> RemediationTarget | None:
    row = conn.execute(
        "SELECT i.id AS incident_id, i.org_id, i.invariant_id, i.subject, i.evidence,"
        " i.remediation_status AS status,"
        " h.hostname, h.os, h.kernel FROM incidents i JOIN hosts h ON h.id = i.host_id"
        " WHERE i.id = ?",
        (incident_id,),
    ).fetchone()
    if row is None:
        return None
    return struct(RemediationTarget, row, evidence=_decode_json.decode(row["evidence"]))


def propose(conn: sqlite3.Connection, incident_id: str, *, source: str, actions: list[Any],
            error: str | None, now: str) -> bool:  # fmt: skip
    """Store a generated remediation; False if the incident no longer waits for one."""
    cur = conn.execute(
        "UPDATE incidents SET remediation_status = 'proposed', remediation_source = ?,"
        " remediation_actions = ?, remediation_generated_at = ?, remediation_error = ?"
        " WHERE id = ? AND remediation_status = 'pending'",
        (source, _json.encode(actions).decode(), now, error, incident_id),
    )
    if cur.rowcount:
        _event(conn, incident_id, now, SYSTEM, "remediation_proposed",
               {"source": source, "error": error})  # fmt: skip
    return cur.rowcount == 1


def set_remediation(conn: sqlite3.Connection, org_id: str, incident_id: str, status: str,
                    actor: str, now: str) -> None:  # fmt: skip
    """A person's remediation move (accepted, rejected, applied)."""
    conn.execute(
        "UPDATE incidents SET remediation_status = ? WHERE org_id = ? AND id = ?",
        (status, org_id, incident_id),
    )
    _event(conn, incident_id, now, actor, f"remediation_{status}")


def awaiting_verification(conn: sqlite3.Connection, host_id: str) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT id, invariant_id, subject FROM incidents"
        " WHERE host_id = ? AND remediation_status = 'applied'",
        (host_id,),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def record_verification(conn: sqlite3.Connection, incident_id: str, still_violated: bool,
                        snapshot_id: str, now: str) -> str | None:  # fmt: skip
    """The host's next snapshot after `applied`: verified (and resolved) or failed.
    Returns "resolved", "verified" (the incident had already left the active states),
    "failed", or None when nothing awaited verification."""
    verdict = "failed" if still_violated else "verified"
    cur = conn.execute(
        "UPDATE incidents SET remediation_status = ?"
        " WHERE id = ? AND remediation_status = 'applied'",
        (verdict, incident_id),
    )
    if not cur.rowcount:
        return None
    _event(conn, incident_id, now, SYSTEM, f"remediation_{verdict}", {"snapshot_id": snapshot_id})
    if not still_violated:
        row = conn.execute("SELECT status FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        if row and row[0] in ACTIVE:
            resolve(conn, incident_id, now, by="remediation", snapshot_id=snapshot_id)
            return "resolved"
    return verdict
