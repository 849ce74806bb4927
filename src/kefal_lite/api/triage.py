"""Suppressions, bulk incident actions, manual resolve, accepting a novelty into the baseline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from kefal_lite import triage
from kefal_lite.api.deps import USER, CurrentUser, Svc, actor
from kefal_lite.api.incidents import IncidentDetail, _one
from kefal_lite.clock import iso
from kefal_lite.detect.triage import MAX_GLOB
from kefal_lite.store import suppressions
from kefal_lite.store.suppressions import Suppression
from kefal_lite.usecases import incidents as incident_cases
from kefal_lite.usecases.incidents import BulkResult

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Reason = Annotated[str, msgspec.Meta(max_length=1000)]


class NewSuppression(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    invariant_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    host_id: Id | None = None
    subject_glob: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_GLOB)] | None = None
    expires_at: datetime | None = None
    # the incident this was made from ("not on this host" / "not anywhere"): resolved by it
    incident_id: Id | None = None


class BulkBody(msgspec.Struct, forbid_unknown_fields=True):
    ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=incident_cases.MAX_BULK)]
    action: incident_cases.BulkAction
    reason: Reason | None = None


class ResolveBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason | None = None


class SuppressionView(msgspec.Struct, frozen=True):
    id: str
    invariant_id: str | None
    host_id: str | None
    subject_glob: str | None
    reason: str
    expires_at: str | None
    created_by: str
    created_at: str
    hits: int  # findings it kept from opening an incident
    last_hit_at: str | None
    active: bool  # false once expires_at has passed: it matches nothing


class SuppressionPage(msgspec.Struct, frozen=True):
    items: list[SuppressionView]
    total: int


class BulkResults(msgspec.Struct, frozen=True):
    results: list[BulkResult]  # one per distinct id, in order
    ok: int


def suppression_view(s: Suppression, now: str) -> SuppressionView:
    return SuppressionView(
        s.id, s.invariant_id, s.host_id, s.subject_glob, s.reason, s.expires_at, s.created_by,
        s.created_at, s.hits, s.last_hit_at, s.expires_at is None or s.expires_at > now,
    )  # fmt: skip


@get("/api/v1/suppressions", dependencies=USER)
async def list_suppressions(user: CurrentUser, svc: Svc) -> SuppressionPage:
    """Oldest first; `active` is false once `expires_at` has passed (it matches nothing)."""
    items = await svc.db.read(suppressions.list_for_user, user.id)
    now = iso(svc.clock.now())
    return SuppressionPage([suppression_view(s, now) for s in items], len(items))


@post("/api/v1/suppressions", status_code=HTTP_201_CREATED, dependencies=USER)
async def create_suppression(
    data: JSONBody[NewSuppression], user: CurrentUser, svc: Svc
) -> SuppressionView:
    s = await triage.suppress(
        svc, actor(user), invariant_id=data.invariant_id, host_id=data.host_id,
        subject_glob=data.subject_glob, reason=data.reason, expires_at=data.expires_at,
        incident_id=data.incident_id,
    )  # fmt: skip
    return suppression_view(s, iso(svc.clock.now()))


@delete("/api/v1/suppressions/{suppression_id:str}", status_code=HTTP_204_NO_CONTENT,
        dependencies=USER)  # fmt: skip
async def delete_suppression(suppression_id: FromPath[str], user: CurrentUser, svc: Svc) -> None:
    await triage.unsuppress(svc, actor(user), suppression_id)


@post("/api/v1/incidents/bulk", status_code=HTTP_200_OK, dependencies=USER)
async def bulk(data: JSONBody[BulkBody], user: CurrentUser, svc: Svc) -> BulkResults:
    """One result per distinct id: `ok`, `not_found` (another tenant's too) or `conflict`."""
    results = await svc.db.write(
        incident_cases.bulk, actor(user), data.ids, data.action, data.reason,
        iso(svc.clock.now()),
    )  # fmt: skip
    return BulkResults(results, sum(r.result == "ok" for r in results))


@post("/api/v1/incidents/{incident_id:str}/resolve", status_code=HTTP_200_OK, dependencies=USER)
async def resolve(
    incident_id: FromPath[str], user: CurrentUser, svc: Svc,
    data: JSONBody[ResolveBody | None] = None,
) -> IncidentDetail:  # fmt: skip
    """A person says it is over: `resolved_by: "manual"`."""
    reason = data.reason if data else None
    await svc.db.write(
        incident_cases.resolve, actor(user), incident_id, iso(svc.clock.now()), reason
    )
    return await _one(svc, user.id, incident_id)


@post("/api/v1/incidents/{incident_id:str}/baseline", status_code=HTTP_200_OK, dependencies=USER)
async def baseline(incident_id: FromPath[str], user: CurrentUser, svc: Svc) -> IncidentDetail:
    """A novelty is normal here: the value joins the host's baseline (it will not fire
    again) and the incident resolves with `resolved_by: "baseline"`."""
    await incident_cases.accept_baseline(svc, actor(user), incident_id)
    return await _one(svc, user.id, incident_id)


handlers = [list_suppressions, create_suppression, delete_suppression, bulk, resolve, baseline]
