"""POST /api/v1/ingest: agent bearer token, snapshot bytes in, 200 only after the commit."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.status_codes import HTTP_200_OK

from kefal_lite import snapshot
from kefal_lite.api.deps import Svc
from kefal_lite.api.validation import decode_json
from kefal_lite.errors import Forbidden, PaymentRequired, Unauthorized
from kefal_lite.security import constant_time_equal


def bearer(request: Request[Any, Any, Any]) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


@post("/api/v1/ingest", status_code=HTTP_200_OK, exclude_from_auth=True)
async def ingest(request: Request[Any, Any, Any], svc: Svc) -> dict[str, Any]:
    token = bearer(request)
    if token is None:
        raise Unauthorized("an agent token is required (Authorization: Bearer <token>)")
    agent = await svc.agent_tokens.lookup(token)
    if agent is None:
        raise Unauthorized("invalid or revoked agent token; enroll the agent again")
    # Decoded straight from the bytes with the one prebuilt Decoder.
    raw = await request.body()
    snap = decode_json(raw, snapshot.Snapshot, snapshot.DECODER)
    if not constant_time_equal(snap.agent_id, agent.agent_id):
        raise Forbidden("agent_id in the snapshot is not the agent this token belongs to")
    if not await svc.billing.may_ingest(agent.user_id):
        raise PaymentRequired("the trial or subscription has expired; snapshots are refused")
    accepted = await svc.ingestor.accept(agent, snap, raw)
    if accepted.changes.opened:
        svc.jobs.kick()  # Mode 1 remediation jobs were queued with the incidents
    return {
        "status": "accepted",
        "snapshot_id": accepted.snapshot_id,
        "incidents_opened": len(accepted.changes.opened),
    }


handlers = [ingest]
