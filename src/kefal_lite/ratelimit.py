"""Sliding-window counters for login, enroll and forgot-password.

Hand-written rather than Litestar's RateLimitConfig because that counts every
request per client, and here only *failures* count (a fleet roll-out enrolls
hundreds of agents a minute and must never be throttled), keyed by client and
username together.
"""

from __future__ import annotations

import math
from collections import deque

from kefal_lite.clock import Clock


class WindowLimiter:
    def __init__(self, limit: int, window_seconds: float, clock: Clock, max_keys: int = 100_000):
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def retry_after(self, key: str) -> int | None:
        """Seconds until `key` may try again, or None if it may now."""
        hits = self._hits.get(key)
        if not hits:
            return None
        now = self._now()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return None
        if len(hits) < self.limit:
            return None
        return max(1, math.ceil(hits[0] + self.window - now))

    def add(self, key: str) -> None:
        if key not in self._hits and len(self._hits) >= self._max_keys:
            self._prune()
        self._hits.setdefault(key, deque()).append(self._now())

    def _prune(self) -> None:
        cutoff = self._now() - self.window
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= cutoff]:
            del self._hits[key]
        # Still full of live keys (a spray from many addresses): forget the oldest half
        # rather than grow without bound.
        if len(self._hits) >= self._max_keys:
            for key in list(self._hits)[: self._max_keys // 2]:
                del self._hits[key]
