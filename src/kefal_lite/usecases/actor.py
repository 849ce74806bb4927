"""Who does a thing, and the one place an audit entry for it is built."""

from __future__ import annotations

from typing import Any

import msgspec

from kefal_lite.store import audit


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """A signed-in person, an API key, or the operator at the CLI: `user_id` is who (a key
    acts for the account that made it), `org_id` the tenant acted in."""

    org_id: str
    user_id: str
    username: str
    client: str | None = None
    key_name: str | None = None  # set when an API key acts: the trail names the key

    @property
    def name(self) -> str:
        return f"key:{self.key_name}" if self.key_name is not None else self.username

    @property
    def trail(self) -> str:
        """How the actor appears in an incident's history."""
        return self.name if self.key_name is not None else f"user:{self.username}"

    def entry(self, now: str, action: str, target: str | None = None,
              **detail: Any) -> audit.Entry:  # fmt: skip
        return audit.Entry(now, self.user_id or None, self.name, action, target, self.client,
                           detail or None, self.org_id or None)  # fmt: skip
