"""Daily counters, bumped inside the write batch that causes them, so the admin dashboard
never scans snapshot history and stays right after retention prunes it."""

from __future__ import annotations

import sqlite3

METRICS = ("new_users", "active_agents", "snapshots", "incidents")


def bump(conn: sqlite3.Connection, day: str, metric: str, n: int = 1) -> None:
    if n:
        conn.execute(
            "INSERT INTO daily_counts (day, metric, value) VALUES (?, ?, ?)"
            # qualified: PostgreSQL finds a bare `value` ambiguous beside excluded.value
            " ON CONFLICT (day, metric) DO UPDATE SET value = daily_counts.value + excluded.value",
            (day, metric, n),
        )


def agent_active(conn: sqlite3.Connection, day: str, agent_id: str) -> None:
    cur = conn.execute(
        "INSERT INTO daily_active_agents (day, agent_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (day, agent_id),
    )
    if cur.rowcount == 1:
        bump(conn, day, "active_agents")


def series(conn: sqlite3.Connection, first_day: str) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        "SELECT day, metric, value FROM daily_counts WHERE day >= ?", (first_day,)
    ).fetchall()
    out: dict[str, dict[str, int]] = {}
    for day, metric, value in rows:
        out.setdefault(day, {})[metric] = int(value)
    return out


def totals(conn: sqlite3.Connection) -> dict[str, object]:
    def one(sql: str) -> int:
        return int(conn.execute(sql).fetchone()[0])

    by_severity = {s: 0 for s in ("critical", "high", "medium", "low")}
    for severity, count in conn.execute(
        "SELECT severity, COUNT(*) FROM incidents WHERE status IN ('open', 'acknowledged')"
        " GROUP BY severity"
    ):
        by_severity[severity] = int(count)
    return {
        "users": one("SELECT COUNT(*) FROM users"),
        "agents": one("SELECT COUNT(*) FROM agents WHERE status = 'active'"),
        "hosts_online": one("SELECT COUNT(*) FROM hosts WHERE silent = 0"),
        "hosts_silent": one("SELECT COUNT(*) FROM hosts WHERE silent = 1"),
        "snapshots": one("SELECT COUNT(*) FROM snapshots"),
        "open_incidents": by_severity,
    }
