"""Billing: plans, status, checkout, cancel, and PayPal's webhook sink."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Request, get, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from kefal_lite.api.deps import USER, CurrentUser, Svc
from kefal_lite.api.docs import body_of
from kefal_lite.billing.plans import PLANS


class CheckoutBody(msgspec.Struct, forbid_unknown_fields=True):
    plan: Literal["starter", "professional", "enterprise"]


@get("/api/v1/billing/plans", dependencies=USER)
async def plans(user: CurrentUser) -> dict[str, Any]:
    return {"plans": [msgspec.to_builtins(p) for p in PLANS]}


@get("/api/v1/billing/status", dependencies=USER)
async def status(user: CurrentUser, svc: Svc) -> dict[str, Any]:
    return await svc.billing.status(user)


@post("/api/v1/billing/checkout", status_code=HTTP_200_OK, dependencies=USER)
async def checkout(data: JSONBody[CheckoutBody], user: CurrentUser, svc: Svc) -> dict[str, Any]:
    """Starts a PayPal subscription: send the user to `approval_url`."""
    return await svc.billing.checkout(user, data.plan)


@post("/api/v1/billing/cancel", status_code=HTTP_200_OK, dependencies=USER)
async def cancel(user: CurrentUser, svc: Svc) -> dict[str, Any]:
    """Stays active until the end of the paid period."""
    return await svc.billing.cancel(user)


_EVENT = body_of(dict[str, Any], "A PayPal webhook event, as PayPal sends it.")


@post("/api/v1/billing/webhook", status_code=HTTP_200_OK, exclude_from_auth=True,
      operation_class=_EVENT)  # fmt: skip
async def webhook(request: Request[Any, Any, Any], svc: Svc) -> dict[str, str]:
    """Verified with PayPal before anything changes; a replayed event is a no-op."""
    await svc.billing.webhook(dict(request.headers.items()), await request.body())
    return {"status": "ok"}


handlers = [plans, status, checkout, cancel, webhook]
