from __future__ import annotations

import msgspec
from litestar import get


class Health(msgspec.Struct, frozen=True):
    status: str  # "ok"


_OK = Health("ok")


@get("/api/v1/health", exclude_from_auth=True, cache_control=None)
async def health() -> Health:
    """Liveness for uptime monitors: no database round-trip, so it stays cheap."""
    return _OK


handlers = [health]
