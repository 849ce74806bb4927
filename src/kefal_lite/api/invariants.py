"""Invariants: the catalogue in force, contributions, verification, retirement."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from kefal_lite.api.deps import USER, CurrentUser, Svc
from kefal_lite.api.docs import body_of
from kefal_lite.api.validation import decode_json
from kefal_lite.community import Contribution, to_invariant
from kefal_lite.detect.model import Invariant
from kefal_lite.errors import NotFound
from kefal_lite.store import invariants
from kefal_lite.store.invariants import StoredInvariant


class InvariantView(msgspec.Struct, frozen=True):
    id: str
    name: str
    invariant_type: str
    predicate: dict[str, Any]  # {"kind": ..., "params": {...}}: docs/rules.md
    severity: str
    metadata: dict[str, str]
    category: str
    attack: str | None  # MITRE ATT&CK technique
    source: str  # builtin, pack or community
    status: str
    contributed_by: str | None


class ContributionView(InvariantView, frozen=True):
    """A contributed invariant with its verification state."""

    created_at: str
    verified_at: str | None
    report: dict[str, Any] | None  # the verification report, once verified
    status_reason: str | None  # why the server itself retired or rejected it


class InvariantPage(msgspec.Struct, frozen=True):
    items: list[InvariantView]
    total: int


class ContributionPage(msgspec.Struct, frozen=True):
    items: list[ContributionView]
    total: int


class Verdict(msgspec.Struct, frozen=True):
    status: str  # active or rejected
    report: dict[str, Any]


def _fields(inv: Invariant) -> dict[str, Any]:
    return {
        "id": inv.id, "name": inv.name, "invariant_type": inv.invariant_type,
        "predicate": msgspec.to_builtins(inv.predicate), "severity": inv.severity,
        "metadata": inv.metadata, "category": inv.category, "attack": inv.attack,
        "source": inv.source, "status": inv.status, "contributed_by": inv.contributed_by,
    }  # fmt: skip


def invariant_view(inv: Invariant) -> InvariantView:
    return InvariantView(**_fields(inv))


def contribution_view(stored: StoredInvariant) -> ContributionView:
    return ContributionView(
        **_fields(to_invariant(stored)), created_at=stored.created_at,
        verified_at=stored.verified_at, report=stored.report, status_reason=stored.status_reason,
    )  # fmt: skip


@get("/api/v1/invariants", dependencies=USER)
async def list_invariants(
    user: CurrentUser,
    svc: Svc,
    status: Annotated[Literal["pending", "rejected"] | None, QueryParameter()] = None,
) -> InvariantPage | ContributionPage:
    """In force for every tenant: the 32 builtins, the active packs (`source: "pack"`, the
    core pack by default) and the verified community invariants.
    `?status=pending|rejected` lists the caller's own contributions instead."""
    if status is not None:
        own = await svc.db.read(invariants.with_status, status, user.id)
        return ContributionPage([contribution_view(s) for s in own], len(own))
    items = [invariant_view(inv) for inv in svc.rules.catalog.invariants]
    return InvariantPage(items, len(items))


_contribution = msgspec.json.Decoder(Contribution)


# A generous limit here so that an absurd field (a 10 MB name) is a 400 that names the
# field, as for any other malformed contribution, rather than a bare 413.
@post("/api/v1/invariants/contribute", status_code=HTTP_201_CREATED, dependencies=USER,
      request_max_body_size=16 * 1024 * 1024,
      operation_class=body_of(Contribution, "A rule: see docs/rules.md."))  # fmt: skip
async def contribute(
    request: Request[Any, Any, Any], user: CurrentUser, svc: Svc
) -> ContributionView:
    """The seed's contribution schema, decoded strictly: "5432" is not a port."""
    body = decode_json(await request.body(), Contribution, _contribution)
    return contribution_view(await svc.community.contribute(user, body))


@post("/api/v1/invariants/{invariant_id:str}/verify", status_code=HTTP_200_OK, dependencies=USER)
async def verify(invariant_id: FromPath[str], user: CurrentUser, svc: Svc) -> Verdict:
    """Constructive and red-team checks; `active` protects every tenant from the next snapshot."""
    status, report = await svc.community.verify(user, invariant_id)
    return Verdict(status, report)


@post("/api/v1/invariants/{invariant_id:str}/retire", status_code=HTTP_200_OK, dependencies=USER)
async def retire(invariant_id: FromPath[str], user: CurrentUser, svc: Svc) -> ContributionView:
    """Admins only: it stops firing; incidents it opened stay."""
    await svc.community.retire(user, invariant_id)
    stored = await svc.db.read(invariants.get, invariant_id)
    if stored is None:
        raise NotFound("no such invariant")
    return contribution_view(stored)


handlers = [list_invariants, contribute, verify, retire]
