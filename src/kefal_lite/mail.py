"""Mail delivery from the outbox table: SMTP when configured, else kept for the operator."""

from __future__ import annotations

import asyncio
import logging
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


def send_smtp(settings: Settings, mail: Mail) -> None:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = mail.recipient
    msg["Subject"] = mail.subject
    msg.set_content(mail.body or "")
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
            except (OSError, smtplib.SMTPException) as exc:
                give_up = mail.attempts + 1 >= MAX_ATTEMPTS
                log.warning(
                    "mail %d to %s failed (attempt %d%s): %s",
                    mail.id,
                    mail.recipient,
                    mail.attempts + 1,
                    ", giving up" if give_up else "",
                    exc,
                )
                await self._db.write(outbox.mark_failed, mail.id, str(exc), give_up)
            else:
                await self._db.write(outbox.mark_sent, mail.id, iso(self._clock.now()))
                sent += 1
        return sent
