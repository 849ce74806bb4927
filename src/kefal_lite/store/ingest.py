"""One snapshot's write: latest state, history row, engine state, incidents, in one transaction."""

from __future__ import annotations

import sqlite3

import msgspec

from kefal_lite.history.diff import Change
from kefal_lite.store import channels, history, hosts, incidents, stats, suppressions
from kefal_lite.store.incidents import Changes, NewFinding


class SnapshotWrite(msgspec.Struct, frozen=True):
    snapshot_id: str
    org_id: str
    agent_id: str
    host_id: str
    hostname: str
    os: str
    kernel: str
    agent_version: str | None
    received_at: str
    taken_at: str
    body: bytes
    state: bytes
    findings: list[NewFinding]
    auto_resolve: frozenset[str]
    auto_remediate: bool = False
    # (incident id, still violated) for remediations marked applied on this host
    verdicts: list[tuple[str, bool]] = []
    # findings suppressions silenced: suppression id -> count, and their (invariant, subject)
    suppressed: dict[str, int] = {}
    held: frozenset[tuple[str, str]] = frozenset()
    # what changed since the host's previous snapshot
    changes: list[Change] = []
    # what the estate view reads of this snapshot (graph.FACTS_BLOB); None: not kept
    facts: bytes | None = None


def commit_snapshot(conn: sqlite3.Connection, w: SnapshotWrite) -> Changes:
    # the snapshot first: the host row points at it
    hosts.add_snapshot(
        conn,
        snapshot_id=w.snapshot_id,
        org_id=w.org_id,
        host_id=w.host_id,
        received_at=w.received_at,
        taken_at=w.taken_at,
        body=w.body,
    )
    if w.changes:
        history.add_changes(conn, org_id=w.org_id, host_id=w.host_id, at=w.received_at,
                            snapshot_id=w.snapshot_id, changes=w.changes)  # fmt: skip
    hosts.record(
        conn,
        host_id=w.host_id,
        org_id=w.org_id,
        agent_id=w.agent_id,
        hostname=w.hostname,
        os=w.os,
        kernel=w.kernel,
        agent_version=w.agent_version,
        now=w.received_at,
        snapshot_id=w.snapshot_id,
        state=w.state,
        facts=w.facts,
    )
    # verdicts before findings: a verified incident resolves "by remediation", not "auto"
    outcomes = [
        (incident_id, incidents.record_verification(conn, incident_id, still, w.snapshot_id,
                                                    w.received_at))
        for incident_id, still in w.verdicts
    ]  # fmt: skip
    verified = [incident_id for incident_id, outcome in outcomes if outcome == "resolved"]
    # a fix that did not work is news too: whoever applied it believes the host is safe
    failed = [incident_id for incident_id, outcome in outcomes if outcome == "failed"]
    day = w.received_at[:10]
    stats.bump(conn, day, "snapshots")
    stats.agent_active(conn, day, w.agent_id)
    changes = incidents.apply_findings(
        conn,
        org_id=w.org_id,
        host_id=w.host_id,
        snapshot_id=w.snapshot_id,
        findings=w.findings,
        auto_resolve=w.auto_resolve,
        now=w.received_at,
        auto_remediate=w.auto_remediate,
        held=w.held,
    )
    if w.suppressed:
        suppressions.record_hits(conn, org_id=w.org_id, host_id=w.host_id, hits=w.suppressed,
                                 now=w.received_at)  # fmt: skip
    stats.bump(conn, day, "incidents", len(changes.opened))
    changes.resolved.extend(verified)
    channels.queue_changes(conn, org_id=w.org_id, host_id=w.host_id, opened=changes.opened,
                           resolved=changes.resolved, now=w.received_at,
                           failed=failed)  # fmt: skip
    return changes
