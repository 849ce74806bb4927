"""Background runner over the persisted jobs table: retries with backoff, survives restarts.

Jobs are claimed in a write batch (one writer, so never twice), run concurrently
on the event loop, and finished or rescheduled in another. A job that was
running when the server stopped is pending again at the next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from kefal_lite.clock import Clock, iso
from kefal_lite.store import jobs
from kefal_lite.store.db import Database
from kefal_lite.worker import Worker

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 10.0
POLL_SECONDS = 5.0

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class JobRunner(Worker):
    name = "kefal-jobs"
    every = POLL_SECONDS

    def __init__(self, db: Database, clock: Clock, handlers: dict[str, Handler]) -> None:
        super().__init__()
        self._db = db
        self._clock = clock
        self._handlers = handlers

    async def start(self) -> None:
        requeued = await self._db.write(jobs.requeue_running, iso(self._clock.now()))
        if requeued:
            log.info("%d job(s) interrupted by the last shutdown will run again", requeued)
        self.start_loop()

    async def work(self) -> None:
        while await self.run_due():
            pass

    async def run_due(self) -> int:
        due = await self._db.write(jobs.claim_due, iso(self._clock.now()))
        await asyncio.gather(*(self._run(job) for job in due))
        return len(due)

    async def _run(self, job: jobs.Job) -> None:
        handler = self._handlers.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            await handler(job.payload)
        except Exception as exc:
            now = self._clock.now()
            retry = None
            if job.attempts < MAX_ATTEMPTS:
                retry = iso(now + timedelta(seconds=BACKOFF_SECONDS * 2 ** (job.attempts - 1)))
            log.warning("job %d (%s) attempt %d failed: %s%s", job.id, job.kind, job.attempts,
                        exc, "" if retry else "; giving up")  # fmt: skip
            await self._db.write(jobs.retry_or_fail, job.id, f"{type(exc).__name__}: {exc}",
                                 iso(now), retry)  # fmt: skip
        else:
            await self._db.write(jobs.finish, job.id, iso(self._clock.now()))
