"""Suppressions: the in-memory cache ingest matches against, and creating one (which may
resolve the incident it was made from) or deleting one. The writes run on the writer and
record their audit row in the same transaction, after the change succeeded; suppress()
and unsuppress() add the rules of a new one and drop the tenant's cached rules."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING

from kefal_lite.clock import iso, parse_iso
from kefal_lite.detect.triage import Rule, matches, rule
from kefal_lite.errors import Conflict, NotFound, ValidationFailed, validation_item
from kefal_lite.ids import new_id
from kefal_lite.store import audit, hosts, incidents, suppressions
from kefal_lite.store.db import Database
from kefal_lite.store.suppressions import Suppression
from kefal_lite.usecases import incidents as incident_cases
from kefal_lite.usecases.actor import Actor

if TYPE_CHECKING:  # services.py builds the cache below
    from kefal_lite.services import Services

MAX_SUPPRESSIONS = 1_000  # per tenant: every finding of every snapshot is matched against them


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


def create_suppression(conn: sqlite3.Connection, actor: Actor, s: Suppression,
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
        incident_cases.resolve_by_suppression(conn, actor, incident_id, s.created_at, s.id)
    suppressions.add(conn, s)
    audit.record(conn, actor.entry(
        s.created_at, "suppression_created", s.id, invariant_id=s.invariant_id,
        host_id=s.host_id, subject_glob=s.subject_glob, expires_at=s.expires_at,
        incident_id=incident_id,
    ))  # fmt: skip


def delete_suppression(conn: sqlite3.Connection, actor: Actor, suppression_id: str,
                       now: str) -> None:  # fmt: skip
    """Its findings open incidents again from the next snapshot on."""
    if not suppressions.delete(conn, actor.user_id, suppression_id):
        raise NotFound("no such suppression")
    audit.record(conn, actor.entry(now, "suppression_deleted", suppression_id))


def _invalid(field: str, msg: str) -> ValidationFailed:
    return ValidationFailed([validation_item(["body", field], msg)])


async def suppress(
    svc: Services, actor: Actor, *, invariant_id: str | None, host_id: str | None,
    subject_glob: str | None, reason: str, expires_at: datetime | None, incident_id: str | None,
) -> Suppression:  # fmt: skip
    """Findings matching every given part stay quiet (counted on the host) until
    `expires_at`, from the next snapshot on."""
    if invariant_id is None and host_id is None and subject_glob is None:
        raise _invalid("invariant_id", "give at least one of invariant_id, host_id, subject_glob")
    if not reason.strip():
        raise _invalid("reason", "say why these findings are fine")
    if subject_glob is not None and invariant_id is None and host_id is None \
            and not subject_glob.strip("*"):  # fmt: skip
        raise _invalid("subject_glob", "this would silence every finding on every host")
    now = iso(svc.clock.now())
    if expires_at is not None and iso(expires_at) <= now:
        raise _invalid("expires_at", "is in the past")
    if invariant_id is not None and svc.rules.invariant(invariant_id) is None:
        raise NotFound("no such invariant")
    s = Suppression(
        id=new_id(), user_id=actor.user_id, invariant_id=invariant_id, host_id=host_id,
        subject_glob=subject_glob, reason=reason.strip(),
        expires_at=iso(expires_at) if expires_at else None, created_by=actor.username,
        created_at=now,
    )  # fmt: skip
    await svc.db.write(create_suppression, actor, s, incident_id)
    svc.ingestor.suppressions.invalidate(actor.user_id)
    return s


async def unsuppress(svc: Services, actor: Actor, suppression_id: str) -> None:
    await svc.db.write(delete_suppression, actor, suppression_id, iso(svc.clock.now()))
    svc.ingestor.suppressions.invalidate(actor.user_id)
