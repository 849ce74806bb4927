"""The default provider for self-hosting: plan `self-hosted`, always active, no limits."""

from __future__ import annotations

from typing import Any

from kefal_lite.errors import BadRequest, Conflict
from kefal_lite.store.users import User

DISABLED = "billing is disabled on this server"


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

    async def may_verify(self, user: User) -> bool:
        return True

    async def agent_limit(self, user: User) -> int | None:
        return None

    async def checkout(self, user: User, plan: str) -> dict[str, Any]:
        raise Conflict(DISABLED)

    async def cancel(self, user: User) -> dict[str, Any]:
        raise Conflict(DISABLED)

    async def webhook(self, headers: dict[str, str], body: bytes) -> None:
        raise BadRequest(DISABLED)
