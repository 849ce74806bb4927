"""Runs the `lateral` pack per tenant over the estate, on a timer, through the incident store.

Findings are state-like: an incident opens while its finding holds and resolves on the
first run that no longer finds it. The first run is at start: it also fills the graph
cache and builds the estate document, so the dashboard's first estate request after a
restart finds it ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from kefal_lite import lateral
from kefal_lite.clock import iso
from kefal_lite.services import Services
from kefal_lite.store import channels, incidents, stats
from kefal_lite.store import estate as estate_store
from kefal_lite.store.db import Conn
from kefal_lite.store.incidents import Changes, NewFinding

log = logging.getLogger(__name__)

EVERY_SECONDS = 60.0


def _finding(f: lateral.EstateFinding) -> NewFinding:
    r = f.rule
    return NewFinding(invariant_id=r.id, invariant_name=r.name, category=r.category,
                      severity=r.severity, state_like=True, attack=r.attack, contributed_by=None,
                      subject=f.subject, title=f.title, evidence=f.evidence)  # fmt: skip


def _apply(conn: Conn, org_id: str, found: list[lateral.EstateFinding],
           now: str) -> dict[str, Changes]:  # fmt: skip
    """Open what is found, count repeats, resolve what is no longer found; per host. No
    automatic remediation: there are no templates for estate findings (yet)."""
    active = estate_store.active_by_prefix(conn, org_id, lateral.PREFIX)
    changes: dict[str, Changes] = {}
    seen: set[tuple[str, str, str]] = set()
    for f in found:
        key = (f.host_id, f.rule.id, f.subject)
        if key in seen:
            continue
        seen.add(key)
        opened = incidents.open_incident(conn, org_id=org_id, host_id=f.host_id,
                                         snapshot_id=None, finding=_finding(f), now=now,
                                         auto_remediate=False)  # fmt: skip
        c = changes.setdefault(f.host_id, Changes())
        if opened:
            c.opened.append(opened)
            stats.bump(conn, now[:10], "incidents")
        elif key in active:
            c.updated.append(active[key])
    for key, incident_id in active.items():
        if key not in seen:
            incidents.resolve(conn, incident_id, now, by="auto")
            changes.setdefault(key[0], Changes()).resolved.append(incident_id)
    for host_id, c in changes.items():
        channels.queue_changes(conn, org_id=org_id, host_id=host_id, opened=c.opened,
                               resolved=c.resolved, now=now)  # fmt: skip
    return changes


async def run_for_org(svc: Services, org_id: str) -> dict[str, Changes]:
    """One evaluation of the pack over the tenant's estate; host id -> what changed."""
    facts = await svc.graphs.facts(org_id)
    groups = await svc.db.read(estate_store.groups, org_id)
    critical = await svc.db.read(estate_store.critical_hosts, org_id, lateral.PREFIX)
    found = await asyncio.to_thread(
        lateral.evaluate, lateral.Estate(facts, groups, frozenset(critical))
    )
    now = iso(svc.clock.now())
    changes = await svc.db.write(_apply, org_id, found, now)
    if any(c.opened or c.resolved for c in changes.values()):
        svc.jobs.kick()
    for host_id, c in changes.items():
        for kind, ids in (("incident.opened", c.opened), ("incident.resolved", c.resolved)):
            for incident_id in ids:
                svc.events.publish(
                    org_id, {"type": kind, "incident_id": incident_id, "host_id": host_id}
                )
    # The estate document too, with the incidents just written: the dashboard's first
    # request after a start (and after a quiet minute) finds it built. An unchanged estate
    # costs one comparison here.
    await svc.graphs.estate_document(org_id)
    return changes


async def run_all(svc: Services) -> None:
    for org_id in await svc.db.read(estate_store.tenants_with_hosts):
        try:
            await run_for_org(svc, org_id)
        except Exception:  # one tenant's failure must not stop the others
            log.exception("lateral pack failed for a tenant; it runs again in %.0f s",
                          EVERY_SECONDS)  # fmt: skip


# How long a start waits for the timer's first run (findings, graph cache, estate
# document) before it serves anyway; ~50 ms of CPU per 1,000 hosts, so a larger estate
# goes on warming in the background.
WARM_SECONDS = 2.0


class Timer:
    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="lateral")

    async def warm(self, seconds: float = WARM_SECONDS) -> bool:
        """Wait up to `seconds` for the first run; whether it finished."""
        try:
            await asyncio.wait_for(self._first.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await run_all(self._svc)
            self._first.set()
            await asyncio.sleep(EVERY_SECONDS)
