"""Subscription state per organization, and PayPal webhook events already processed
(idempotency)."""

from __future__ import annotations

import sqlite3

import msgspec

from kefal_lite.store.rows import struct


class Subscription(msgspec.Struct, frozen=True):
    org_id: str
    plan: str
    state: str  # active | cancelled | past_due | expired
    provider_id: str | None
    current_period_end: str | None
    next_billing_date: str | None
    cancel_at_period_end: bool
    updated_at: str


_COLUMNS = ", ".join(Subscription.__struct_fields__)


def _sub(row: sqlite3.Row | None) -> Subscription | None:
    if row is None:
        return None
    return struct(Subscription, row, cancel_at_period_end=bool(row["cancel_at_period_end"]))


def get(conn: sqlite3.Connection, org_id: str) -> Subscription | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM subscriptions WHERE org_id = ?", (org_id,)
    ).fetchone()
    return _sub(row)


def by_provider_id(conn: sqlite3.Connection, provider_id: str) -> Subscription | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM subscriptions WHERE provider_id = ?", (provider_id,)
    ).fetchone()
    return _sub(row)


def put(conn: sqlite3.Connection, sub: Subscription) -> None:
    conn.execute(
        f"INSERT INTO subscriptions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (org_id) DO UPDATE SET plan = excluded.plan, state = excluded.state,"
        " provider_id = excluded.provider_id, current_period_end = excluded.current_period_end,"
        " next_billing_date = excluded.next_billing_date,"
        " cancel_at_period_end = excluded.cancel_at_period_end, updated_at = excluded.updated_at",
        (
            sub.org_id,
            sub.plan,
            sub.state,
            sub.provider_id,
            sub.current_period_end,
            sub.next_billing_date,
            int(sub.cancel_at_period_end),
            sub.updated_at,
        ),
    )


def first_time(conn: sqlite3.Connection, event_id: str, event_type: str, now: str) -> bool:
    """Record a webhook event; False if it was processed before (a replay)."""
    cur = conn.execute(
        "INSERT INTO webhook_events (event_id, event_type, received_at) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (event_id, event_type, now),
    )
    return cur.rowcount == 1
