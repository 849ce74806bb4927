"""Notification channels: tell people when incidents open and recover, hosts go silent and
come back. Delivery runs from the persisted jobs table (retries with backoff) and never
blocks ingest.

Channel URLs, as Uptime Kuma's and Beszel's users know them:
- `webhook://host[:port]/path` (http) or `webhooks://...` (https): built in. A JSON body
  signed with HMAC-SHA256 over "<timestamp>.<body>" (headers `X-Kefal-Timestamp`,
  `X-Kefal-Signature: sha256=<hex>`); receivers reject stale timestamps against replay.
- `mailto:alice@example.org`: built in, through the server's SMTP settings and outbox.
- anything Apprise understands (ntfy://, gotify://, slack://, discord://, tgram://,
  matrix://, msteams://, json://, ...): through Apprise.
URLs often embed tokens: they are stored sealed, shown masked, and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import msgspec

from kefal_lite import mail, urlguard
from kefal_lite.clock import Clock, iso
from kefal_lite.config import Settings
from kefal_lite.errors import BadRequest, NotFound
from kefal_lite.ids import new_id
from kefal_lite.remediate import templates
from kefal_lite.rules import Rules
from kefal_lite.security import SecretBox
from kefal_lite.store import channels, incidents
from kefal_lite.store.channels import Channel
from kefal_lite.store.db import Conn, Database
from kefal_lite.usecases import channels as channel_cases
from kefal_lite.usecases.actor import Actor

log = logging.getLogger(__name__)
TIMEOUT = 10.0
# One answer for "not allowed" and "does not answer": /test must not become a port scanner.
UNDELIVERABLE = "unreachable: the destination did not answer or is not allowed"


class DeliveryError(Exception):
    pass


def mask(url: str) -> str:
    """Enough to recognise the channel, nothing that would let someone use it."""
    if url.startswith("mailto:"):
        user, _, domain = url[7:].partition("@")
        return f"mailto:{user[:1]}***@{domain}"
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}/***"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def incident_link(public_url: str, incident_id: str) -> str | None:
    """The dashboard's page of the incident, or None without a public URL: the server's
    own address (often 127.0.0.1) would mean nothing on the phone that gets the message."""
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/#/incidents?id={quote(incident_id, safe='')}"


class Notifier:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Clock,
        box: SecretBox,
        rules: Rules,
        on_mail: Any,
    ) -> None:
        self._settings = settings
        self._db = db
        self._clock = clock
        self._box = box
        self._rules = rules
        self._on_mail = on_mail
        # Public so tests can stand in for DNS and "the internet" (urlguard.UrlGuard).
        self.guard = urlguard.UrlGuard(settings.notifications_private_allowed)

    # --- channels ------------------------------------------------------------------

    async def create(
        self, actor: Actor, name: str, url: str, min_severity: str
    ) -> tuple[Channel, str | None]:
        scheme = url.split(":", 1)[0].lower()
        if scheme == "mailto":
            if mail.mailto_address(url) is None:
                raise BadRequest(
                    "mailto: takes exactly one plain address, e.g. mailto:alice@example.org"
                )
        else:
            await asyncio.to_thread(self._check_url, scheme, url)
        channel_id = new_id()
        secret = secrets.token_urlsafe(32) if scheme in ("webhook", "webhooks") else None
        channel = Channel(
            id=channel_id,
            org_id=actor.org_id,
            name=name,
            url_sealed=self._box.seal(url, channel_id),
            url_masked=mask(url),
            secret_sealed=self._box.seal(secret, channel_id) if secret else None,
            min_severity=min_severity,
            created_at=iso(self._clock.now()),
            last_success_at=None,
            last_error=None,
            last_error_at=None,
        )
        await self._db.write(channel_cases.add_channel, actor, channel)
        return channel, secret

    async def test(self, org_id: str, channel_id: str) -> str | None:
        """Send a test message now; the error, or None when it went out."""
        channel = await self._db.read(channels.get, channel_id, org_id)
        if channel is None:
            raise NotFound("no such channel")
        message = {
            "event": "test",
            "title": "kefal-lite test message",
            "text": f"Channel {channel.name!r} works: kefal-lite can reach it.",
        }
        try:
            await self._send(channel, message)
            error = None
        except DeliveryError as exc:
            error = str(exc)
        await self._db.write(channels.record_result, channel.id, iso(self._clock.now()), error)
        return error

    # --- the notify job ------------------------------------------------------------

    async def deliver(self, payload: dict[str, Any]) -> None:
        channel = await self._db.read(channels.get, str(payload["channel_id"]))
        if channel is None:
            return  # deleted since: nothing to deliver
        inc = await self._db.read(incidents.get, channel.org_id, str(payload["incident_id"]))
        if inc is None:
            return
        message = await self._message(str(payload["event"]), inc)
        try:
            await self._send(channel, message)
        except DeliveryError as exc:
            await self._db.write(
                channels.record_result, channel.id, iso(self._clock.now()), str(exc)
            )
            raise  # the jobs runner retries with backoff
        await self._db.write(channels.record_result, channel.id, iso(self._clock.now()), None)

    async def _message(self, event: str, inc: incidents.Incident) -> dict[str, Any]:
        host = inc.hostname
        if event == "host.silent":
            title = f"[kefal] {host} is silent"
            text = inc.title
        elif event == "host.recovered":
            title = f"[kefal] {host} is back"
            text = f"{host} reports again (silent since {inc.first_seen_at})."
        elif event == "incident.resolved":
            how = (
                "verified fix"
                if inc.resolved_by == "remediation"
                else inc.resolved_by or "resolved"
            )
            title = f"[kefal] resolved ({how}): {inc.title}"
            text = f"{host}: {inc.title} is no longer seen ({how})."
        elif event == "remediation.failed":
            title = f"[kefal] fix did not work on {host}: {inc.title}"
            text = (
                f"{inc.title}\nHost: {host}\nThe remediation was marked applied, but the"
                " host's next snapshot still shows the violation: the incident stays open."
            )
        else:
            title = f"[kefal] {inc.severity.upper()} on {host}: {inc.title}"
            first = await self._first_action(inc)
            text = f"{inc.title}\nHost: {host}\nSubject: {inc.subject}"
            if first:
                text += f"\n\nFirst step: {first.title}\n" + "\n".join(
                    f"  {c}" for c in first.commands
                )
        link = incident_link(self._settings.public_url, inc.id)
        if link:
            text += f"\n\nOpen: {link}"
        return {
            "event": event,
            "title": title,
            "text": text,
            "url": link,
            "incident": {
                "id": inc.id,
                "host_id": inc.host_id,
                "hostname": host,
                "severity": inc.severity,
                "status": inc.status,
                "invariant_id": inc.invariant_id,
                "subject": inc.subject,
                "title": inc.title,
                "attack": inc.attack,
            },
        }

    async def _first_action(self, inc: incidents.Incident) -> templates.Action | None:
        if inc.remediation_actions:
            return msgspec.convert(inc.remediation_actions[0], templates.Action)
        invariant = self._rules.invariant(inc.invariant_id)
        target = await self._db.read(incidents.remediation_target, inc.id)
        if invariant is None or target is None:
            return None
        return templates.render(invariant, inc.subject, target.evidence, target.os or "linux")[0]

    def _check_url(self, scheme: str, url: str) -> None:
        """At creation: one URL with a host, and (private destinations forbidden) a
        destination outside the server's network. A 400 saying why."""
        try:
            if scheme in ("webhook", "webhooks"):
                target, _ = urlguard.parse_webhook(url)
                if self.guard.restricted:
                    self.guard.resolve(target.host, target.port)
                return
            try:
                plugin = urlguard.apprise_plugin(url)
            except urlguard.Unknown:
                raise BadRequest(
                    f"{scheme}:// is not a notification URL kefal-lite knows (webhook://,"
                    " mailto:, or any Apprise URL)"
                ) from None
            self.guard.check_apprise(url, plugin)
        except urlguard.Refused as exc:
            raise BadRequest(str(exc)) from None

    async def _send(self, channel: Channel, message: dict[str, Any]) -> None:
        url = self._box.open(channel.url_sealed, channel.id)
        scheme = url.split(":", 1)[0].lower()
        try:
            if scheme in ("webhook", "webhooks"):
                assert channel.secret_sealed is not None
                secret = self._box.open(channel.secret_sealed, channel.id)
                target, path = urlguard.parse_webhook(url)
                addresses = await asyncio.to_thread(self.guard.resolve, target.host, target.port)
                await _webhook(target, path, addresses[0], url, secret, message)
            elif scheme == "mailto":
                address = mail.mailto_address(url)
                if address is None:
                    raise urlguard.Refused("not one plain mail address")
                await self._db.write(self._mail, address, message)
                self._on_mail()
            else:
                await asyncio.to_thread(_apprise, self.guard, url, message)
        except urlguard.Refused as exc:
            # Logged for the operator; the tenant sees the same words as for a destination
            # that does not answer, so /test cannot tell "refused" from "closed port".
            log.warning("channel %s: destination refused: %s", channel.id, exc)
            raise DeliveryError(UNDELIVERABLE) from None

    def _mail(self, conn: Conn, recipient: str, message: dict[str, Any]) -> None:
        mail.queue(
            conn,
            self._settings,
            recipient=recipient,
            subject=message["title"],
            body=message["text"],
            now=iso(self._clock.now()),
        )


async def _webhook(
    target: urlguard.Target,
    path: str,
    address: urlguard.IPAddress,
    url: str,
    secret: str,
    message: dict[str, Any],
) -> None:
    """POST to the pinned address; the name travels as Host header and TLS SNI (and the
    certificate is checked against it). Redirects are answers, not instructions."""
    literal = f"[{address}]" if address.version == 6 else str(address)
    named = f"[{target.host}]" if ":" in target.host else target.host
    default_port = 443 if target.scheme == "https" else 80
    body = json.dumps(message, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Host": named if target.port == default_port else f"{named}:{target.port}",
        "Content-Type": "application/json",
        "User-Agent": "kefal-lite",
        "X-Kefal-Timestamp": timestamp,
        "X-Kefal-Signature": sign(secret, timestamp, body),
    }
    parts = urlsplit(url)
    auth: httpx.Auth | httpx._client.UseClientDefault = (
        httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
        if parts.username
        else httpx.USE_CLIENT_DEFAULT
    )
    extensions = {} if urlguard.is_literal(target.host) else {"sni_hostname": target.host}
    try:
        async with httpx.AsyncClient(
            timeout=TIMEOUT, follow_redirects=False, trust_env=False
        ) as client:
            response = await client.post(
                f"{target.scheme}://{literal}:{target.port}{path}",
                content=body,
                headers=headers,
                auth=auth,
                extensions=extensions,
            )
    except httpx.HTTPError as exc:
        log.info("webhook delivery failed: %s", type(exc).__name__)
        raise DeliveryError(UNDELIVERABLE) from None
    if response.is_redirect:
        raise DeliveryError(
            f"webhook answered HTTP {response.status_code} (a redirect; kefal-lite does not"
            " follow redirects: use the final URL)"
        )
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"webhook answered HTTP {response.status_code}")


def _apprise(guard: urlguard.UrlGuard, url: str, message: dict[str, Any]) -> None:
    """In a worker thread: every connection the plugin opens is resolved by the guard
    (checked, pinned) and no redirect is followed; see urlguard."""
    import apprise

    with guard.pinning():
        plugin = urlguard.apprise_plugin(url)
        guard.check_scheme(url)
        sender = apprise.Apprise()
        sender.add(plugin)
        if not sender.notify(title=message["title"], body=message["text"]):
            raise DeliveryError(UNDELIVERABLE)
