"""The check every authenticated request makes: is the JWT's session still live?

One indexed read (the session joined to its user) replaces the user read each request
already made, so a revoked session, from this process or from the CLI on the same file,
fails on its very next request, at no extra cost. `last_seen_at` is written at most once
a minute per session, never per request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta

from kefal_lite.clock import Clock, iso, parse_iso
from kefal_lite.security import SESSION_TTL
from kefal_lite.store import sessions
from kefal_lite.store.db import Database, DatabaseBusy
from kefal_lite.store.sessions import Session
from kefal_lite.store.users import User
from kefal_lite.usecases import sessions as session_cases
from kefal_lite.usecases.actor import Actor

TOUCH_EVERY = timedelta(minutes=1)


class SessionGate:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        session_ended: Callable[[str, str], None] = lambda user_id, session_id: None,
        sessions_ended: Callable[[str], None] = lambda user_id: None,
    ) -> None:
        self._db = db
        self._clock = clock
        # Told when one session (user id, session id) or all of a user's ended, so the live
        # event streams opened from them end at once.
        self._session_ended = session_ended
        self._sessions_ended = sessions_ended
        # Sessions whose last_seen_at write is in flight: concurrent requests of one
        # session write it once.
        self._touching: set[str] = set()

    async def user(self, user_id: str, session_id: object, token_version: object) -> User | None:
        """The session's user if the session is live and the token's version current."""
        if not isinstance(session_id, str):
            return None  # a token from before sessions had rows: log in again
        found = await self._db.read(sessions.check, user_id, session_id)
        if found is None:
            return None
        user, session = found
        if (
            user.disabled
            or session.revoked_at is not None
            or token_version != user.token_version
            or session.token_version != user.token_version
        ):
            return None
        now = self._clock.now()
        due = now - parse_iso(session.last_seen_at) >= TOUCH_EVERY
        if due and session_id not in self._touching:
            self._touching.add(session_id)
            try:
                # A saturated writer skips the bookkeeping; the request itself goes on.
                with contextlib.suppress(DatabaseBusy):
                    await self._db.write(sessions.touch, session_id, iso(now))
            finally:
                self._touching.discard(session_id)
        return user

    async def of_user(self, user: User) -> list[Session]:
        """The user's live sessions (older than the token lifetime are expired anyway)."""
        since = iso(self._clock.now() - SESSION_TTL)
        return await self._db.read(sessions.live, user.id, since)

    async def end(self, actor: Actor, session_id: str, *, action: str = "session_revoked") -> None:
        await self._db.write(session_cases.end, actor, session_id, iso(self._clock.now()),
                             action=action)  # fmt: skip
        self._session_ended(actor.user_id, session_id)

    async def end_all(self, actor: Actor) -> int:
        ended = await self._db.write(session_cases.end_all, actor, iso(self._clock.now()))
        self._sessions_ended(actor.user_id)
        return ended
