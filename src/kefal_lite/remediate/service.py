"""The `remediate` job: three actions for one incident, from the LLM if configured, else the
template; an LLM failure is recorded on the incident and the template is used."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from kefal_lite.billing import BillingProvider
from kefal_lite.billing.plans import LLM_REMEDIATION
from kefal_lite.clock import Clock, iso
from kefal_lite.remediate import estate, templates
from kefal_lite.remediate.llm import LlmError, LlmProvider
from kefal_lite.rules import Rules
from kefal_lite.store import incidents
from kefal_lite.store.db import Database

log = logging.getLogger(__name__)


class Remediator:
    def __init__(self, db: Database, clock: Clock, rules: Rules, llm: LlmProvider | None,
                 billing: BillingProvider | None = None) -> None:  # fmt: skip
        self._db = db
        self._clock = clock
        self._rules = rules
        self._llm = llm
        self._billing = billing  # asked whether the incident's org has LLM remediation

    async def run(self, payload: dict[str, Any]) -> None:
        target = await self._db.read(incidents.remediation_target, str(payload["incident_id"]))
        if target is None or target.status != "pending":
            return  # deleted, or already answered by an earlier attempt
        invariant = self._rules.invariant(target.invariant_id)
        if invariant is None and estate.is_estate(target.invariant_id):
            # An estate finding (lateral pack): its own templates, no predicate for an LLM.
            found = estate.render(target.invariant_id, target.subject, target.evidence,
                                  target.os or "linux")  # fmt: skip
            await self._db.write(incidents.propose, target.incident_id, source="template",
                                 actions=msgspec.to_builtins(found), error=None,
                                 now=iso(self._clock.now()))  # fmt: skip
            return
        if invariant is None:
            raise LookupError(f"invariant {target.invariant_id} is no longer known")
        os = target.os or "linux"
        actions: list[templates.Action] | None = None
        source, error = "template", None
        if self._llm is not None and (
            self._billing is None
            or await self._billing.has_feature(target.org_id, LLM_REMEDIATION)
        ):
            host = {"hostname": target.hostname, "os": os, "kernel": target.kernel}
            try:
                actions = await self._llm.remediate(
                    invariant, target.subject, target.evidence, host
                )
                source = "llm"
            except LlmError as exc:
                error = f"LLM: {exc}; the template was used"
                log.warning("incident %s: %s", target.incident_id, error)
        if actions is None:
            actions = templates.render(invariant, target.subject, target.evidence, os)
        await self._db.write(
            incidents.propose,
            target.incident_id,
            source=source,
            actions=msgspec.to_builtins(actions),
            error=error,
            now=iso(self._clock.now()),
        )
