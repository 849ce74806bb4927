"""Accepting a snapshot: evaluate it against the host's state, then one write batch.

The 200 goes out only after that batch commits, so an acknowledged snapshot and
its incidents are never lost. Engine state stays resident per agent (loaded
from the hosts table on first use, so a restart resumes baselines instead of
relearning them) and is replaced only after its commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from kefal_lite import snapshot as wire
from kefal_lite.clock import Clock, iso
from kefal_lite.detect import state as host_state
from kefal_lite.detect.engine import evaluate, still_violated
from kefal_lite.detect.model import Finding, Invariant
from kefal_lite.detect.triage import split
from kefal_lite.graph import FACTS_BLOB, facts
from kefal_lite.history import diff
from kefal_lite.history.service import changes_on_ingest
from kefal_lite.ids import new_id
from kefal_lite.rules import Rules
from kefal_lite.scrub import scrub_snapshot
from kefal_lite.store import hosts, incidents
from kefal_lite.store.agents import AgentIdentity
from kefal_lite.store.db import Database
from kefal_lite.store.incidents import Changes, NewFinding
from kefal_lite.store.ingest import SnapshotWrite, commit_snapshot
from kefal_lite.triage import SuppressionCache

T = TypeVar("T")


@dataclass
class _Host:
    host_id: str
    state: host_state.HostState
    # remediations marked applied, checked against the next snapshot: id -> (invariant, subject)
    awaiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # the previous snapshot, for change records: its id, item hashes and last changed items
    last_snapshot: str | None = None
    previous: diff.Resident | None = None


@dataclass(frozen=True)
class Accepted:
    snapshot_id: str
    host_id: str
    changes: Changes


class Ingestor:
    def __init__(self, db: Database, clock: Clock, rules: Rules, auto_remediate: bool) -> None:
        self._db = db
        self._clock = clock
        self._rules = rules
        self._auto_remediate = auto_remediate
        self._hosts: dict[str, _Host] = {}  # by agent id
        self._by_host_id: dict[str, _Host] = {}
        self.suppressions = SuppressionCache(db)

    async def _host(self, ident: AgentIdentity) -> _Host:
        memo = self._hosts.get(ident.agent_id)
        if memo is None:
            ref = await self._db.read(hosts.ref_by_agent, ident.org_id, ident.agent_id)
            memo = self._hosts.get(ident.agent_id)  # another request may have loaded it
            if memo is None:
                if ref is None:
                    memo = _Host(str(uuid.uuid4()), host_state.HostState())
                else:
                    memo = _Host(ref.host_id, host_state.loads(ref.state))
                    memo.last_snapshot = ref.snapshot_id
                    pending = await self._db.read(incidents.awaiting_verification, ref.host_id)
                    memo.awaiting = {iid: (inv, subject) for iid, inv, subject in pending}
                self._hosts.setdefault(ident.agent_id, memo)
                memo = self._hosts[ident.agent_id]
                self._by_host_id[memo.host_id] = memo
        return memo

    def expect_verification(self, host_id: str, incident_id: str, invariant_id: str,
                            subject: str) -> None:  # fmt: skip
        """A remediation was marked applied: check it on the host's next snapshot. (A host
        not resident yet loads its pending verifications from the database instead.)"""
        memo = self._by_host_id.get(host_id)
        if memo is not None:
            memo.awaiting[incident_id] = (invariant_id, subject)

    async def accept(self, ident: AgentIdentity, snap: wire.Snapshot, raw: bytes) -> Accepted:
        """`raw` is the request body `snap` was decoded from: stored as ingested, no re-encoding,
        unless a command line still carried a secret (the agent's scrubbing is not trusted)."""
        clean = scrub_snapshot(snap)
        if clean is not snap:
            snap, raw = clean, wire.encode(clean)
        memo = await self._host(ident)
        # One snapshot per host at a time: each evaluation must see the state the
        # previous one committed.
        async with memo.lock:
            catalog = self._rules.catalog
            now = self._clock.now()
            findings, new_state = evaluate(snap, memo.state, catalog, now)
            # Most snapshots find nothing: then not even the cache is consulted.
            rules = await self.suppressions.rules(ident.org_id) if findings else ()
            quiet = split(findings, rules, memo.host_id, now)
            verdicts = [
                (iid, still_violated(catalog, inv, subject, snap, memo.state, now))
                for iid, (inv, subject) in memo.awaiting.items()
            ]
            changed, previous = await changes_on_ingest(
                self._db, ident.org_id, memo.last_snapshot, memo.previous, snap
            )
            snapshot_id = new_id()
            write = SnapshotWrite(
                snapshot_id=snapshot_id,
                org_id=ident.org_id,
                agent_id=ident.agent_id,
                host_id=memo.host_id,
                hostname=snap.hostname,
                os=snap.os,
                kernel=snap.kernel,
                agent_version=snap.agent_version,
                received_at=iso(now),
                taken_at=iso(snap.timestamp),
                body=raw,
                state=host_state.dumps(new_state),
                findings=[_incident_facts(catalog.by_id, f) for f in quiet.kept],
                auto_resolve=catalog.auto_resolve,
                auto_remediate=self._auto_remediate,
                verdicts=verdicts,
                suppressed=quiet.hits,
                held=quiet.held,
                changes=changed,
                # from the snapshot decoded here, so the estate view never decodes it again
                facts=FACTS_BLOB.encode(facts(memo.host_id, snap.hostname, snap)),
            )
            changes = await self._db.write(commit_snapshot, write)
            memo.state = new_state
            memo.last_snapshot, memo.previous = snapshot_id, previous
            for iid, _ in verdicts:
                memo.awaiting.pop(iid, None)
        return Accepted(snapshot_id, memo.host_id, changes)

    async def change_state(
        self,
        org_id: str,
        agent_id: str,
        change: Callable[[host_state.HostState], host_state.HostState],
        commit: Callable[[sqlite3.Connection, bytes], T],
    ) -> T:
        """Change a host's engine state outside an ingest: under the host's lock, so no
        snapshot evaluates against the old state meanwhile; `commit` writes the new state
        (with whatever goes with it) in one transaction, and the resident copy follows."""
        memo = await self._host(AgentIdentity(agent_id=agent_id, org_id=org_id))
        async with memo.lock:
            new_state = change(memo.state)
            result = await self._db.write(commit, host_state.dumps(new_state))
            memo.state = new_state
        return result


def _incident_facts(by_id: dict[str, Invariant], finding: Finding) -> NewFinding:
    inv = by_id[finding.invariant_id]
    return NewFinding(
        invariant_id=inv.id,
        invariant_name=inv.name,
        category=inv.category,
        severity=finding.severity,
        state_like=inv.state_like,
        attack=inv.attack,
        contributed_by=inv.contributed_by,
        subject=finding.subject,
        title=finding.title,
        evidence=finding.evidence,
    )
