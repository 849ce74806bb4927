"""Invariants and findings: what the engine reads and what it returns."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from kefal_lite.detect.predicates import AgentSilent, AnyPredicate

Severity = Literal["low", "medium", "high", "critical"]
InvariantType = Literal["structural", "temporal", "behavioral"]
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}


class Invariant(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: Annotated[str, msgspec.Meta(min_length=3, max_length=80)]
    invariant_type: InvariantType
    predicate: AnyPredicate
    severity: Severity
    category: str = "community"
    attack: str | None = None
    metadata: dict[str, str] = {}
    source: Literal["builtin", "community", "pack"] = "builtin"
    status: Literal["pending", "active", "rejected", "retired"] = "active"
    contributed_by: str | None = None

    @property
    def state_like(self) -> bool:
        """Structural rules and agent_silent resolve on their own once no longer violated;
        events (novelty, replay, reboot, ...) stay until a person acts on them."""
        return self.invariant_type == "structural" or isinstance(self.predicate, AgentSilent)

    @property
    def timer(self) -> bool:
        """Judged by a timer (no snapshot for too long), not by snapshots: its incident is
        about the host itself, never "stale", and opens and resolves as host.silent /
        host.recovered."""
        return isinstance(self.predicate, AgentSilent)

    @property
    def title(self) -> str:
        return self.metadata.get("title") or self.name.replace("_", " ").capitalize()


class Finding(msgspec.Struct, frozen=True):
    invariant_id: str
    subject: str
    severity: Severity
    title: str
    evidence: dict[str, Any]
