"""GET /metrics in Prometheus text format: open on loopback, bearer `metrics_token` otherwise."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from kefal_lite import metrics
from kefal_lite.api.deps import Svc, client_address
from kefal_lite.api.ingest import bearer
from kefal_lite.errors import Unauthorized
from kefal_lite.security import constant_time_equal
from kefal_lite.store import jobs, stats

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@get("/metrics", exclude_from_auth=True, include_in_schema=False)
async def prometheus(request: Request[Any, Any, Any], svc: Svc) -> Response[bytes]:
    if client_address(request) not in LOOPBACK:
        token = bearer(request)
        expected = svc.settings.metrics_token
        if not expected or token is None or not constant_time_equal(token, expected):
            raise Unauthorized("metrics from outside this host need the metrics token")
    counts = await svc.db.read(jobs.counts)
    for state in ("pending", "running", "done", "failed"):
        metrics.JOBS.labels(state).set(counts.get(state, 0))
    totals = await svc.db.read(stats.totals)
    metrics.HOSTS.labels("online").set(int(str(totals["hosts_online"])))
    metrics.HOSTS.labels("silent").set(int(str(totals["hosts_silent"])))
    metrics.SSE_CLIENTS.set(svc.events.clients)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


handlers = [prometheus]
