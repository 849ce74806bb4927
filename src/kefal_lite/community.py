"""Community invariants: contribute, verify adversarially, share with every tenant, retire.

What survives verification protects every tenant from the next snapshot on: the
rule set is swapped in memory, no restart. No contribution is ever code: a
predicate picks a function from the fixed catalogue in detect/predicates.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import msgspec

from kefal_lite.billing import BillingProvider
from kefal_lite.clock import Clock, iso
from kefal_lite.detect import predicates as p
from kefal_lite.detect import verify as verification
from kefal_lite.detect.builtins import BY_ID as BUILTIN_IDS
from kefal_lite.detect.model import Invariant, InvariantType, Severity
from kefal_lite.errors import BadRequest, Conflict, Forbidden, NotFound
from kefal_lite.ids import new_id
from kefal_lite.remediate.llm import LlmError, LlmProvider
from kefal_lite.rules import Rules
from kefal_lite.store import audit, invariants, orgs
from kefal_lite.store.db import Database
from kefal_lite.store.invariants import StoredInvariant
from kefal_lite.store.users import User
from kefal_lite.usecases.actor import Actor

BUILTIN_NAMES = frozenset(name.casefold() for name in BUILTIN_IDS)

# Judged on the server's clock and the host's history, which every rule of the kind shares:
# a contributed 1-minute agent_silent marked hosts silent before the builtin's 10 minutes
# and so replaced its high incident with a low one for every tenant. Builtins only.
TIMER_KINDS = (p.AgentSilent, p.TimestampNotMonotonic, p.ClockSkew, p.UptimeDecreased)


def not_contributable(predicate: p.AnyPredicate) -> str | None:
    """Why a rule with this predicate cannot be shared with every tenant, or None."""
    for leaf in p.leaves(predicate):
        kind = msgspec.to_builtins(leaf)["kind"]
        if isinstance(leaf, TIMER_KINDS):
            return (
                f"{kind} rules are timer and host-history checks that only the builtin"
                " invariants may make: a contributed one could change when or whether a"
                " builtin fires for every tenant"
            )
        if not verification.applicable(leaf):
            return (
                f"{kind} cannot be verified constructively (no violating and clean case can"
                " be built for it), so it cannot be contributed"
            )
    return None


class ContributionMetadata(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    pitch: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class Contribution(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The seed's contribution schema, strictly: unknown fields, kinds or params are a 400."""

    name: Annotated[
        str, msgspec.Meta(min_length=3, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.:()-]*$")
    ]
    invariant_type: InvariantType
    predicate: p.AnyPredicate
    severity: Severity
    metadata: ContributionMetadata


def contribution_invariant(rule: Contribution, invariant_id: str = "local") -> Invariant:
    """A rule not stored yet, as the engine and verification take it (the CLI's test and
    import verify it before it has an id)."""
    return Invariant(
        id=invariant_id, name=rule.name, invariant_type=rule.invariant_type,
        predicate=rule.predicate, severity=rule.severity, category="community",
        metadata={k: v for k, v in msgspec.to_builtins(rule.metadata).items() if v is not None},
        source="community",
    )  # fmt: skip


def to_invariant(stored: StoredInvariant) -> Invariant:
    return Invariant(
        id=stored.id,
        name=stored.name,
        invariant_type=stored.invariant_type,  # type: ignore[arg-type]
        predicate=p.parse(stored.predicate),
        severity=stored.severity,  # type: ignore[arg-type]
        category="community",
        attack=None,
        metadata={k: str(v) for k, v in stored.metadata.items() if v is not None},
        source=stored.source,  # type: ignore[arg-type]
        status=stored.status,  # type: ignore[arg-type]
        contributed_by=stored.contributor,
    )


class Community:
    def __init__(self, db: Database, clock: Clock, rules: Rules, llm: LlmProvider | None,
                 billing: BillingProvider) -> None:  # fmt: skip
        self.billing = billing
        self._db = db
        self._clock = clock
        self._rules = rules
        self._llm = llm
        self._active_key = ""

    def _audit(self, actor: Actor, action: str, target: str, **detail: Any) -> audit.Entry:
        return actor.entry(iso(self._clock.now()), action, target, **detail)

    async def reload(self) -> None:
        """Put the active community invariants in force (startup, verify, retire). One that
        is no longer contributable never is, whatever its row says."""
        key = await self._db.read(invariants.active_key)
        active = await self._db.read(invariants.with_status, "active")
        self._rules.replace_community([
            inv for inv in map(to_invariant, active) if not_contributable(inv.predicate) is None
        ])  # fmt: skip
        self._active_key = key

    async def refresh(self) -> bool:
        """Reload when the active set changed outside this process (the CLI's import);
        a cheap read when it did not. Returns whether it reloaded."""
        if await self._db.read(invariants.active_key) == self._active_key:
            return False
        await self.reload()
        return True

    async def withdraw_forbidden(self) -> list[str]:
        """At startup: contributions of kinds no longer contributable (stored before this
        rule existed) are retired if active, rejected if pending, with the reason, so a
        database made by an older release says why they stopped. Returns their ids."""
        now = iso(self._clock.now())
        withdrawn = []
        for status in ("active", "pending"):
            for stored in await self._db.read(invariants.with_status, status):
                reason = not_contributable(to_invariant(stored).predicate)
                if reason is None:
                    continue
                detail = {"name": stored.name, "reason": reason}
                entry = audit.Entry(now, stored.contributed_by, "kefal", "invariant_withdrawn",
                                    stored.id, None, detail)  # fmt: skip
                await self._db.write(audit.audited, entry, invariants.withdraw, stored.id,
                                     reason, now)  # fmt: skip
                withdrawn.append(stored.id)
        return withdrawn

    async def contribute(self, actor: Actor, body: Contribution) -> StoredInvariant:
        from kefal_lite.usecases import rules as rule_cases  # it builds on this module

        invariant_id = new_id()
        await self._db.write(rule_cases.contribute, actor, body,
                             invariant_id, iso(self._clock.now()))  # fmt: skip
        stored = await self._db.read(invariants.get, invariant_id)
        assert stored is not None
        return stored

    async def verify(self, actor: Actor, is_admin: bool,
                     invariant_id: str) -> tuple[str, dict[str, Any]]:  # fmt: skip
        """`is_admin`: the server-wide admin, who may verify any organization's contribution."""
        stored = await self._db.read(invariants.visible_to, invariant_id, actor.org_id, is_admin)
        if stored is None:
            raise NotFound("no such contribution")
        if stored.status in ("active", "retired"):
            raise Conflict(f"the invariant is already {stored.status}")
        refused = not_contributable(to_invariant(stored).predicate)
        if refused is not None:
            raise BadRequest(refused)
        org = await self._db.read(orgs.get, actor.org_id)
        if not is_admin and (org is None or not await self.billing.may_verify(org)):
            raise Forbidden(
                "adversarial verification comes with the Professional and Enterprise plans"
            )
        inv = to_invariant(stored)
        report = await asyncio.to_thread(verification.verify, inv)
        out: dict[str, Any] = msgspec.to_builtins(report)
        out["llm"] = await self._llm_opinion(inv) if self._llm else None
        status = "active" if report.passed else "rejected"
        entry = self._audit(actor, "invariant_verified", invariant_id, status=status)
        now = iso(self._clock.now())
        await self._db.write(
            audit.audited, entry, invariants.set_verdict, invariant_id, status, out, now
        )
        if status == "active":
            await self.reload()
        return status, out

    async def retire(self, user: User, invariant_id: str) -> None:
        if user.role != "admin":
            raise Forbidden("only an admin can retire an invariant")
        stored = await self._db.read(invariants.get, invariant_id)
        if stored is None:
            raise NotFound("no such invariant")
        if stored.status != "active":
            raise Conflict(f"only an active invariant can be retired; this one is {stored.status}")
        admin = Actor(org_id="", user_id=user.id, username=user.username)
        entry = self._audit(admin, "invariant_retired", invariant_id, name=stored.name)
        await self._db.write(audit.audited, entry, invariants.retire, invariant_id,
                             iso(self._clock.now()))  # fmt: skip
        await self.reload()

    async def _llm_opinion(self, inv: Invariant) -> dict[str, Any]:
        """Advisory only: stored with the report, never decides the outcome."""
        assert self._llm is not None
        rule = json.dumps({"name": inv.name, "predicate": msgspec.to_builtins(inv.predicate),
                           "severity": inv.severity, "metadata": inv.metadata})  # fmt: skip
        prompts = {
            "constructive": "Describe, in at most five sentences, a realistic host state that this"
            " detection rule should flag, and say whether the rule as written would flag it.",
            "red_team": "As a red teamer, list in at most five sentences the simplest ways an"
            " attacker would evade this detection rule, and ordinary hosts it might misfire on.",
        }
        out: dict[str, Any] = {"model": self._llm.model}
        for key, question in prompts.items():
            try:
                out[key] = await self._llm.chat([
                    {"role": "system", "content": "You review host-security detection rules."},
                    {"role": "user", "content": f"{question}\n\nRule: {rule}"},
                ])  # fmt: skip
            except LlmError as exc:
                out[key] = None
                out["error"] = str(exc)
        return out
