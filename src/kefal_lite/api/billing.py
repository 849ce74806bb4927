"""Billing: plans, status, checkout, cancel, and PayPal's webhook sink."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Request, get, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from kefal_lite.api.deps import USER, CurrentUser, Svc
from kefal_lite.api.docs import body_of
from kefal_lite.billing.plans import PLANS, Plan


class CheckoutBody(msgspec.Struct, forbid_unknown_fields=True):
    plan: Literal["starter", "professional", "enterprise"]


class Plans(msgspec.Struct, frozen=True):
    plans: list[Plan]


class BillingStatus(msgspec.Struct, frozen=True):
    provider: str  # noop or paypal
    plan: str
    state: str  # trial, active, past_due, cancelled, expired
    trial_ends_at: str | None
    current_period_end: str | None
    next_billing_date: str | None
    cancel_at_period_end: bool


class Checkout(msgspec.Struct, frozen=True):
    approval_url: str  # where the user approves the subscription at PayPal
    subscription_id: str


class Received(msgspec.Struct, frozen=True):
    status: str  # "ok"


# The providers answer plain dicts (billing/__init__.py's Protocol); the API's types are
# here, so a provider that drifts from them fails loudly rather than changing the wire.
def billing_status(status: dict[str, Any]) -> BillingStatus:
    return msgspec.convert(status, BillingStatus)


@get("/api/v1/billing/plans", dependencies=USER)
async def plans(user: CurrentUser) -> Plans:
    return Plans(list(PLANS))


@get("/api/v1/billing/status", dependencies=USER)
async def status(user: CurrentUser, svc: Svc) -> BillingStatus:
    return billing_status(await svc.billing.status(user))


@post("/api/v1/billing/checkout", status_code=HTTP_200_OK, dependencies=USER)
async def checkout(data: JSONBody[CheckoutBody], user: CurrentUser, svc: Svc) -> Checkout:
    """Starts a PayPal subscription: send the user to `approval_url`."""
    return msgspec.convert(await svc.billing.checkout(user, data.plan), Checkout)


@post("/api/v1/billing/cancel", status_code=HTTP_200_OK, dependencies=USER)
async def cancel(user: CurrentUser, svc: Svc) -> BillingStatus:
    """Stays active until the end of the paid period."""
    return billing_status(await svc.billing.cancel(user))


_EVENT = body_of(dict[str, Any], "A PayPal webhook event, as PayPal sends it.")


@post("/api/v1/billing/webhook", status_code=HTTP_200_OK, exclude_from_auth=True,
      operation_class=_EVENT)  # fmt: skip
async def webhook(request: Request[Any, Any, Any], svc: Svc) -> Received:
    """Verified with PayPal before anything changes; a replayed event is a no-op."""
    await svc.billing.webhook(dict(request.headers.items()), await request.body())
    return Received("ok")


handlers = [plans, status, checkout, cancel, webhook]
