"""Rules people bring: one contributed over the API (pending until verified) or a pack
imported at the CLI (verified there, then stored active or rejected). Both pass the same
admission rule and become an Invariant the same way (community.contribution_invariant)."""

from __future__ import annotations

import sqlite3
from typing import Literal

import msgspec

from kefal_lite.community import BUILTIN_NAMES, Contribution, not_contributable
from kefal_lite.detect.verify import Report
from kefal_lite.errors import BadRequest, Conflict
from kefal_lite.store import audit, invariants
from kefal_lite.usecases.actor import Actor


def admit(rule: Contribution) -> None:
    """A rule may be shared with every tenant: not a builtin's name, no kind only builtins
    may use, nothing that cannot be verified constructively."""
    if rule.name.casefold() in BUILTIN_NAMES:
        raise Conflict(f"{rule.name!r} is the name of a builtin invariant")
    refused = not_contributable(rule.predicate)
    if refused is not None:
        raise BadRequest(refused)


def _add(conn: sqlite3.Connection, rule: Contribution, *, invariant_id: str, owner_id: str,
         source: Literal["community", "pack"], now: str, status: str = "pending",
         report: Report | None = None) -> None:  # fmt: skip
    if invariants.name_taken(conn, rule.name):
        raise Conflict(f"an invariant named {rule.name!r} already exists")
    invariants.add(
        conn, invariant_id=invariant_id, name=rule.name, invariant_type=rule.invariant_type,
        predicate=msgspec.to_builtins(rule.predicate), severity=rule.severity,
        metadata=msgspec.to_builtins(rule.metadata), source=source, user_id=owner_id, now=now,
        status=status, report=msgspec.to_builtins(report) if report is not None else None,
    )  # fmt: skip


def contribute(conn: sqlite3.Connection, actor: Actor, rule: Contribution, invariant_id: str,
               now: str) -> None:  # fmt: skip
    """Stored pending; verification (slow, off the writer) decides later."""
    admit(rule)
    _add(conn, rule, invariant_id=invariant_id, owner_id=actor.user_id, source="community",
         now=now)  # fmt: skip
    audit.record(conn, actor.entry(now, "invariant_contributed", invariant_id, name=rule.name))


def import_verified(conn: sqlite3.Connection, owner_id: str, rule: Contribution,
                    invariant_id: str, report: Report, now: str) -> str:  # fmt: skip
    """A pack's rule, verified by the caller: stored active or rejected; returns which."""
    admit(rule)
    status = "active" if report.passed else "rejected"
    _add(conn, rule, invariant_id=invariant_id, owner_id=owner_id, source="pack", now=now,
         status=status, report=report)  # fmt: skip
    return status
