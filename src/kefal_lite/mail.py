"""Mail delivery from the outbox table: SMTP when configured, else kept for the operator."""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
import ssl
from email.message import EmailMessage

from kefal_lite.clock import Clock, iso
from kefal_lite.config import Settings
from kefal_lite.store import outbox
from kefal_lite.store.db import Conn, Database
from kefal_lite.store.outbox import Mail
from kefal_lite.worker import Worker

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_SECONDS = 60.0

# One plain address: no display name, no list, no header continuation, no mailto query.
_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def valid_address(address: str) -> bool:
    return _ADDRESS.fullmatch(address) is not None


def mailto_address(url: str) -> str | None:
    """The one address of a `mailto:` channel URL, or None when it is anything else."""
    if url[:7].lower() != "mailto:":
        return None
    address = url[7:]
    return address if valid_address(address) else None


class Undeliverable(Exception):
    """This mail can never be sent as it is: failed now, not retried."""


def queue(
    conn: Conn, settings: Settings, *, recipient: str, subject: str, body: str, now: str
) -> None:
    """Add a mail inside the caller's transaction; delivery happens after the commit."""
    status = "pending" if settings.smtp_host else "local"
    outbox.add(conn, recipient=recipient, subject=subject, body=body, status=status, now=now)
    if status == "local":
        # The body may hold a reset link: it stays in the database, never in a log line.
        log.warning(
            "no SMTP server is configured: the mail %r to %s is kept in the outbox;"
            " read it with `kefal-lite outbox`",
            subject,
            recipient,
        )


def build(settings: Settings, mail: Mail) -> EmailMessage:
    if not valid_address(mail.recipient):
        raise Undeliverable("the recipient is not one plain mail address")
    msg = EmailMessage()
    try:
        msg["From"] = settings.smtp_from
        msg["To"] = mail.recipient
        # Titles may carry host text: a line break would end the header.
        msg["Subject"] = _CONTROL.sub(" ", mail.subject)
        msg.set_content(mail.body or "")
    except (ValueError, TypeError) as exc:
        raise Undeliverable(f"the mail cannot be built: {exc}") from None
    return msg


def send_smtp(settings: Settings, mail: Mail) -> None:
    msg = build(settings, mail)
    timeout = settings.smtp_timeout_seconds
    smtp: smtplib.SMTP
    if settings.smtp_ssl:
        smtp = smtplib.SMTP_SSL(
            settings.smtp_host,
            settings.smtp_port,
            timeout=timeout,
            context=ssl.create_default_context(),
        )
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    with smtp:
        if settings.smtp_starttls and not settings.smtp_ssl:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            elif settings.smtp_username:
                # Never send credentials in clear text.
                raise smtplib.SMTPException("the SMTP server does not offer STARTTLS")
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
        smtp.send_message(msg)


class Mailer(Worker):
    """Sends pending outbox rows in the background; retried every minute, 5 attempts."""

    name = "kefal-mailer"
    every = RETRY_SECONDS

    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        super().__init__()
        self._settings = settings
        self._db = db
        self._clock = clock

    def start(self) -> None:
        if self._settings.smtp_host:
            self.start_loop()

    async def work(self) -> None:
        await self.deliver_pending()

    async def deliver_pending(self) -> int:
        sent = 0
        for mail in await self._db.read(outbox.pending):
            try:
                await asyncio.to_thread(send_smtp, self._settings, mail)
            except Exception as exc:  # one bad mail must never hold back the ones after it
                give_up = mail.attempts + 1 >= MAX_ATTEMPTS or _permanent(exc)
                log.warning(
                    "mail %d failed (attempt %d%s): %s",
                    mail.id,
                    mail.attempts + 1,
                    ", giving up" if give_up else "",
                    exc
                    if isinstance(exc, Undeliverable | smtplib.SMTPException | OSError)
                    else type(exc).__name__,
                )
                await self._db.write(outbox.mark_failed, mail.id, str(exc), give_up)
            else:
                await self._db.write(outbox.mark_sent, mail.id, iso(self._clock.now()))
                sent += 1
        return sent


def _permanent(exc: Exception) -> bool:
    """Retrying cannot help: the mail itself is wrong, or the server said 5xx about it."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500 and not isinstance(exc, smtplib.SMTPAuthenticationError)
    return not isinstance(exc, OSError | smtplib.SMTPException)
