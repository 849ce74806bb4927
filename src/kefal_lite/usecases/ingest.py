"""An agent sends a snapshot: check its token, decode and check the snapshot, ask billing,
evaluate and commit it (the Ingestor), then count it, wake the jobs it queued and tell
the tenant's live dashboards. The HTTP handler only reads the token and the body."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import msgspec

from kefal_lite import metrics, snapshot
from kefal_lite.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    PaymentRequired,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    items_from_msgspec,
    validation_item,
)
from kefal_lite.security import constant_time_equal
from kefal_lite.services import Services
from kefal_lite.store.db import DatabaseBusy
from kefal_lite.store.incidents import Changes


class Ingested(msgspec.Struct, frozen=True):
    snapshot_id: str
    incidents_opened: int


# The rejection metric's label: what kind of refusal, by meaning (the status is app.py's).
_REASONS: dict[type[ApiError], str] = {
    ValidationFailed: "invalid",
    BadRequest: "invalid",
    Unauthorized: "unauthorized",
    PaymentRequired: "payment_required",
    Forbidden: "forbidden",
    ServiceUnavailable: "busy",
}


def rejected_reason(exc: ApiError) -> str:
    for cls in type(exc).__mro__:
        if cls in _REASONS:
            return _REASONS[cls]
    return type(exc).__name__.lower()


async def ingest(
    svc: Services, token: str | None, read_body: Callable[[], Awaitable[bytes]]
) -> Ingested:
    """`read_body` is called only once the token is known good: a stranger's request is
    refused before its body is read (401 before 413 or 400)."""
    started = time.perf_counter()
    try:
        done = await _ingest(svc, token, read_body)
    except ApiError as exc:
        metrics.REJECTED.labels(rejected_reason(exc)).inc()
        raise
    except DatabaseBusy:  # the write queue is full: 503, the agent resends later
        metrics.REJECTED.labels("busy").inc()
        raise
    metrics.INGEST_SECONDS.observe(time.perf_counter() - started)
    return done


async def _ingest(
    svc: Services, token: str | None, read_body: Callable[[], Awaitable[bytes]]
) -> Ingested:
    if token is None:
        raise Unauthorized("an agent token is required (Authorization: Bearer <token>)")
    agent = await svc.agent_tokens.lookup(token)
    if agent is None:
        raise Unauthorized("invalid or revoked agent token; enroll the agent again")
    # Decoded straight from the bytes with the one prebuilt Decoder.
    raw = await read_body()
    try:
        decoded = snapshot.DECODER.decode(raw)
        snap = snapshot.clean(decoded, raw)  # no control character gets past here
    except msgspec.DecodeError as exc:
        raise ValidationFailed(items_from_msgspec(exc)) from None
    if snap is not decoded:  # stored as accepted: the sanitised text, not the controls
        raw = snapshot.encode(snap)
    bad_times = snapshot.time_errors(snap, svc.clock.now())
    if bad_times:
        raise ValidationFailed([validation_item(["body", name], msg) for name, msg in bad_times])
    if not constant_time_equal(snap.agent_id, agent.agent_id):
        raise Forbidden("agent_id in the snapshot is not the agent this token belongs to")
    if not await svc.billing.may_ingest(agent.user_id):
        raise PaymentRequired("the trial or subscription has expired; snapshots are refused")
    accepted = await svc.ingestor.accept(agent, snap, raw)
    changes = accepted.changes
    metrics.SNAPSHOTS.inc()
    for severity in changes.opened_severities:
        metrics.INCIDENTS_OPENED.labels(severity).inc()
    if changes.opened or changes.resolved:
        svc.jobs.kick()  # remediation and notify jobs were queued with the incidents
    publish_changes(svc, agent.user_id, accepted.host_id, changes)
    return Ingested(accepted.snapshot_id, len(changes.opened))


def publish_changes(svc: Services, user_id: str, host_id: str, changes: Changes) -> None:
    """Tell the tenant's live dashboards what this write changed."""
    for kind, ids in (
        ("incident.opened", changes.opened),
        ("incident.updated", changes.updated),
        ("incident.resolved", changes.resolved),
    ):
        for incident_id in ids:
            svc.events.publish(
                user_id, {"type": kind, "incident_id": incident_id, "host_id": host_id}
            )
    if changes.recovered:
        svc.events.publish(user_id, {"type": "host.recovered", "host_id": host_id})
