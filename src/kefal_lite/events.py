"""In-process event bus for the dashboard's Server-Sent Events, per tenant.

Each client gets a bounded queue: a client too slow to keep up is disconnected
(it reconnects and re-reads state) rather than allowed to grow memory.
Tickets: the browser's EventSource cannot send an Authorization header, so a
session exchanges its JWT for a 60-second, single-use ticket in the URL.

A stream belongs to the session it was opened from and the token version it was opened
under: when that session ends (logout, revoked from the sessions list) its streams end;
when the user's token version moves (logout-all, password change or reset, role change,
disable) every stream of that user ends; at once for changes made by this process and
within CHECK_SECONDS for those made by the CLI on the same database. At most MAX_STREAMS
per user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from kefal_lite.errors import TooManyRequests
from kefal_lite.security import token_hash

log = logging.getLogger(__name__)

QUEUE_MAX = 100
TICKET_SECONDS = 60.0
MAX_STREAMS = 5
CHECK_SECONDS = 2.0

# Given user ids, the current token version of each that may still hold a session
# (an unknown or disabled user is left out).
SessionVersions = Callable[[Collection[str]], Awaitable[dict[str, int]]]
# Given session ids, those still live.
LiveSessions = Callable[[Collection[str]], Awaitable[set[str]]]


class Subscription:
    def __init__(self, user_id: str, token_version: int, session_id: str) -> None:
        self.user_id = user_id
        self.token_version = token_version
        self.session_id = session_id
        # None is the end-of-stream mark (sessions ended); the stream stops on it.
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=QUEUE_MAX)
        self.dropped = False

    def close(self) -> None:
        if self.dropped:
            return
        self.dropped = True
        with contextlib.suppress(asyncio.QueueFull):  # full: the stream sees `dropped` next
            self.queue.put_nowait(None)


class EventBus:
    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._tickets: dict[bytes, tuple[str, int, str, float]] = {}
        self._watcher: asyncio.Task[None] | None = None

    @property
    def clients(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def ticket(self, user_id: str, token_version: int, session_id: str) -> str:
        now = time.monotonic()
        for key in [k for k, (_, _, _, exp) in self._tickets.items() if exp < now]:
            del self._tickets[key]
        value = secrets.token_urlsafe(24)
        self._tickets[token_hash(value)] = (user_id, token_version, session_id,
                                            now + TICKET_SECONDS)  # fmt: skip
        return value

    def redeem(self, ticket: str) -> tuple[str, int, str] | None:
        """(user id, token version, session id of the session that asked for it), once."""
        found = self._tickets.pop(token_hash(ticket), None)  # single use
        if found is None or found[3] < time.monotonic():
            return None
        return found[0], found[1], found[2]

    def subscribe(self, user_id: str, token_version: int, session_id: str) -> Subscription:
        # Each stream holds a connection and a task: a user (or a stolen session) must not
        # be able to open thousands.
        if len(self._subs.get(user_id, ())) >= MAX_STREAMS:
            raise TooManyRequests(
                5, f"at most {MAX_STREAMS} open event streams per user; close one first"
            )
        sub = Subscription(user_id, token_version, session_id)
        self._subs[user_id].add(sub)
        return sub

    def end_sessions(self, user_id: str) -> None:
        """Every session of the user ended: end their streams now."""
        for sub in list(self._subs.get(user_id, ())):
            sub.close()

    def end_session(self, user_id: str, session_id: str) -> None:
        """One session of the user ended: end the streams opened from it now."""
        for sub in list(self._subs.get(user_id, ())):
            if sub.session_id == session_id:
                sub.close()

    def close_stale(self, current: dict[str, int], live: set[str] | None = None) -> None:
        for user_id, subs in list(self._subs.items()):
            for sub in list(subs):
                if current.get(user_id) != sub.token_version or (
                    live is not None and sub.session_id not in live
                ):
                    sub.close()

    def start(self, versions: SessionVersions, live_sessions: LiveSessions) -> None:
        """Watch the token versions and sessions of open streams (the CLI changes them too)."""

        async def watch() -> None:
            while True:
                await asyncio.sleep(CHECK_SECONDS)
                if not self._subs:
                    continue
                try:
                    sids = {sub.session_id for subs in self._subs.values() for sub in subs}
                    self.close_stale(await versions(list(self._subs)), await live_sessions(sids))
                except Exception:  # a busy database must not end the watcher for good
                    log.exception("checking event-stream sessions failed")

        self._watcher = asyncio.create_task(watch(), name="event-stream sessions")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

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
