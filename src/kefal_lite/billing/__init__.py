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

    async def may_verify(self, user: User) -> bool:
        """Whether the user's plan includes adversarial verification of contributions."""
        ...

    async def agent_limit(self, user: User) -> int | None:
        """How many active agents the user's plan allows (None: no limit)."""
        ...

    async def checkout(self, user: User, plan: str) -> dict[str, Any]:
        """`{approval_url, subscription_id}`; the state changes only when PayPal confirms."""
        ...

    async def cancel(self, user: User) -> dict[str, Any]:
        """Cancel at period end; returns the status."""
        ...

    async def webhook(self, headers: dict[str, str], body: bytes) -> None:
        """Verify and apply a provider event; raises BadRequest when it is not genuine."""
        ...
