"""POST /api/v1/ingest: agent bearer token, snapshot bytes in, 200 only after the commit."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Request, post
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_200_OK

from kefal_lite import metrics, snapshot
from kefal_lite.api.deps import Svc
from kefal_lite.api.docs import body_of
from kefal_lite.usecases import ingest as ingest_case


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
    try:
        done = await ingest_case.ingest(svc, bearer(request), request.body)
    except HTTPException as exc:  # 413 from reading the body: refused before the use case
        code = exc.status_code
        metrics.REJECTED.labels("too_large" if code == 413 else str(code)).inc()
        raise
    return IngestAccepted(snapshot_id=done.snapshot_id, incidents_opened=done.incidents_opened)


handlers = [ingest]
