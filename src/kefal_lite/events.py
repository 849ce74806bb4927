"""In-process event bus for the dashboard's Server-Sent Events, per tenant.

Each client gets a bounded queue: a client too slow to keep up is disconnected
(it reconnects and re-reads state) rather than allowed to grow memory.
Tickets: the browser's EventSource cannot send an Authorization header, so a
session exchanges its JWT for a 60-second, single-use ticket in the URL.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import defaultdict
from typing import Any

from kefal_lite.security import token_hash

QUEUE_MAX = 100
TICKET_SECONDS = 60.0


class Subscription:
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=QUEUE_MAX)
        self.dropped = False


class EventBus:
    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._tickets: dict[bytes, tuple[str, float]] = {}

    @property
    def clients(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def ticket(self, user_id: str) -> str:
        now = time.monotonic()
        for key in [k for k, (_, exp) in self._tickets.items() if exp < now]:
            del self._tickets[key]
        value = secrets.token_urlsafe(24)
        self._tickets[token_hash(value)] = (user_id, now + TICKET_SECONDS)
        return value

    def redeem(self, ticket: str) -> str | None:
        found = self._tickets.pop(token_hash(ticket), None)  # single use
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def subscribe(self, user_id: str) -> Subscription:
        sub = Subscription(user_id)
        self._subs[user_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs[sub.user_id].discard(sub)
        if not self._subs[sub.user_id]:
            del self._subs[sub.user_id]

    def publish(self, user_id: str, event: dict[str, Any]) -> None:
        for sub in list(self._subs.get(user_id, ())):
            if sub.dropped:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.dropped = True  # its stream ends; the client reconnects and catches up
