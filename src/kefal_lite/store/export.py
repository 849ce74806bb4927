"""Everything an organization owns, as plain data for GET /api/v1/orgs/{id}/export.

Columns are listed, never `*`: a secret column added later must not leak into exports by
default. Left out on purpose: token hashes (agents, enrollment tokens, API keys,
invitations), sealed channel URLs and signing secrets, password hashes, MFA seeds, and
the hosts' detection state (internal baselines, rebuilt from snapshots).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from kefal_lite.store import hosts

_JSON = {"evidence", "remediation_actions", "predicate", "metadata", "report", "detail"}

# table -> (columns, tenant column); every query filters on the organization in SQL
_TABLES: dict[str, tuple[str, str]] = {
    "agents": ("id, name, hostname, status, agent_version, created_at, last_seen_at,"
               " revoked_at", "org_id"),
    "hosts": ("id, agent_id, hostname, os, kernel, agent_version, first_seen_at, last_seen_at,"
              " snapshot_id, silent, suppressed, host_group", "org_id"),
    "incidents": ("id, host_id, invariant_id, invariant_name, category, severity, status,"
                  " subject, title, evidence, snapshot_id, attack, first_seen_at, last_seen_at,"
                  " occurrences, resolved_at, resolved_by, dismiss_reason, dismissed_until,"
                  " remediation_status, remediation_source, remediation_actions", "org_id"),
    "suppressions": ("id, invariant_id, host_id, subject_glob, reason, expires_at, created_by,"
                     " created_at, hits, last_hit_at", "org_id"),
    "channels": ("id, name, url_masked, min_severity, created_at, last_success_at, last_error,"
                 " last_error_at", "org_id"),
    "enrollment_tokens": ("id, name, created_at, expires_at, max_uses, uses, last_used_at,"
                          " revoked_at", "org_id"),
    "api_keys": ("id, name, role, prefix, created_by, created_at, expires_at, last_used_at,"
                 " revoked_at", "org_id"),
    "invitations": ("id, email, role, invited_by, created_at, expires_at, accepted_at,"
                    " accepted_by", "org_id"),
    "subscriptions": ("plan, state, current_period_end, next_billing_date,"
                      " cancel_at_period_end, updated_at", "org_id"),
    "invariants": ("id, name, invariant_type, predicate, severity, metadata, source, status,"
                   " report, created_at, verified_at, retired_at, status_reason", "org_id"),
    "changes": ("id, host_id, snapshot_id, at, kind, change, subject, before, after", "org_id"),
    "audit": ("id, at, user_id, actor, action, target, client, detail", "org_id"),
}  # fmt: skip


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        item = dict(zip(names, row, strict=True))
        for name in _JSON & item.keys():
            if isinstance(item[name], str):
                item[name] = msgspec.json.decode(item[name])
        out.append(item)
    return out


def export(conn: sqlite3.Connection, org_id: str) -> dict[str, Any]:
    """One read transaction, so the parts agree with each other."""
    org = _rows(conn, "SELECT id, name, personal, created_at FROM orgs WHERE id = ?", (org_id,))
    out: dict[str, Any] = {"organization": org[0] if org else None}
    out["members"] = _rows(
        conn,
        "SELECT m.user_id, u.username, u.email, m.role, m.created_at FROM memberships m"
        " JOIN users u ON u.id = m.user_id WHERE m.org_id = ? ORDER BY m.created_at",
        (org_id,),
    )
    for table, (columns, tenant) in _TABLES.items():
        out[table] = _rows(conn, f"SELECT {columns} FROM {table} WHERE {tenant} = ? ORDER BY 1",
                           (org_id,))  # fmt: skip
    out["incident_events"] = _rows(
        conn,
        "SELECT e.id, e.incident_id, e.at, e.actor, e.action, e.detail FROM incident_events e"
        " JOIN incidents i ON i.id = e.incident_id WHERE i.org_id = ? ORDER BY e.id",
        (org_id,),
    )
    # each host's latest snapshot as the agent sent it (older ones are in compact segments)
    latest = [h["snapshot_id"] for h in out["hosts"] if h["snapshot_id"]]
    bodies = hosts.snapshot_bodies(conn, org_id, latest)
    out["latest_snapshots"] = {sid: msgspec.json.decode(body) for sid, body in bodies.items()}
    return out
