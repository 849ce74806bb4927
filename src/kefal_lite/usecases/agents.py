"""Adding an agent to an account, whichever way it enrolls (password or enrollment token):
the plan's limit is checked and the agent inserted in one writer transaction, so two
enrollments racing for the last place cannot both get it."""

from __future__ import annotations

import sqlite3
from typing import Any

from kefal_lite.errors import Conflict, NotAllowed
from kefal_lite.store import agents, audit
from kefal_lite.store.agents import Agent
from kefal_lite.usecases.actor import Actor


def add_agent(conn: sqlite3.Connection, actor: Actor, /, *, agent_id: str, name: str | None,
              token_hash: bytes, limit: int | None, now: str, **detail: Any) -> Agent:  # fmt: skip
    """`limit`: the plan's number of active agents (None: no limit)."""
    if limit is not None and agents.count_active(conn, actor.user_id) >= limit:
        raise NotAllowed(f"your plan allows {limit} agent(s); revoke one or upgrade the plan")
    agent = agents.create(conn, user_id=actor.user_id, agent_id=agent_id,
                          name=name or f"agent-{agent_id[:8]}", token_hash=token_hash,
                          now=now)  # fmt: skip
    audit.record(conn, actor.entry(now, "agent_enrolled", agent_id, **detail))
    return agent


def rotate_token(conn: sqlite3.Connection, user_id: str, agent_id: str,
                 token_hash: bytes) -> bool:  # fmt: skip
    """A new token for an active agent; False when the tenant has no such agent. A revoked
    one stays revoked: rotating would bring it back."""
    agent = agents.get(conn, user_id, agent_id)
    if agent is None:
        return False
    if agent.status != "active":
        raise Conflict("the agent is revoked; enroll a new one instead of rotating its token")
    return agents.rotate(conn, user_id, agent_id, token_hash)
