from __future__ import annotations

from litestar import get


@get("/api/v1/health", exclude_from_auth=True, cache_control=None)
async def health() -> dict[str, str]:
    """Liveness for uptime monitors: no database round-trip, so it stays cheap."""
    return {"status": "ok"}


handlers = [health]
