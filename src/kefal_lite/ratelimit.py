"""Sliding-window counters for login, enroll, OTP checks and forgot-password.

Hand-written rather than Litestar's RateLimitConfig because that counts every
request per client, and here only *failures* count (a fleet roll-out enrolls
hundreds of agents a minute and must never be throttled), keyed by client and
username together.

A credential check takes its slot in the window *before* the slow argon2 verify
(`attempt`): counting only after it let 40 parallel guesses all pass the check
while none had failed yet. A success gives its slot back; a failure (or any
error) keeps it. A window full only of checks still running makes the next one
wait for them rather than fail, so concurrent correct logins are never refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kefal_lite.clock import Clock
from kefal_lite.errors import TooManyRequests

# How long a check waits for running checks of the same key to finish before giving up.
WAIT_SECONDS = 10.0


def client_key(client: str) -> str:
    """The client as a limit counts it: an IPv6 address by its /64, which one host or one
    customer line owns whole (counted per address, each of its 2^64 got a fresh budget);
    an IPv4-mapped address as the IPv4 address."""
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class _Hit:
    __slots__ = ("at", "pending")

    def __init__(self, at: float, pending: bool) -> None:
        self.at = at
        self.pending = pending


class Slot:
    """One reserved place in the window; `succeeded()` gives it back when the block ends."""

    def __init__(self, limiter: WindowLimiter, key: str, hit: _Hit) -> None:
        self._limiter = limiter
        self._key = key
        self._hit = hit
        self.ok = False

    def succeeded(self) -> None:
        self.ok = True

    def _settle(self) -> None:
        self._hit.pending = False
        if self.ok:
            hits = self._limiter._hits.get(self._key)
            if hits is not None and self._hit in hits:
                hits.remove(self._hit)
        self._limiter._wake(self._key)


class WindowLimiter:
    def __init__(self, limit: int, window_seconds: float, clock: Clock, max_keys: int = 100_000):
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._max_keys = max_keys
        self._hits: dict[str, deque[_Hit]] = {}
        self._changed: dict[str, asyncio.Event] = {}

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _live(self, key: str) -> deque[_Hit] | None:
        hits = self._hits.get(key)
        if hits is None:
            return None
        cutoff = self._now() - self.window
        while hits and hits[0].at <= cutoff and not hits[0].pending:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return None
        return hits

    def _wait(self, hits: deque[_Hit]) -> int:
        return max(1, math.ceil(hits[0].at + self.window - self._now()))

    def retry_after(self, key: str) -> int | None:
        """Seconds until `key` may try again, or None if it may now."""
        hits = self._live(key)
        if hits is None or len(hits) < self.limit:
            return None
        return self._wait(hits)

    def add(self, key: str) -> None:
        """Count one attempt now (for limits where every request counts)."""
        self._append(key, _Hit(self._now(), pending=False))

    def _append(self, key: str, hit: _Hit) -> None:
        if key not in self._hits and len(self._hits) >= self._max_keys:
            self._prune()
        self._hits.setdefault(key, deque()).append(hit)

    def _wake(self, key: str) -> None:
        event = self._changed.pop(key, None)
        if event is not None:
            event.set()

    @asynccontextmanager
    async def attempt(self, key: str, refusal: str) -> AsyncIterator[Slot]:
        """Reserve a slot for one check of `key`, or raise TooManyRequests(`refusal`).

        The check and the reservation happen with no await between them, so no two
        requests can both see the last free slot.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        while True:
            hits = self._live(key)
            if hits is None or len(hits) < self.limit:
                break
            if sum(not h.pending for h in hits) >= self.limit:
                raise TooManyRequests(self._wait(hits), refusal)
            event = self._changed.setdefault(key, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise TooManyRequests(1, refusal) from None
        hit = _Hit(self._now(), pending=True)
        self._append(key, hit)
        slot = Slot(self, key, hit)
        try:
            yield slot
        finally:
            slot._settle()

    def _prune(self) -> None:
        cutoff = self._now() - self.window
        for key in [
            k for k, v in self._hits.items() if not v or (v[-1].at <= cutoff and not v[-1].pending)
        ]:
            del self._hits[key]
        # Still full of live keys (a spray from many addresses): forget the oldest half
        # rather than grow without bound.
        if len(self._hits) >= self._max_keys:
            for key in list(self._hits)[: self._max_keys // 2]:
                del self._hits[key]
