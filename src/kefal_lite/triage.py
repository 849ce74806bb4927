"""What a person does to quiet or close incidents: suppressions (with the in-memory cache
ingest matches against), bulk actions, manual resolve, accepting a novelty into the
baseline. Each use case runs on the writer and records its audit row in the same
transaction, after the change succeeded."""

from __future__ import annotations

import sqlite3
from typing import Literal

from kefal_lite.clock import parse_iso
from kefal_lite.detect.triage import Rule, matches, rule
from kefal_lite.errors import Conflict, NotFound
from kefal_lite.store import audit, hosts, incidents, suppressions
from kefal_lite.store.db import Database
from kefal_lite.store.suppressions import Suppression

MAX_SUPPRESSIONS = 1_000  # per tenant: every finding of every snapshot is matched against them
MAX_BULK = 500

BulkAction = Literal["acknowledge", "dismiss", "resolve"]
_PAST = {"acknowledge": "acknowledged", "dismiss": "dismissed", "resolve": "resolved"}


class SuppressionCache:
    """Each tenant's suppressions, compiled, so ingest does not query per snapshot. Loaded on
    first use, dropped on create and delete. A load that raced a change is not kept: the
    generation it started from is checked when it lands."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._rules: dict[str, tuple[Rule, ...]] = {}
        self._generation: dict[str, int] = {}

    async def rules(self, user_id: str) -> tuple[Rule, ...]:
        cached = self._rules.get(user_id)
        if cached is not None:
            return cached
        generation = self._generation.get(user_id, 0)
        rows = await self._db.read(suppressions.list_for_user, user_id)
        compiled = tuple(
            rule(s.id, s.invariant_id, s.host_id, s.subject_glob,
                 parse_iso(s.expires_at) if s.expires_at else None)
            for s in rows
        )  # fmt: skip
        if self._generation.get(user_id, 0) == generation:
            self._rules[user_id] = compiled
        return compiled

    def invalidate(self, user_id: str) -> None:
        self._generation[user_id] = self._generation.get(user_id, 0) + 1
        self._rules.pop(user_id, None)


def create_suppression(conn: sqlite3.Connection, entry: audit.Entry, s: Suppression,
                       incident_id: str | None) -> None:  # fmt: skip
    """`incident_id`: the incident it was made from, resolved by it in the same transaction
    (one click on the incident page). The invariant was checked by the caller (the catalog
    is in memory); the host and the incident are checked here, in the tenant."""
    if s.host_id is not None and not hosts.exists(conn, s.user_id, s.host_id):
        raise NotFound("no such host")
    if suppressions.count_for_user(conn, s.user_id) >= MAX_SUPPRESSIONS:
        raise Conflict(f"at most {MAX_SUPPRESSIONS} suppressions; delete some first")
    if incident_id is not None:
        inc = incidents.get(conn, s.user_id, incident_id)
        if inc is None:
            raise NotFound("no such incident")
        compiled = rule(s.id, s.invariant_id, s.host_id, s.subject_glob, None)
        if (s.host_id not in (None, inc.host_id)
                or not matches(compiled, inc.invariant_id, inc.subject)):  # fmt: skip
            raise Conflict("this suppression would not cover the incident it was made from")
        if inc.status in ("open", "acknowledged", "stale"):
            incidents.resolve_manually(conn, s.user_id, incident_id, f"user:{entry.actor}",
                                       entry.at, by="suppression",
                                       detail={"suppression_id": s.id})  # fmt: skip
    suppressions.add(conn, s)
    audit.record(conn, entry)


def bulk(conn: sqlite3.Connection, *, user_id: str, actor: str, ids: list[str],
         action: BulkAction, reason: str | None, now: str) -> list[dict[str, str]]:  # fmt: skip
    """One result per distinct id, in order: ok, not_found (also another tenant's) or
    conflict. Each change is its own audit row; a refused one changes nothing."""
    results: list[dict[str, str]] = []
    for incident_id in dict.fromkeys(ids):
        who = f"user:{actor}"
        try:
            if action == "acknowledge":
                incidents.acknowledge(conn, user_id, incident_id, who, now)
            elif action == "dismiss":
                incidents.dismiss(conn, user_id, incident_id, who, now, reason, None)
            else:
                detail = {"reason": reason} if reason else None
                incidents.resolve_manually(conn, user_id, incident_id, who, now, detail=detail)
        except (NotFound, Conflict) as exc:
            kind = "not_found" if isinstance(exc, NotFound) else "conflict"
            results.append({"id": incident_id, "result": kind, "detail": exc.detail})
            continue
        audit.record(conn, audit.Entry(now, user_id, actor, f"incident_{_PAST[action]}",
                                       incident_id, None, {"bulk": True}))  # fmt: skip
        results.append({"id": incident_id, "result": "ok"})
    return results


def commit_baseline(conn: sqlite3.Connection, state: bytes, *, entry: audit.Entry, user_id: str,
                    incident_id: str, host_id: str, field: str, value: str) -> None:  # fmt: skip
    """The host's new state and the incident's resolution, together or not at all."""
    inc = incidents.get(conn, user_id, incident_id)
    if inc is None or inc.host_id != host_id:
        raise NotFound("no such incident")
    incidents.resolve_manually(conn, user_id, incident_id, f"user:{entry.actor}", entry.at,
                               by="baseline", detail={"field": field, "value": value})  # fmt: skip
    hosts.set_state(conn, user_id, host_id, state)
    audit.record(conn, entry)
