"""Incidents of the caller's hosts: list, one with history, acknowledge, dismiss; hosts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from kefal_lite.api.deps import USER, CurrentUser, Limit, Offset, Svc, actor, page
from kefal_lite.api.history import changes_before
from kefal_lite.clock import iso
from kefal_lite.detect import engine
from kefal_lite.detect import state as host_state
from kefal_lite.errors import NotFound
from kefal_lite.services import Services
from kefal_lite.store import estate as estate_store
from kefal_lite.store import hosts, incidents, suppressions
from kefal_lite.store.incidents import Incident
from kefal_lite.store.users import User
from kefal_lite.usecases import incidents as incident_cases
from kefal_lite.usecases.incidents import RemediationMove

Status = Literal["active", "all", "open", "acknowledged", "dismissed", "resolved", "stale"]
SeverityQ = Literal["low", "medium", "high", "critical"]

_REMEDIATION_FIELDS = ("status", "mode", "source", "actions", "generated_at", "error")


class DismissBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    expires_at: datetime | None = None


def incident_json(svc: Services, inc: Incident) -> dict[str, Any]:
    """The incident as the API shows it, with the `actions` a person may take now."""
    out: dict[str, Any] = msgspec.to_builtins(inc)
    del out["stored_status"]
    out["remediation"] = {f: out.pop(f"remediation_{f}") for f in _REMEDIATION_FIELDS}
    out["actions"] = incident_cases.actions(inc, svc.rules.invariant(inc.invariant_id))
    out["changes_url"] = changes_before(inc.host_id, inc.first_seen_at)
    return out


@get("/api/v1/incidents", dependencies=USER)
async def list_incidents(
    user: CurrentUser,
    svc: Svc,
    status: Annotated[Status, QueryParameter()] = "active",
    severity: Annotated[SeverityQ | None, QueryParameter()] = None,
    host_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Newest first. By default what still needs a person (`active`: open, acknowledged or
    stale); `all` for everything; `stale` selects open incidents of hosts that went silent."""
    items, total = await svc.db.read(
        incidents.list_for_user, user.id, status=status, severity=severity, host_id=host_id,
        limit=limit, offset=offset,
    )  # fmt: skip
    return page([incident_json(svc, i) for i in items], total)


async def _one(svc: Svc, user_id: str, incident_id: str) -> dict[str, Any]:
    inc = await svc.db.read(incidents.get, user_id, incident_id)
    if inc is None:
        raise NotFound("no such incident")
    out = incident_json(svc, inc)
    out["history"] = msgspec.to_builtins(await svc.db.read(incidents.history, user_id, incident_id))
    return out


@get("/api/v1/incidents/{incident_id:str}", dependencies=USER)
async def get_incident(incident_id: FromPath[str], user: CurrentUser, svc: Svc) -> dict[str, Any]:
    return await _one(svc, user.id, incident_id)


@post("/api/v1/incidents/{incident_id:str}/acknowledge", status_code=HTTP_200_OK, dependencies=USER)
async def acknowledge(incident_id: FromPath[str], user: CurrentUser, svc: Svc) -> dict[str, Any]:
    await svc.db.write(incident_cases.acknowledge, actor(user), incident_id, iso(svc.clock.now()))
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
    await svc.db.write(
        incident_cases.dismiss, actor(user), incident_id, iso(svc.clock.now()), body.reason, until
    )
    return await _one(svc, user.id, incident_id)


@post("/api/v1/incidents/{incident_id:str}/remediate", status_code=HTTP_202_ACCEPTED,
      dependencies=USER)  # fmt: skip
async def remediate(incident_id: FromPath[str], user: CurrentUser, svc: Svc) -> dict[str, Any]:
    """Mode 2: generate (or regenerate) the three actions now; answers before they exist
    with `remediation.status = "pending"`."""
    await svc.db.write(
        incident_cases.request_remediation, actor(user), incident_id, iso(svc.clock.now())
    )
    svc.jobs.kick()
    return await _one(svc, user.id, incident_id)


async def _move(svc: Svc, user: User, incident_id: str, action: RemediationMove) -> None:
    was = await svc.db.write(
        incident_cases.move_remediation, actor(user), incident_id, action, iso(svc.clock.now())
    )
    if action == "applied":
        svc.ingestor.expect_verification(was.host_id, incident_id, was.invariant_id, was.subject)


@post("/api/v1/incidents/{incident_id:str}/remediation/accept", status_code=HTTP_200_OK,
      dependencies=USER)  # fmt: skip
async def accept(incident_id: FromPath[str], user: CurrentUser, svc: Svc) -> dict[str, Any]:
    """Advisory: records that the proposal is the plan; nothing runs on the host."""
    await _move(svc, user, incident_id, "accept")
    return await _one(svc, user.id, incident_id)


@post("/api/v1/incidents/{incident_id:str}/remediation/reject", status_code=HTTP_200_OK,
      dependencies=USER)  # fmt: skip
async def reject(incident_id: FromPath[str], user: CurrentUser, svc: Svc) -> dict[str, Any]:
    await _move(svc, user, incident_id, "reject")
    return await _one(svc, user.id, incident_id)


@post("/api/v1/incidents/{incident_id:str}/remediation/applied", status_code=HTTP_200_OK,
      dependencies=USER)  # fmt: skip
async def applied(incident_id: FromPath[str], user: CurrentUser, svc: Svc) -> dict[str, Any]:
    """The fix was made on the host; the host's next snapshot says `verified` (and resolves
    the incident) or `failed`."""
    await _move(svc, user, incident_id, "applied")
    return await _one(svc, user.id, incident_id)


@get("/api/v1/hosts/{host_id:str}", dependencies=USER)
async def get_host(host_id: FromPath[str], user: CurrentUser, svc: Svc) -> dict[str, Any]:
    host = await svc.db.read(hosts.get, user.id, host_id)
    if host is None:
        raise NotFound("no such host")
    open_incidents = await svc.db.read(incidents.active_for_host, user.id, host_id)
    ref = await svc.db.read(hosts.ref_by_agent, user.id, host.agent_id)
    until, still = engine.learning(
        host_state.loads(ref.state if ref else None),
        svc.rules.detection,
        svc.clock.now().timestamp(),
    )
    return {
        "host_id": host.id,
        "hostname": host.hostname,
        "agent_id": host.agent_id,
        "status": "silent" if host.silent else "online",
        "last_seen_at": host.last_seen_at,
        # a person's group (prod, dev, ...); null: the estate view groups the host by subnet
        "group": await svc.db.read(estate_store.group, user.id, host_id),
        # novelty is learned, not alerted, until then (by server time; and a snapshot count)
        "learning_until": iso(datetime.fromtimestamp(until, UTC)) if until is not None else None,
        "learning": still,
        "latest_snapshot": msgspec.json.decode(host.latest) if host.latest else None,
        "open_incidents": [incident_json(svc, i) for i in open_incidents],
        # findings suppressions kept from opening incidents, since the host first reported
        "suppressed": await svc.db.read(suppressions.host_count, user.id, host_id),
    }


handlers = [
    list_incidents,
    get_incident,
    acknowledge,
    dismiss,
    remediate,
    accept,
    reject,
    applied,
    get_host,
]
