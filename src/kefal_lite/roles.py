"""Organization roles, weakest first, and the one comparison every check uses.

owner: billing, members, delete or export the organization. admin: agents, rules,
channels, suppressions, invitations, enrollment tokens, API keys. member: triage
(acknowledge, dismiss, remediate, baseline, resolve). viewer: read-only.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Role = Literal["viewer", "member", "admin", "owner"]
ROLES: tuple[Role, ...] = ("viewer", "member", "admin", "owner")
_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}


def at_least(role: str, minimum: str) -> bool:
    """Whether `role` may do what needs `minimum` (an unknown role may do nothing)."""
    return _RANK.get(role, -1) >= _RANK[minimum]


class Access(msgspec.Struct, frozen=True):
    """What a request may do: the organization its session or API key is bound to, and the
    role it acts with there (a key's role, capped by its maker's current one)."""

    org_id: str
    role: str
    key_id: str | None = None
    key_name: str | None = None
    session_id: str | None = None  # the session's row (sessions.py); None for an API key
    # False: the session's organization is no longer the user's (removed by a co-owner).
    # The account stays usable (issue #17, hole 2); org-scoped routes answer 401 as before.
    member: bool = True


def weaker(a: str, b: str) -> str:
    return a if _RANK.get(a, -1) <= _RANK.get(b, -1) else b
