"""The graph, estate and attack-path inputs of each tenant, kept between requests.

Owned by Services (built in the app's lifespan), so api/graph.py holds no state: a
second app in the same process (tests, a CLI beside a server) has caches of its own.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from kefal_lite import estate, graph
from kefal_lite.detect.model import SEVERITY_RANK
from kefal_lite.errors import NotFound
from kefal_lite.paths import HostFacts
from kefal_lite.store import estate as estate_store
from kefal_lite.store import hosts, incidents
from kefal_lite.store.db import Database
from kefal_lite.store.hosts import Host

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


def views(rows: list[Host]) -> list[graph.HostView]:
    out = []
    for h in rows:
        snap = None
        if h.latest:
            try:
                snap = graph.DECODER.decode(h.latest)
            except msgspec.DecodeError:  # stored as ingested, so it decoded once already
                snap = None
        status = "silent" if h.silent else "online"
        out.append(graph.HostView(h.id, h.hostname, h.os, h.kernel, status, h.last_seen_at, snap))
    return out


def _facts_snapshot(h: Host) -> graph.FactsSnapshot | None:
    try:
        return graph.FACTS_DECODER.decode(h.latest) if h.latest else None
    except msgspec.DecodeError:  # stored as ingested, so it decoded once already
        return None


def _stored_blob(found: tuple[str, bytes] | None, snapshot_id: str | None) -> bytes | None:
    # facts of another snapshot (the host reported again meanwhile) are not these
    return found[1] if found is not None and found[0] == snapshot_id else None


def _facts(h: Host, blob: bytes | None) -> HostFacts:
    if blob is not None:
        try:
            # its hostname is the snapshot's, which ingest also wrote to the host row
            return graph.FACTS_FROM_BLOB.decode(blob)
        except msgspec.DecodeError:  # written by another version: read the body instead
            pass
    return graph.facts(h.id, h.hostname, _facts_snapshot(h))


class _GcPause:
    """The cyclic GC paused while any build runs: a 1,000-host graph allocates 60,000
    dicts, and the collections they trigger doubled its build time. Counted, because the
    switch is process-wide and builds overlap on worker threads: the last one to finish
    turns it back on, and only if it was on before the first began."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._running == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._running += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0 and self._was_enabled:
                gc.enable()


class _Entry(msgspec.Struct):
    facts_key: tuple[Any, ...]
    facts: HostFacts
    key: tuple[Any, ...] = ()
    fragment: graph.Fragment | None = None


def _worst(found: list[graph.OpenIncident]) -> str | None:
    worst = None
    for inc in found:
        if worst is None or SEVERITY_RANK[inc.severity] > SEVERITY_RANK[worst]:
            worst = inc.severity
    return worst


class Graphs:
    """Each host's facts (for paths and the estate view) and encoded fragment (for the
    per-host view), reused while its snapshot, status, name and open incidents are
    unchanged: a refresh decodes and draws only the hosts that reported since, and the
    estate view never builds a fragment. Keys are host ids (unique across tenants), and
    every read that feeds it is filtered on the caller's user id. The last estate
    document per tenant is kept too, served again while no input changed."""

    def __init__(self, db: Database, max_hosts: int = 50_000, max_tenants: int = 1_000) -> None:
        self._db = db
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._max = max_hosts
        self._docs: dict[str, tuple[tuple[Any, ...], bytes]] = {}
        self._max_tenants = max_tenants
        self._gc = _GcPause()

    async def off_loop(self, build: Callable[[], T]) -> T:
        """Run `build` on a worker thread with the cyclic GC paused."""

        def run() -> T:
            with self._gc:
                return build()

        return await asyncio.to_thread(run)

    async def load(
        self, org_id: str, fragments: bool
    ) -> tuple[list[Host], list[_Entry], dict[str, list[graph.OpenIncident]]]:
        """The caller's hosts with their cache entries up to date (fragments too, if asked).
        One load per tenant at a time: the first request after a start waits for the
        warm-up already decoding the estate instead of decoding it a second time."""
        lock = self._locks.get(org_id)
        if lock is None:
            if len(self._locks) > self._max:
                self._locks.clear()
            lock = self._locks[org_id] = asyncio.Lock()
        async with lock:
            return await self._load(org_id, fragments)

    async def facts(self, org_id: str) -> list[HostFacts]:
        _, entries, _ = await self.load(org_id, fragments=False)
        return [e.facts for e in entries]

    async def _load(
        self, org_id: str, fragments: bool
    ) -> tuple[list[Host], list[_Entry], dict[str, list[graph.OpenIncident]]]:
        rows = await self._db.read(hosts.list_meta_for_user, org_id)
        marks: dict[str, list[graph.OpenIncident]] = {}
        for found in await self._db.read(incidents.open_summary, org_id):
            marks.setdefault(found[0], []).append(graph.OpenIncident(*found))
        stale: list[tuple[Host, tuple[Any, ...], tuple[Any, ...]]] = []
        for h in rows:
            overlay = tuple(sorted((i.subject, i.severity) for i in marks.get(h.id, [])))
            key = (h.snapshot_id, h.silent, h.hostname, h.os, h.kernel, h.last_seen_at, overlay)
            facts_key = (h.snapshot_id, h.hostname)
            entry = self._entries.get(h.id)
            # an entry built for paths or the estate view has no fragment yet
            has_fragment = entry is not None and entry.key == key and entry.fragment is not None
            if entry is None or entry.facts_key != facts_key or (fragments and not has_fragment):
                stale.append((h, facts_key, key))
        stored: dict[str, tuple[str, bytes]] = {}
        if stale and not fragments:
            # the facts ingest kept with each latest snapshot: a few hundred bytes a host
            # instead of decompressing and decoding its whole body
            stored = await self._db.read(estate_store.facts, org_id, [h.id for h, _, _ in stale])
        kept = {h.id: blob for h, _, _ in stale
                if (blob := _stored_blob(stored.get(h.id), h.snapshot_id)) is not None}  # fmt: skip
        wanted = [h.snapshot_id for h, _, _ in stale if h.snapshot_id and h.id not in kept]
        bodies = await self._db.read(hosts.snapshot_bodies, org_id, wanted) if wanted else {}
        fresh_rows = [
            msgspec.structs.replace(h, latest=bodies.get(h.snapshot_id or "")) for h, _, _ in stale
        ]

        def build() -> list[_Entry]:
            if not fragments:
                return [_Entry(fk, _facts(h, kept.get(h.id)), key)
                        for h, (_, fk, key) in zip(fresh_rows, stale, strict=True)]  # fmt: skip
            out = []
            for view, (_, facts_key, key) in zip(views(fresh_rows), stale, strict=True):
                frag = graph.fragment(view, marks.get(view.host_id, []))
                facts = graph.facts(view.host_id, view.hostname, view.snapshot)
                out.append(_Entry(facts_key, facts, key, frag))
            return out

        fresh = await self.off_loop(build) if stale else []
        if len(self._entries) + len(fresh) > self._max:
            self._entries.clear()
        for (h, _, _), entry in zip(stale, fresh, strict=True):
            self._entries[h.id] = entry
        return rows, [self._entries[h.id] for h in rows], marks

    async def document(self, org_id: str, host_id: str | None) -> bytes:
        """The full view (every host's services, ports and identities), or one host's
        neighbourhood: Cytoscape elements, encoded."""
        rows, entries, _ = await self.load(org_id, fragments=True)
        if host_id is not None and not any(h.id == host_id for h in rows):
            raise NotFound("no such host")
        frags = [(h.id, e.fragment) for h, e in zip(rows, entries, strict=True) if e.fragment]
        return await self.off_loop(lambda: graph.assemble(frags, host_id))

    async def estate_hosts(self, org_id: str) -> list[estate.EstateHost]:
        rows, entries, marks = await self.load(org_id, fragments=False)
        groups = await self._db.read(estate_store.groups, org_id)
        return [
            estate.EstateHost(e.facts, h.os, "silent" if h.silent else "online", h.last_seen_at,
                              groups.get(h.id), len(marks.get(h.id, ())),
                              _worst(marks.get(h.id, [])))
            for h, e in zip(rows, entries, strict=True)
        ]  # fmt: skip

    async def estate_document(self, org_id: str) -> bytes:
        """The estate view, encoded; the same bytes again while no input changed: a
        dashboard refreshing an estate where nothing reported costs one comparison."""
        found = await self.estate_hosts(org_id)
        key = tuple(
            # facts first: the same object while the host's snapshot is unchanged, and a
            # tuple compares its items by identity before equality
            (h.facts, h.os, h.status, h.last_seen_at, h.group, h.open_incidents, h.max_severity)
            for h in found
        )
        cached = self._docs.get(org_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        document = await self.off_loop(lambda: _encoder.encode(estate.build(found)))
        if len(self._docs) >= self._max_tenants:
            self._docs.clear()
        self._docs[org_id] = (key, document)
        return document
