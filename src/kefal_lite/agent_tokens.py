"""Agent token -> agent lookup with a small in-process cache.

Ingest authenticates every snapshot; a dict hit avoids a database read per
request. Revoke and rotate invalidate the agent's entries after their commit,
and a generation counter keeps a lookup that raced with an invalidation from
putting a stale entry back, so a revoked token fails from the very next request.
Entries also expire after a minute, which bounds how long a change made outside
this process (`kefal-lite user disable` on the command line) takes to apply.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from kefal_lite.security import token_hash
from kefal_lite.store import agents
from kefal_lite.store.agents import AgentIdentity
from kefal_lite.store.db import Database


class AgentTokenCache:
    def __init__(self, db: Database, max_entries: int = 50_000, ttl_seconds: float = 60.0) -> None:
        self._db = db
        self._max = max_entries
        self._ttl = ttl_seconds
        self._entries: OrderedDict[bytes, tuple[float, AgentIdentity]] = OrderedDict()
        self._generation = 0

    async def lookup(self, token: str) -> AgentIdentity | None:
        digest = token_hash(token)
        hit = self._entries.get(digest)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        generation = self._generation
        found = await self._db.read(agents.by_token_hash, digest)
        if found is not None and generation == self._generation:
            self._entries[digest] = (now + self._ttl, found)
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return found

    def invalidate_agent(self, agent_id: str) -> None:
        self._generation += 1
        for digest in [d for d, entry in self._entries.items() if entry[1].agent_id == agent_id]:
            del self._entries[digest]

    def invalidate_org(self, org_id: str) -> None:
        """Every agent of an organization that was deleted (or purged with its account)."""
        self._generation += 1
        for digest in [d for d, entry in self._entries.items() if entry[1].org_id == org_id]:
            del self._entries[digest]
