"""Timers: hosts that stop reporting (agent_silent) and snapshot retention.

Both run as background tasks and are plain methods too, so tests drive them
with an injected clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx

from kefal_lite.clock import Clock, iso
from kefal_lite.config import Settings
from kefal_lite.detect import predicates as p
from kefal_lite.detect.model import Invariant
from kefal_lite.history import service as history
from kefal_lite.rules import Rules
from kefal_lite.store import channels, hosts, incidents, jobs, stats
from kefal_lite.store.db import Conn, Database
from kefal_lite.store.hosts import Host
from kefal_lite.store.incidents import NewFinding

log = logging.getLogger(__name__)

SILENT_CHECK_SECONDS = 30.0
PRUNE_SECONDS = 600.0
# How soon invariants imported by the CLI beside a running server are in force.
RULES_POLL_SECONDS = 3.0


class Monitor:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Clock,
        rules: Rules,
        on_incident: Callable[[], None] = lambda: None,
        on_silent: Callable[[Host], None] = lambda host: None,
        refresh_rules: Callable[[], Awaitable[object]] | None = None,
        purge_accounts: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        # Deletes the accounts whose self-service deletion is due (accounts.purge_due).
        self._purge_accounts = purge_accounts
        self._refresh_rules = refresh_rules
        self._on_incident = on_incident
        self._on_silent = on_silent
        self._settings = settings
        self._db = db
        self._clock = clock
        self._rules = rules
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(
                self._every(SILENT_CHECK_SECONDS, self.check_silent), name="silent"
            ),
            asyncio.create_task(self._every(PRUNE_SECONDS, self.prune), name="retention"),
        ]
        if self._refresh_rules is not None:
            poll = self._every(RULES_POLL_SECONDS, self._refresh_rules)
            self._tasks.append(asyncio.create_task(poll, name="rules"))
        if self._settings.heartbeat_url:
            beat = asyncio.create_task(self._every(60, self.heartbeat), name="heartbeat")
            self._tasks.append(beat)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _every(self, seconds: float, job: object) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()  # type: ignore[operator]
            except Exception:
                log.exception("background job failed; it runs again in %.0f s", seconds)

    async def check_silent(self) -> int:
        """Open each agent-silence rule's incident on every host past that rule's own
        threshold; return how many hosts went silent."""
        if not await self._db.leader("silent"):  # several servers on PostgreSQL: one runs it
            return 0
        rules = self._rules.catalog.silent_rules
        now = self._clock.now()
        due: dict[str, tuple[Host, list[Invariant]]] = {}
        for rule in rules:
            assert isinstance(rule.predicate, p.AgentSilent)
            cutoff = iso(now - timedelta(minutes=rule.predicate.params.minutes))
            for host in await self._db.read(hosts.silent_past, rule.id, cutoff):
                due.setdefault(host.id, (host, []))[1].append(rule)
        went = 0
        for host, fired in due.values():
            findings = []
            for rule in fired:
                assert isinstance(rule.predicate, p.AgentSilent)
                minutes = rule.predicate.params.minutes
                findings.append(NewFinding(
                    invariant_id=rule.id, invariant_name=rule.name, category=rule.category,
                    severity=rule.severity, state_like=True, attack=rule.attack,
                    contributed_by=rule.contributed_by, subject=f"agent:{host.agent_id}",
                    title=f"{rule.title}: no snapshot from {host.hostname} for over {minutes} min",
                    evidence={"hostname": host.hostname, "agent_id": host.agent_id,
                              "last_seen_at": host.last_seen_at, "minutes": minutes},
                    timer=rule.timer,
                ))  # fmt: skip
            newly = await self._db.write(_went_silent, host, findings, iso(now),
                                         self._settings.remediation_auto)  # fmt: skip
            if newly:
                went += 1
                self._on_silent(host)
        if due:
            self._on_incident()
        return went

    async def heartbeat(self) -> bool:
        """Tell the outside checker this server is alive; a failure is logged, not raised.
        The URL is the operator's configuration, not a tenant's: no urlguard here."""
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(self._settings.heartbeat_url)
            ok = response.status_code < 400
        except httpx.HTTPError:
            ok = False
        if not ok:
            log.warning("heartbeat to the configured URL failed")  # the URL may hold a token
        return ok

    async def prune(self) -> int:
        """Fold finished hours of snapshot history into segments, apply the retention tiers
        (returns how many snapshots went), and prune the bookkeeping that would otherwise
        only grow: finished jobs, old flap-limit notices. Purges the accounts whose deletion
        is due."""
        if not await self._db.leader("retention"):  # several servers on PostgreSQL: one runs it
            return 0
        now = self._clock.now()
        if self._purge_accounts is not None and await self._purge_accounts():
            if self._refresh_rules is not None:
                await self._refresh_rules()  # their contributed rules went with them
        cutoff = iso(now - timedelta(days=self._settings.retention_snapshots_days))
        await self._db.write(jobs.prune_finished, cutoff)
        await self._db.write(channels.prune_notices, iso(now - timedelta(days=1)))
        await history.compact(self._db, now)
        return await history.apply_retention(self._db, now,
                                             self._settings.retention_snapshots_days,
                                             self._settings.retention_changes_days)  # fmt: skip


def _went_silent(conn: Conn, host: Host, findings: list[NewFinding], now: str,
                 auto_remediate: bool) -> bool:  # fmt: skip
    """Whether the host is newly silent; nothing happens if it reported meanwhile."""
    newly = hosts.mark_silent(conn, host.user_id, host.id, host.last_seen_at,
                              [f.invariant_id for f in findings])  # fmt: skip
    if newly is None:
        return False
    for finding in findings:
        opened = incidents.open_incident(conn, user_id=host.user_id, host_id=host.id,
                                         snapshot_id=host.snapshot_id, finding=finding, now=now,
                                         auto_remediate=auto_remediate)  # fmt: skip
        if opened:
            stats.bump(conn, now[:10], "incidents")
            channels.queue_changes(conn, user_id=host.user_id, host_id=host.id, opened=[opened],
                                   resolved=[], now=now)  # fmt: skip
    return newly
