"""Incidents of the caller's hosts: list, one with history, acknowledge, dismiss; hosts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK

from kefal_lite.api.deps import USER, CurrentUser, Limit, Offset, Svc, page
from kefal_lite.clock import iso
from kefal_lite.errors import NotFound
from kefal_lite.store import hosts, incidents
from kefal_lite.store.incidents import Incident

Status = Literal["open", "acknowledged", "dismissed", "resolved", "stale"]
SeverityQ = Literal["low", "medium", "high", "critical"]

# Remediation arrives with the remediation jobs; until one is generated, it says so.
NO_REMEDIATION: dict[str, Any] = {
    "status": "none",
    "mode": None,
    "source": None,
    "actions": [],
    "generated_at": None,
}


class DismissBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    expires_at: datetime | None = None


def incident_json(inc: Incident) -> dict[str, Any]:
    out = msgspec.to_builtins(inc)
    out["remediation"] = dict(NO_REMEDIATION)
    return out  # type: ignore[no-any-return]


@get("/api/v1/incidents", dependencies=USER)
async def list_incidents(
    user: CurrentUser,
    svc: Svc,
    status: Annotated[Status | None, QueryParameter()] = None,
    severity: Annotated[SeverityQ | None, QueryParameter()] = None,
    host_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Newest first; `stale` selects open incidents of hosts that went silent."""
    items, total = await svc.db.read(
        incidents.list_for_user, user.id, status=status, severity=severity, host_id=host_id,
        limit=limit, offset=offset,
    )  # fmt: skip
    return page([incident_json(i) for i in items], total)


async def _one(svc: Svc, user_id: str, incident_id: str) -> dict[str, Any]:
    inc = await svc.db.read(incidents.get, user_id, incident_id)
    if inc is None:
        raise NotFound("no such incident")
    out = incident_json(inc)
    out["history"] = msgspec.to_builtins(await svc.db.read(incidents.history, user_id, incident_id))
    return out


@get("/api/v1/incidents/{incident_id:str}", dependencies=USER)
async def get_incident(incident_id: FromPath[str], user: CurrentUser, svc: Svc) -> dict[str, Any]:
    return await _one(svc, user.id, incident_id)


@post("/api/v1/incidents/{incident_id:str}/acknowledge", status_code=HTTP_200_OK, dependencies=USER)
async def acknowledge(incident_id: FromPath[str], user: CurrentUser, svc: Svc) -> dict[str, Any]:
    now = iso(svc.clock.now())
    await svc.db.write(incidents.acknowledge, user.id, incident_id, f"user:{user.username}", now)
    return await _one(svc, user.id, incident_id)


@post("/api/v1/incidents/{incident_id:str}/dismiss", status_code=HTTP_200_OK, dependencies=USER)
async def dismiss(
    incident_id: FromPath[str],
    user: CurrentUser,
    svc: Svc,
    data: JSONBody[DismissBody | None] = None,
) -> dict[str, Any]:
    """ "This is fine here": the same host, invariant and subject stay quiet until
    `expires_at` (or for good without it)."""
    body = data or DismissBody()
    until = iso(body.expires_at) if body.expires_at else None
    now = iso(svc.clock.now())
    await svc.db.write(
        incidents.dismiss, user.id, incident_id, f"user:{user.username}", now, body.reason, until
    )
    return await _one(svc, user.id, incident_id)


@get("/api/v1/hosts/{host_id:str}", dependencies=USER)
async def get_host(host_id: FromPath[str], user: CurrentUser, svc: Svc) -> dict[str, Any]:
    host = await svc.db.read(hosts.get, user.id, host_id)
    if host is None:
        raise NotFound("no such host")
    open_incidents = await svc.db.read(incidents.active_for_host, user.id, host_id)
    return {
        "host_id": host.id,
        "hostname": host.hostname,
        "agent_id": host.agent_id,
        "status": "silent" if host.silent else "online",
        "last_seen_at": host.last_seen_at,
        "latest_snapshot": msgspec.json.decode(host.latest) if host.latest else None,
        "open_incidents": [incident_json(i) for i in open_incidents],
    }


handlers = [list_incidents, get_incident, acknowledge, dismiss, get_host]
