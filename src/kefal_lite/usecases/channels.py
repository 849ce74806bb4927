"""A tenant's notification channels: adding one and deleting one, each with its audit row
in the same transaction (the URL is checked and sealed by the Notifier before)."""

from __future__ import annotations

import sqlite3

from kefal_lite.errors import NotFound
from kefal_lite.store import audit, channels
from kefal_lite.store.channels import Channel
from kefal_lite.usecases.actor import Actor


def add_channel(conn: sqlite3.Connection, actor: Actor, channel: Channel) -> None:
    channels.add(conn, channel)
    audit.record(conn, actor.entry(channel.created_at, "channel_created", channel.id))


def delete_channel(conn: sqlite3.Connection, actor: Actor, channel_id: str, now: str) -> None:
    """Another tenant's channel does not exist here (and leaves no audit row)."""
    if not channels.delete(conn, actor.org_id, channel_id):
        raise NotFound("no such channel")
    audit.record(conn, actor.entry(now, "channel_deleted", channel_id))
