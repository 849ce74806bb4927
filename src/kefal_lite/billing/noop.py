"""The default provider for self-hosting: plan `self-hosted`, always active, no limits."""

from __future__ import annotations

from typing import Any

from kefal_lite.errors import BadRequest, Conflict
from kefal_lite.store.orgs import Org
from kefal_lite.usecases.actor import Actor

DISABLED = "billing is disabled on this server"


class NoopBilling:
    name = "noop"

    async def status(self, org: Org) -> dict[str, Any]:
        return {
            "provider": self.name,
            "plan": "self-hosted",
            "state": "active",
            "trial_ends_at": None,
            "current_period_end": None,
            "next_billing_date": None,
            "cancel_at_period_end": False,
        }

    async def may_ingest(self, org_id: str) -> bool:
        return True

    async def has_feature(self, org_id: str, feature: str) -> bool:
        return True

    async def may_verify(self, org: Org) -> bool:
        return True

    async def agent_limit(self, org: Org) -> int | None:
        return None

    async def checkout(self, actor: Actor, org: Org, plan: str) -> dict[str, Any]:
        raise Conflict(DISABLED)

    async def cancel(self, actor: Actor, org: Org) -> dict[str, Any]:
        raise Conflict(DISABLED)

    async def webhook(self, headers: dict[str, str], body: bytes) -> None:
        raise BadRequest(DISABLED)
