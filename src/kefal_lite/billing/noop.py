"""The default provider for self-hosting: plan `self-hosted`, always active, no limits."""

from __future__ import annotations

from typing import Any

from kefal_lite.store.users import User


class NoopBilling:
    name = "noop"

    async def status(self, user: User) -> dict[str, Any]:
        return {
            "provider": self.name,
            "plan": "self-hosted",
            "state": "active",
            "trial_ends_at": None,
            "current_period_end": None,
            "next_billing_date": None,
            "cancel_at_period_end": False,
        }

    async def may_ingest(self, user_id: str) -> bool:
        return True
