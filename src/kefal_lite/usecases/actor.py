"""Who does a thing, and the one place an audit entry for it is built."""

from __future__ import annotations

from typing import Any

import msgspec

from kefal_lite.store import audit


class Actor(msgspec.Struct, frozen=True):
    """A signed-in person (or the operator at the CLI), acting in tenant `user_id`."""

    user_id: str
    username: str
    client: str | None = None

    @property
    def trail(self) -> str:
        """How the actor appears in an incident's history."""
        return f"user:{self.username}"

    def entry(self, now: str, action: str, target: str | None = None,
              **detail: Any) -> audit.Entry:  # fmt: skip
        return audit.Entry(now, self.user_id, self.username, action, target, self.client,
                           detail or None)  # fmt: skip
