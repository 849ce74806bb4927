"""POST /api/v1/ingest: agent bearer token, snapshot bytes in, 200 only after the commit."""

from __future__ import annotations

import time
from typing import Any, Literal

import msgspec
from litestar import Request, post
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_200_OK

from kefal_lite import metrics, snapshot
from kefal_lite.api.deps import Svc
from kefal_lite.api.docs import body_of
from kefal_lite.api.validation import items_from_msgspec
from kefal_lite.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    PaymentRequired,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    validation_item,
)
from kefal_lite.security import constant_time_equal
from kefal_lite.services import Services
from kefal_lite.store.db import DatabaseBusy
from kefal_lite.store.incidents import Changes


def bearer(request: Request[Any, Any, Any]) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class IngestAccepted(msgspec.Struct, kw_only=True):
    """Stored and evaluated: the snapshot is committed before this answer is sent."""

    status: Literal["accepted"] = "accepted"
    snapshot_id: str
    incidents_opened: int


_SNAPSHOT = body_of(snapshot.Snapshot, "One snapshot, as the agent collected it.")


@post("/api/v1/ingest", status_code=HTTP_200_OK, exclude_from_auth=True,
      operation_class=_SNAPSHOT)  # fmt: skip
async def ingest(request: Request[Any, Any, Any], svc: Svc) -> IngestAccepted:
    started = time.perf_counter()
    try:
        answer = await _ingest(request, svc)
        metrics.INGEST_SECONDS.observe(time.perf_counter() - started)
        return answer
    except ApiError as exc:
        metrics.REJECTED.labels(_reason(exc)).inc()
        raise
    except HTTPException as exc:  # 413 from reading the body
        metrics.REJECTED.labels(_REASONS.get(exc.status_code, str(exc.status_code))).inc()
        raise
    except DatabaseBusy:  # the write queue is full: 503, the agent resends later
        metrics.REJECTED.labels("busy").inc()
        raise


_REASONS = {
    400: "invalid",
    401: "unauthorized",
    402: "payment_required",
    403: "forbidden",
    413: "too_large",
    503: "busy",
}


_ERROR_REASONS: dict[type[ApiError], str] = {
    ValidationFailed: "invalid",
    BadRequest: "invalid",
    Unauthorized: "unauthorized",
    PaymentRequired: "payment_required",
    Forbidden: "forbidden",
    ServiceUnavailable: "busy",
}


def _reason(exc: ApiError) -> str:
    """The metric's label: what kind of refusal, by meaning (the status is app.py's)."""
    for cls in type(exc).__mro__:
        if cls in _ERROR_REASONS:
            return _ERROR_REASONS[cls]
    return type(exc).__name__.lower()


async def _ingest(request: Request[Any, Any, Any], svc: Svc) -> IngestAccepted:
    token = bearer(request)
    if token is None:
        raise Unauthorized("an agent token is required (Authorization: Bearer <token>)")
    agent = await svc.agent_tokens.lookup(token)
    if agent is None:
        raise Unauthorized("invalid or revoked agent token; enroll the agent again")
    # Decoded straight from the bytes with the one prebuilt Decoder.
    raw = await request.body()
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
    if not await svc.billing.may_ingest(agent.org_id):
        raise PaymentRequired("the trial or subscription has expired; snapshots are refused")
    accepted = await svc.ingestor.accept(agent, snap, raw)
    changes = accepted.changes
    metrics.SNAPSHOTS.inc()
    for severity in changes.opened_severities:
        metrics.INCIDENTS_OPENED.labels(severity).inc()
    if changes.opened or changes.resolved:
        svc.jobs.kick()  # remediation and notify jobs were queued with the incidents
    publish_changes(svc, agent.org_id, accepted.host_id, changes)
    return IngestAccepted(snapshot_id=accepted.snapshot_id, incidents_opened=len(changes.opened))


def publish_changes(svc: Services, org_id: str, host_id: str, changes: Changes) -> None:
    """Tell the tenant's live dashboards what this write changed."""
    for kind, ids in (
        ("incident.opened", changes.opened),
        ("incident.updated", changes.updated),
        ("incident.resolved", changes.resolved),
    ):
        for incident_id in ids:
            svc.events.publish(
                org_id, {"type": kind, "incident_id": incident_id, "host_id": host_id}
            )
    if changes.recovered:
        svc.events.publish(org_id, {"type": "host.recovered", "host_id": host_id})


handlers = [ingest]
