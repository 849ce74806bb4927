"""The default provider for self-hosting: plan `self-hosted`, always active, no limits."""

from __future__ import annotations


class NoopBilling:
    name = "noop"

    async def may_ingest(self, user_id: str) -> bool:
        return True
