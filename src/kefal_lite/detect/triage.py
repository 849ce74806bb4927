"""Pure helpers behind a person's triage: which findings a suppression silences, and which
baseline value a novelty incident is about. No I/O, no clock reads (`now` is a parameter)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from kefal_lite.detect import predicates as p
from kefal_lite.detect.model import Finding, Invariant

MAX_GLOB = 200  # characters: a subject glob is a short pattern, never a document


class Rule(msgspec.Struct, frozen=True):
    """A suppression, compiled once when the tenant's cache loads."""

    id: str
    invariant_id: str | None
    host_id: str | None
    pattern: re.Pattern[str] | None
    expires_at: datetime | None


def compile_glob(glob: str) -> re.Pattern[str]:
    # fnmatchcase semantics (`*`, `?`, `[...]`), case-sensitive: subjects are process and
    # user names, where case is meaningful. translate() emits no nested quantifiers.
    return re.compile(fnmatch.translate(glob))


def rule(id: str, invariant_id: str | None, host_id: str | None, subject_glob: str | None,
         expires_at: datetime | None) -> Rule:  # fmt: skip
    pattern = compile_glob(subject_glob) if subject_glob is not None else None
    return Rule(id, invariant_id, host_id, pattern, expires_at)


def matches(r: Rule, invariant_id: str, subject: str) -> bool:
    """Host and expiry are checked by the caller, once per snapshot."""
    if r.invariant_id is not None and r.invariant_id != invariant_id:
        return False
    return r.pattern is None or r.pattern.match(subject) is not None


class Split(msgspec.Struct, frozen=True):
    kept: list[Finding]  # findings that still count
    hits: dict[str, int] = {}  # suppression id -> findings it silenced
    held: frozenset[tuple[str, str]] = frozenset()  # (invariant id, subject) silenced


def split(findings: list[Finding], rules: Sequence[Rule], host_id: str,
          now: datetime) -> Split:  # fmt: skip
    """A finding two suppressions match is credited to the first one (the oldest)."""
    if not findings or not rules:
        return Split(findings)
    live = [r for r in rules
            if (r.host_id is None or r.host_id == host_id)
            and (r.expires_at is None or r.expires_at > now)]  # fmt: skip
    if not live:
        return Split(findings)
    kept: list[Finding] = []
    hits: dict[str, int] = {}
    held: set[tuple[str, str]] = set()
    for f in findings:
        hit = next((r.id for r in live if matches(r, f.invariant_id, f.subject)), None)
        if hit is None:
            kept.append(f)
        else:
            hits[hit] = hits.get(hit, 0) + 1
            held.add((f.invariant_id, f.subject))
    return Split(kept, hits, frozenset(held))


def novelty_value(inv: Invariant, subject: str, evidence: Any) -> tuple[str, str] | None:
    """(baseline field, value) a novelty incident is about; None when the invariant has no
    novel_value predicate or the value cannot be told."""
    fields = [leaf.params.field for leaf in p.leaves(inv.predicate)
              if isinstance(leaf, p.NovelValue)]  # fmt: skip
    if not fields:
        return None
    if isinstance(evidence, dict):
        field, value = evidence.get("field"), evidence.get("value")
        if field in fields and isinstance(value, str) and value:
            return field, value
    # Subjects of novelty are "<kind>:<value>" (port:8080/tcp, peer:curl:443).
    _, sep, value = subject.partition(":")
    if len(fields) == 1 and sep and value:
        return fields[0], value
    return None
