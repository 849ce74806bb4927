"""History use cases over the database: changes on ingest, compaction, retention, reads."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from kefal_lite import snapshot as wire
from kefal_lite.clock import iso
from kefal_lite.history import diff, segments
from kefal_lite.store import history
from kefal_lite.store.db import Database


async def changes_on_ingest(
    db: Database,
    org_id: str,
    previous_id: str | None,
    previous: diff.Resident | None,
    snap: wire.Snapshot,
) -> tuple[list[diff.Change], diff.Resident]:
    """What `snap` changes against the host's previous snapshot, and what the host keeps
    for the next one. An unchanged fingerprint costs nothing more; a changed one builds
    this snapshot's items and compares them with the resident ones. Only the first change
    since a restart reads the previous snapshot back."""
    current = diff.fingerprint(snap)
    if previous_id is None:
        return [], diff.Resident(current)
    if previous is not None and diff.same(previous.fingerprint, current):
        # equal fingerprints, equal items: the resident ones stand for this snapshot too
        return [], diff.Resident(current, previous.items)
    if previous is not None and previous.items is not None:
        before, before_uptime = previous.items, previous.fingerprint.uptime
    else:
        raw = await db.read(history.latest_body, org_id, previous_id)
        if raw is None:
            return [], diff.Resident(current)
        old = wire.DECODER.decode(raw)
        before, before_uptime = diff.items(old), old.uptime_seconds
    after = diff.items(snap)
    return diff.changes(before, before_uptime, after, snap.uptime_seconds), diff.Resident(
        current, after
    )


def _first_of_each(
    found: list[tuple[int, bytes]],
) -> tuple[list[int], list[segments.Snapshot], int]:
    ids, firsts, held = [], [], 0
    for segment_id, blob in found:
        snaps = segments.unpack(blob)
        ids.append(segment_id)
        firsts.append(snaps[0])
        held += len(snaps)
    return ids, firsts, held


def _hour(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0)


# Of the wall time the compactor runs, the share it works; it rests the remainder after
# each host-hour. Each hour is ~0.7-2 ms of xz a snapshot in a worker thread: a backlog
# (a database from before history: every hour of every host since retention began, folded
# here since migration 14 no longer does it at startup) would otherwise keep one of a small
# server's cores busy for minutes while ingest needs it.
WORK_SHARE = 0.5


async def compact(db: Database, now: datetime, *, share: float = WORK_SHARE) -> int:
    """Fold every finished hour's rows into segments, one host-hour per write (a batch of
    at most 100 host-hours per scan), resting between them so that ingest keeps its CPU
    and its place in the writer's queue; return how many snapshots moved."""
    before = iso(_hour(now))
    rest = (1 - share) / share
    moved = 0
    while True:
        groups = await db.read(history.compactable, before)
        progress = 0
        for org_id, host_id, hour in groups:
            started = time.perf_counter()  # pacing only: no domain time is read here
            # every received_at of the hour starts with "<hour>:", and ":" < ";"
            rows = await db.read(history.rows_between, org_id, host_id, hour + ":", hour + ";")
            if not rows:
                continue
            blob = await asyncio.to_thread(segments.pack, rows)
            try:
                progress += await db.write(history.store_segment, org_id, host_id, rows, blob)
            except history.SegmentRace:
                continue
            await asyncio.sleep((time.perf_counter() - started) * rest)
        moved += progress
        if not groups or not progress:
            return moved


async def apply_retention(db: Database, now: datetime, snapshots_days: int,
                          changes_days: int) -> int:  # fmt: skip
    """Past `snapshots_days` (from the start of that day) keep one snapshot an hour; past
    `changes_days` (at least as long) nothing. Returns how many snapshots went."""
    gone = 0
    # whole days, so that a day's hourly snapshots share one segment
    thin_before = iso((now - timedelta(days=snapshots_days)).replace(hour=0, minute=0, second=0,
                                                                     microsecond=0))  # fmt: skip
    while days := await db.read(history.thinnable_days, thin_before):
        for org_id, host_id, day in days:
            found = await db.read(history.segments_between, org_id, host_id, day, day + "~",
                                  thin_before)  # fmt: skip
            if not found:
                continue
            ids, hourly, held = await asyncio.to_thread(_first_of_each, found)
            blob = await asyncio.to_thread(segments.pack, hourly)
            try:
                await db.write(history.store_thinned, org_id, host_id, ids, hourly, blob)
            except history.SegmentRace:
                continue
            gone += held - len(hourly)
    drop_before = iso(now - timedelta(days=max(changes_days, snapshots_days)))
    while await db.read(history.has_old, drop_before):
        gone += await db.write(history.prune, drop_before)
    return gone
