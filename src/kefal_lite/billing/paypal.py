"""PayPal subscriptions for operators who host kefal-lite for customers.

State per organization: `trial` (7 days from its creation) -> `active` -> `cancelled` (still active
until the period ends) -> `expired`; `past_due` when a payment fails or PayPal suspends
the subscription. Ingest is allowed in trial, active and cancelled-before-period-end.
Every webhook is checked with PayPal's verify-webhook-signature call before anything
changes, and applied once per event id. No card data ever reaches kefal-lite: PayPal's
approval page takes the payment.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timedelta
from typing import Any

import httpx

from kefal_lite.billing.plans import BY_ID, FEATURES, TRIAL_AGENTS, VERIFICATION
from kefal_lite.clock import Clock, iso, parse_iso
from kefal_lite.config import Settings
from kefal_lite.errors import BadGateway, BadRequest, Conflict, ServiceUnavailable
from kefal_lite.store import audit, billing, orgs
from kefal_lite.store.billing import Subscription
from kefal_lite.store.db import Conn, Database
from kefal_lite.store.orgs import Org
from kefal_lite.usecases.actor import Actor

log = logging.getLogger(__name__)

BASE_URLS = {"sandbox": "https://api-m.sandbox.paypal.com", "live": "https://api-m.paypal.com"}
TRIAL = timedelta(days=7)
ALLOWED = ("trial", "active", "cancelled")
STATUS_TTL = 10.0  # seconds a tenant's ingest permission is cached
TIMEOUT = 15.0


class PayPalApi:
    """The four calls kefal-lite needs, with an OAuth2 client-credentials token cached
    until shortly before it expires."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        secret: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._secret = secret
        self._transport = transport
        self._token: tuple[str, float] | None = None

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT, transport=self._transport) as client:
                return await client.request(method, self.base_url + path, **kwargs)
        except httpx.HTTPError:
            raise ServiceUnavailable(
                "PayPal is unreachable right now; nothing was changed"
            ) from None

    async def token(self) -> str:
        if self._token and self._token[1] > time.monotonic():
            return self._token[0]
        response = await self._request(
            "POST",
            "/v1/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(self._client_id, self._secret),
        )
        if response.status_code != 200:
            raise BadGateway(
                f"PayPal refused kefal-lite's credentials (HTTP {response.status_code})"
            )
        data = response.json()
        self._token = (
            data["access_token"],
            time.monotonic() + int(data.get("expires_in", 300)) - 60,
        )
        return self._token[0]

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {
            "Authorization": f"Bearer {await self.token()}",
            "Content-Type": "application/json",
        }
        response = await self._request(
            method, path, headers=headers, content=json.dumps(body) if body is not None else None
        )
        if response.status_code >= 500:
            raise ServiceUnavailable(
                "PayPal is having trouble; nothing was changed, try again shortly"
            )
        if response.status_code >= 400:
            raise BadGateway(f"PayPal answered HTTP {response.status_code} to {path.split('?')[0]}")
        return response.json() if response.content else None


class PayPalBilling:
    name = "paypal"

    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Clock,
        api: PayPalApi | None = None,
        webhook_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._clock = clock
        base = settings.billing_paypal_base_url or BASE_URLS[settings.billing_paypal_mode]
        self.api = api or PayPalApi(
            base, os.environ.get("PAYPAL_CLIENT_ID", ""), os.environ.get("PAYPAL_CLIENT_SECRET", "")
        )
        self._webhook_id = (
            webhook_id if webhook_id is not None else os.environ.get("PAYPAL_WEBHOOK_ID", "")
        )
        self._plan_ids = {
            "starter": settings.billing_plan_starter,
            "professional": settings.billing_plan_professional,
            "enterprise": settings.billing_plan_enterprise,
        }
        self._cache: dict[str, tuple[float, bool]] = {}

    # --- state ---------------------------------------------------------------------

    def _state(self, trial_start: str, sub: Subscription | None,
               now: datetime) -> tuple[str, str]:  # fmt: skip
        if sub is None:
            trial_end = parse_iso(trial_start) + TRIAL
            return ("trial" if now < trial_end else "expired"), "trial"
        state = sub.state
        if (
            state == "cancelled"
            and sub.current_period_end
            and now >= parse_iso(sub.current_period_end)
        ):
            state = "expired"
        return state, sub.plan

    async def status(self, org: Org) -> dict[str, Any]:
        sub = await self._db.read(billing.get, org.id)
        # one trial per account: a second organization does not start a new one (#17)
        trial_start = await self._db.read(orgs.trial_start, org.id) or org.created_at
        state, plan = self._state(trial_start, sub, self._clock.now())
        return {
            "provider": self.name,
            "plan": plan,
            "state": state,
            "trial_ends_at": iso(parse_iso(trial_start) + TRIAL),
            "current_period_end": sub.current_period_end if sub else None,
            "next_billing_date": sub.next_billing_date if sub and state == "active" else None,
            "cancel_at_period_end": bool(sub and sub.cancel_at_period_end),
        }

    async def may_ingest(self, org_id: str) -> bool:
        now = self._clock.now().timestamp()  # the injected clock, so tests can expire it
        cached = self._cache.get(org_id)
        if cached and cached[0] > now:
            return cached[1]
        org = await self._db.read(orgs.get, org_id)
        allowed = org is not None and (await self.status(org))["state"] in ALLOWED
        self._cache[org_id] = (now + STATUS_TTL, allowed)
        return allowed

    async def has_feature(self, org_id: str, feature: str) -> bool:
        org = await self._db.read(orgs.get, org_id)
        if org is None:
            return False
        status = await self.status(org)
        return status["state"] in ALLOWED and feature in FEATURES.get(status["plan"], ())

    async def may_verify(self, org: Org) -> bool:
        return await self.has_feature(org.id, VERIFICATION)

    async def agent_limit(self, org: Org) -> int | None:
        status = await self.status(org)
        if status["state"] not in ALLOWED:
            return 0
        if status["plan"] == "trial":
            return TRIAL_AGENTS
        return BY_ID[status["plan"]].max_agents

    # --- checkout and cancel -------------------------------------------------------

    async def checkout(self, actor: Actor, org: Org, plan: str) -> dict[str, Any]:
        plan_id = self._plan_ids.get(plan)
        if plan not in BY_ID or not plan_id:
            raise BadRequest(f"no PayPal plan is configured for {plan!r}")
        base = self._settings.base_url
        created = await self.api.call(
            "POST",
            "/v1/billing/subscriptions",
            {
                "plan_id": plan_id,
                "custom_id": org.id,  # comes back on every event: which organization this is
                "application_context": {
                    "brand_name": "kefal-lite",
                    "user_action": "SUBSCRIBE_NOW",
                    "return_url": f"{base}/#/settings?billing=approved",
                    "cancel_url": f"{base}/#/settings?billing=cancelled",
                },
            },
        )
        approve = next(
            (link["href"] for link in created.get("links", []) if link.get("rel") == "approve"),
            None,
        )
        if not approve:
            raise BadGateway("PayPal created no approval link")
        entry = actor.entry(iso(self._clock.now()), "billing_checkout", created["id"], plan=plan)
        await self._db.write(audit.record, entry)
        return {"approval_url": approve, "subscription_id": created["id"]}

    async def cancel(self, actor: Actor, org: Org) -> dict[str, Any]:
        sub = await self._db.read(billing.get, org.id)
        if sub is None or sub.state not in ("active", "past_due") or not sub.provider_id:
            raise Conflict("there is no active subscription to cancel")
        await self.api.call(
            "POST",
            f"/v1/billing/subscriptions/{sub.provider_id}/cancel",
            {"reason": "Cancelled from kefal-lite"},
        )
        now = iso(self._clock.now())
        updated = Subscription(
            sub.org_id,
            sub.plan,
            "cancelled",
            sub.provider_id,
            sub.current_period_end or sub.next_billing_date,
            None,
            True,
            now,
        )
        entry = actor.entry(now, "billing_cancelled", sub.provider_id)
        await self._db.write(audit.audited, entry, billing.put, updated)
        self._cache.pop(org.id, None)
        return await self.status(org)

    # --- webhook -------------------------------------------------------------------

    async def webhook(self, headers: dict[str, str], body: bytes) -> None:
        try:
            event = json.loads(body)
            event_id, event_type = str(event["id"]), str(event["event_type"])
            resource = event.get("resource") or {}
        except (ValueError, KeyError, TypeError):
            raise BadRequest("not a PayPal webhook event") from None
        h = {k.lower(): v for k, v in headers.items()}
        verdict = await self.api.call(
            "POST",
            "/v1/notifications/verify-webhook-signature",
            {
                "auth_algo": h.get("paypal-auth-algo", ""),
                "cert_url": h.get("paypal-cert-url", ""),
                "transmission_id": h.get("paypal-transmission-id", ""),
                "transmission_sig": h.get("paypal-transmission-sig", ""),
                "transmission_time": h.get("paypal-transmission-time", ""),
                "webhook_id": self._webhook_id,
                "webhook_event": event,
            },
        )
        if not verdict or verdict.get("verification_status") != "SUCCESS":
            raise BadRequest("the webhook signature did not verify; ignored")
        now = self._clock.now()
        await self._db.write(self._apply, event_id, event_type, resource, now)
        self._cache.clear()

    def _apply(
        self, conn: Conn, event_id: str, event_type: str, resource: dict[str, Any], now: datetime
    ) -> None:
        if not billing.first_time(conn, event_id, event_type, iso(now)):
            return  # a replay: applied before
        if event_type == "PAYMENT.SALE.COMPLETED":
            provider_id = str(resource.get("billing_agreement_id") or "")
            sub = billing.by_provider_id(conn, provider_id)
            if sub is None:
                return
            paid_until = iso(now + timedelta(days=31))
            new = Subscription(
                sub.org_id,
                sub.plan,
                "active",
                provider_id,
                paid_until,
                paid_until,
                False,
                iso(now),
            )
        else:
            provider_id = str(resource.get("id") or "")
            existing = billing.by_provider_id(conn, provider_id)
            org_id = str(resource.get("custom_id") or (existing.org_id if existing else ""))
            if not org_id or orgs.get(conn, org_id) is None:
                return
            by_paypal_id = {v: k for k, v in self._plan_ids.items() if v}
            fallback = existing.plan if existing else "starter"
            plan = by_paypal_id.get(str(resource.get("plan_id")), fallback)
            next_billing = (resource.get("billing_info") or {}).get("next_billing_time")
            period_end = next_billing or (existing.current_period_end if existing else None)
            state = {
                "BILLING.SUBSCRIPTION.ACTIVATED": "active",
                "BILLING.SUBSCRIPTION.CANCELLED": "cancelled",
                "BILLING.SUBSCRIPTION.SUSPENDED": "past_due",
                "BILLING.SUBSCRIPTION.EXPIRED": "expired",
            }.get(event_type)
            if state is None:
                return  # an event type kefal-lite does not act on
            new = Subscription(
                org_id,
                plan,
                state,
                provider_id,
                period_end,
                next_billing if state == "active" else None,
                state == "cancelled",
                iso(now),
            )
        billing.put(conn, new)
        audit.record(
            conn,
            audit.Entry(
                iso(now),
                None,
                "paypal",
                "billing_" + new.state,
                new.provider_id,
                None,
                {"event": event_type},
                new.org_id,
            ),
        )
