"""Prometheus metrics. HTTP request counts and latency by route come from Litestar's
Prometheus middleware; these are kefal-lite's own. Gauges that describe state (jobs,
hosts, SSE clients) are set just before each scrape."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SNAPSHOTS = Counter("kefal_ingest_snapshots_total", "Snapshots accepted and committed")
REJECTED = Counter("kefal_ingest_rejected_total", "Snapshots refused, by reason", ["reason"])
INCIDENTS_OPENED = Counter(
    "kefal_incidents_opened_total", "Incidents opened, by severity", ["severity"]
)
BATCH_SIZE = Histogram(
    "kefal_write_batch_size",
    "Writes committed per group-commit batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
COMMIT_SECONDS = Histogram(
    "kefal_write_commit_seconds",
    "Time to run and commit one write batch",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
INGEST_SECONDS = Histogram(
    "kefal_ingest_seconds",
    "Time from request to committed answer on /api/v1/ingest",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
JOBS = Gauge("kefal_jobs", "Background jobs by state", ["state"])
HOSTS = Gauge("kefal_hosts", "Hosts by status", ["status"])
SSE_CLIENTS = Gauge("kefal_sse_clients", "Connected event-stream clients")
