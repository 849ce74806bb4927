"""Incidents of the caller's hosts: list, one with history, acknowledge, dismiss; hosts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from kefal_lite.api.deps import USER, CurrentUser, Limit, Offset, Org, Svc, actor
from kefal_lite.api.history import changes_before
from kefal_lite.clock import iso
from kefal_lite.detect import engine
from kefal_lite.detect import state as host_state
from kefal_lite.errors import NotFound
from kefal_lite.services import Services
from kefal_lite.store import estate as estate_store
from kefal_lite.store import hosts, incidents, suppressions
from kefal_lite.store.incidents import Event, Incident
from kefal_lite.usecases import incidents as incident_cases
from kefal_lite.usecases.incident_states import Action

Status = Literal["active", "all", "open", "acknowledged", "dismissed", "resolved", "stale"]
SeverityQ = Literal["low", "medium", "high", "critical"]


class DismissBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    expires_at: datetime | None = None


class Remediation(msgspec.Struct, frozen=True):
    status: str  # none, pending, proposed, accepted, rejected, applied, verified, failed
    mode: str | None
    source: str | None  # template or llm
    actions: Any  # the three proposed actions, once generated
    generated_at: str | None
    error: str | None


class IncidentView(msgspec.Struct, frozen=True):
    """An incident as the API shows it: its display status (`stale` for a silent host),
    the remediation, and the `actions` a person may take now."""

    id: str
    host_id: str
    hostname: str
    invariant_id: str
    invariant_name: str
    category: str
    severity: str
    status: str
    subject: str
    title: str
    evidence: Any
    snapshot_id: str | None
    attack: str | None
    contributed_by: str | None
    first_seen_at: str
    last_seen_at: str
    occurrences: int
    resolved_at: str | None
    resolved_by: str | None
    dismiss_reason: str | None
    dismissed_until: str | None
    remediation: Remediation
    actions: list[Action]  # what a person may do now
    changes_url: str  # the host's changes of the hour before it opened


class IncidentDetail(IncidentView, frozen=True):
    history: list[Event]  # oldest first: who did what, and when


class IncidentPage(msgspec.Struct, frozen=True):
    items: list[IncidentView]
    total: int


class HostDetail(msgspec.Struct, frozen=True):
    host_id: str
    hostname: str
    agent_id: str
    status: str  # online or silent
    last_seen_at: str
    # a person's group (prod, dev, ...); null: the estate view groups the host by subnet
    group: str | None
    # novelty is learned, not alerted, until then (by server time; and a snapshot count)
    learning_until: str | None
    learning: bool
    latest_snapshot: dict[str, Any] | None  # as the agent sent it
    open_incidents: list[IncidentView]
    # findings suppressions kept from opening incidents, since the host first reported
    suppressed: int


def incident_view(svc: Services, inc: Incident) -> IncidentView:
    return IncidentView(
        inc.id, inc.host_id, inc.hostname, inc.invariant_id, inc.invariant_name, inc.category,
        inc.severity, inc.status, inc.subject, inc.title, inc.evidence, inc.snapshot_id,
        inc.attack, inc.contributed_by, inc.first_seen_at, inc.last_seen_at, inc.occurrences,
        inc.resolved_at, inc.resolved_by, inc.dismiss_reason, inc.dismissed_until,
        Remediation(
            inc.remediation_status, inc.remediation_mode, inc.remediation_source,
            inc.remediation_actions, inc.remediation_generated_at, inc.remediation_error,
        ),
        incident_cases.actions(inc, svc.rules.invariant(inc.invariant_id)),
        changes_before(inc.host_id, inc.first_seen_at),
    )  # fmt: skip


@get("/api/v1/incidents", dependencies=USER)
async def list_incidents(
    user: CurrentUser, org: Org,
    svc: Svc,
    status: Annotated[Status, QueryParameter()] = "active",
    severity: Annotated[SeverityQ | None, QueryParameter()] = None,
    host_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> IncidentPage:
    """Newest first. By default what still needs a person (`active`: open, acknowledged or
    stale); `all` for everything; `stale` selects open incidents of hosts that went silent."""
    items, total = await svc.db.read(
        incidents.list_for_user, org.org_id, status=status, severity=severity, host_id=host_id,
        limit=limit, offset=offset,
    )  # fmt: skip
    return IncidentPage([incident_view(svc, i) for i in items], total)


async def _one(svc: Svc, org_id: str, incident_id: str) -> IncidentDetail:
    inc = await svc.db.read(incidents.get, org_id, incident_id)
    if inc is None:
        raise NotFound("no such incident")
    view = incident_view(svc, inc)
    events = await svc.db.read(incidents.history, org_id, incident_id)
    return IncidentDetail(**msgspec.structs.asdict(view), history=events)


@get("/api/v1/incidents/{incident_id:str}", dependencies=USER)
async def get_incident(
    incident_id: FromPath[str], user: CurrentUser, org: Org, svc: Svc
) -> IncidentDetail:
    return await _one(svc, org.org_id, incident_id)


@post("/api/v1/incidents/{incident_id:str}/acknowledge", status_code=HTTP_200_OK, dependencies=USER)
async def acknowledge(
    incident_id: FromPath[str], user: CurrentUser, org: Org, svc: Svc
) -> IncidentDetail:
    await svc.db.write(
        incident_cases.acknowledge, actor(user, org), incident_id, iso(svc.clock.now())
    )
    return await _one(svc, org.org_id, incident_id)


@post("/api/v1/incidents/{incident_id:str}/dismiss", status_code=HTTP_200_OK, dependencies=USER)
async def dismiss(
    incident_id: FromPath[str],
    user: CurrentUser, org: Org,
    svc: Svc,
    data: JSONBody[DismissBody | None] = None,
) -> IncidentDetail:
    """ "This is fine here": the same host, invariant and subject stay quiet until
    `expires_at` (or for good without it)."""
    body = data or DismissBody()
    until = iso(body.expires_at) if body.expires_at else None
    await svc.db.write(
        incident_cases.dismiss, actor(user, org), incident_id, iso(svc.clock.now()), body.reason,
        until,
    )
    return await _one(svc, org.org_id, incident_id)


@post("/api/v1/incidents/{incident_id:str}/remediate", status_code=HTTP_202_ACCEPTED,
      dependencies=USER)  # fmt: skip
async def remediate(
    incident_id: FromPath[str], user: CurrentUser, org: Org, svc: Svc
) -> IncidentDetail:
    """Mode 2: generate (or regenerate) the three actions now; answers before they exist
    with `remediation.status = "pending"`."""
    await incident_cases.remediate(svc, actor(user, org), incident_id)
    return await _one(svc, org.org_id, incident_id)


@post("/api/v1/incidents/{incident_id:str}/remediation/accept", status_code=HTTP_200_OK,
      dependencies=USER)  # fmt: skip
async def accept(
    incident_id: FromPath[str], user: CurrentUser, org: Org, svc: Svc
) -> IncidentDetail:
    """Advisory: records that the proposal is the plan; nothing runs on the host."""
    await incident_cases.move(svc, actor(user, org), incident_id, "accept")
    return await _one(svc, org.org_id, incident_id)


@post("/api/v1/incidents/{incident_id:str}/remediation/reject", status_code=HTTP_200_OK,
      dependencies=USER)  # fmt: skip
async def reject(
    incident_id: FromPath[str], user: CurrentUser, org: Org, svc: Svc
) -> IncidentDetail:
    await incident_cases.move(svc, actor(user, org), incident_id, "reject")
    return await _one(svc, org.org_id, incident_id)


@post("/api/v1/incidents/{incident_id:str}/remediation/applied", status_code=HTTP_200_OK,
      dependencies=USER)  # fmt: skip
async def applied(
    incident_id: FromPath[str], user: CurrentUser, org: Org, svc: Svc
) -> IncidentDetail:
    """The fix was made on the host; the host's next snapshot says `verified` (and resolves
    the incident) or `failed`."""
    await incident_cases.move(svc, actor(user, org), incident_id, "applied")
    return await _one(svc, org.org_id, incident_id)


@get("/api/v1/hosts/{host_id:str}", dependencies=USER)
async def get_host(host_id: FromPath[str], user: CurrentUser, org: Org, svc: Svc) -> HostDetail:
    host = await svc.db.read(hosts.get, org.org_id, host_id)
    if host is None:
        raise NotFound("no such host")
    open_incidents = await svc.db.read(incidents.active_for_host, org.org_id, host_id)
    ref = await svc.db.read(hosts.ref_by_agent, org.org_id, host.agent_id)
    until, still = engine.learning(
        host_state.loads(ref.state if ref else None),
        svc.rules.detection,
        svc.clock.now().timestamp(),
    )
    return HostDetail(
        host.id, host.hostname, host.agent_id, "silent" if host.silent else "online",
        host.last_seen_at, await svc.db.read(estate_store.group, user.id, host_id),
        iso(datetime.fromtimestamp(until, UTC)) if until is not None else None, still,
        msgspec.json.decode(host.latest) if host.latest else None,
        [incident_view(svc, i) for i in open_incidents],
        await svc.db.read(suppressions.host_count, org.org_id, host_id),
    )  # fmt: skip


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
