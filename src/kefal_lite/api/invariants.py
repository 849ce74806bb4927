"""Invariants: the catalogue in force, contributions, verification, retirement."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from kefal_lite.api.deps import USER, CurrentUser, Svc, page
from kefal_lite.api.docs import body_of
from kefal_lite.api.validation import decode_json
from kefal_lite.community import Contribution, to_invariant
from kefal_lite.detect.model import Invariant
from kefal_lite.errors import NotFound
from kefal_lite.store import invariants
from kefal_lite.store.invariants import StoredInvariant


def invariant_json(inv: Invariant) -> dict[str, Any]:
    return {
        "id": inv.id,
        "name": inv.name,
        "invariant_type": inv.invariant_type,
        "predicate": msgspec.to_builtins(inv.predicate),
        "severity": inv.severity,
        "metadata": inv.metadata,
        "category": inv.category,
        "attack": inv.attack,
        "source": inv.source,
        "status": inv.status,
        "contributed_by": inv.contributed_by,
    }


def stored_json(stored: StoredInvariant) -> dict[str, Any]:
    return invariant_json(to_invariant(stored)) | {
        "created_at": stored.created_at,
        "verified_at": stored.verified_at,
        "report": stored.report,
        "status_reason": stored.status_reason,
    }


@get("/api/v1/invariants", dependencies=USER)
async def list_invariants(
    user: CurrentUser,
    svc: Svc,
    status: Annotated[Literal["pending", "rejected"] | None, QueryParameter()] = None,
) -> dict[str, Any]:
    """In force for every tenant: the 32 builtins, the active packs (`source: "pack"`, the
    core pack by default) and the verified community invariants.
    `?status=pending|rejected` lists the caller's own contributions instead."""
    if status is not None:
        own = await svc.db.read(invariants.with_status, status, user.id)
        return page([stored_json(s) for s in own], len(own))
    items = [invariant_json(inv) for inv in svc.rules.catalog.invariants]
    return page(items, len(items))


_contribution = msgspec.json.Decoder(Contribution)


# A generous limit here so that an absurd field (a 10 MB name) is a 400 that names the
# field, as for any other malformed contribution, rather than a bare 413.
@post("/api/v1/invariants/contribute", status_code=HTTP_201_CREATED, dependencies=USER,
      request_max_body_size=16 * 1024 * 1024,
      operation_class=body_of(Contribution, "A rule: see docs/rules.md."))  # fmt: skip
async def contribute(
    request: Request[Any, Any, Any], user: CurrentUser, svc: Svc
) -> dict[str, Any]:
    """The seed's contribution schema, decoded strictly: "5432" is not a port."""
    body = decode_json(await request.body(), Contribution, _contribution)
    return stored_json(await svc.community.contribute(user, body))


@post("/api/v1/invariants/{invariant_id:str}/verify", status_code=HTTP_200_OK, dependencies=USER)
async def verify(invariant_id: FromPath[str], user: CurrentUser, svc: Svc) -> dict[str, Any]:
    """Constructive and red-team checks; `active` protects every tenant from the next snapshot."""
    status, report = await svc.community.verify(user, invariant_id)
    return {"status": status, "report": report}


@post("/api/v1/invariants/{invariant_id:str}/retire", status_code=HTTP_200_OK, dependencies=USER)
async def retire(invariant_id: FromPath[str], user: CurrentUser, svc: Svc) -> dict[str, Any]:
    """Admins only: it stops firing; incidents it opened stay."""
    await svc.community.retire(user, invariant_id)
    stored = await svc.db.read(invariants.get, invariant_id)
    if stored is None:
        raise NotFound("no such invariant")
    return stored_json(stored)


handlers = [list_invariants, contribute, verify, retire]
