"""Billing as a plug-in: one Protocol, chosen in config. Self-hosters get `noop`."""

from __future__ import annotations

from typing import Protocol


class BillingProvider(Protocol):
    name: str

    async def may_ingest(self, user_id: str) -> bool:
        """Whether this tenant's agents may send snapshots now (False means 402)."""
        ...
