"""Billing as a plug-in: one Protocol, chosen in config. Self-hosters get `noop`."""

from __future__ import annotations

from typing import Any, Protocol

from kefal_lite.store.users import User


class BillingProvider(Protocol):
    name: str

    async def status(self, user: User) -> dict[str, Any]:
        """`{provider, plan, state, trial_ends_at, current_period_end, next_billing_date,
        cancel_at_period_end}` as GET /api/v1/billing/status shows it."""
        ...

    async def may_ingest(self, user_id: str) -> bool:
        """Whether this tenant's agents may send snapshots now (False means 402)."""
        ...
