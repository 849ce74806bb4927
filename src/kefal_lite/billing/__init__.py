"""Billing as a plug-in: one Protocol, chosen in config. Self-hosters get `noop`."""

from __future__ import annotations

from typing import Any, Protocol

from kefal_lite.store.orgs import Org
from kefal_lite.usecases.actor import Actor


class BillingProvider(Protocol):
    name: str

    async def status(self, org: Org) -> dict[str, Any]:
        """`{provider, plan, state, trial_ends_at, current_period_end, next_billing_date,
        cancel_at_period_end}` as GET /api/v1/billing/status shows it."""
        ...

    async def may_ingest(self, org_id: str) -> bool:
        """Whether this organization's agents may send snapshots now (False means 402)."""
        ...

    async def has_feature(self, org_id: str, feature: str) -> bool:
        """Whether the organization's plan includes `feature` (billing/plans.py FEATURES)."""
        ...

    async def may_verify(self, org: Org) -> bool:
        """Whether the organization's plan includes adversarial verification of contributions."""
        ...

    async def agent_limit(self, org: Org) -> int | None:
        """How many active agents the organization's plan allows (None: no limit)."""
        ...

    async def checkout(self, actor: Actor, org: Org, plan: str) -> dict[str, Any]:
        """`{approval_url, subscription_id}`; the state changes only when PayPal confirms."""
        ...

    async def cancel(self, actor: Actor, org: Org) -> dict[str, Any]:
        """Cancel at period end; returns the status."""
        ...

    async def webhook(self, headers: dict[str, str], body: bytes) -> None:
        """Verify and apply a provider event; raises BadRequest when it is not genuine."""
        ...
