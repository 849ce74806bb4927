"""How `kefal-lite serve` runs uvicorn: connection limits and timeouts against slow clients.

uvicorn has no timeout for receiving a request's head: its keep-alive timer runs only
between requests and is cancelled by the first byte received (uvicorn issue #157,
`--timeout-request-start`, never implemented). A client that sends half a header line and
stalls held its connection, and a task, forever; a few thousand such clients (slow-loris)
exhaust the process's file descriptors. `GuardedProtocol` adds the missing deadline.

What a slow or idle client now meets:
- an open connection must deliver a complete request head (request line and headers)
  within HEADER_SECONDS of connecting, or of the end of its previous response, else it
  is closed without an answer;
- a request head over HEADER_BYTES is refused with 431 and the connection closed
  (a fast sender cannot buffer megabytes of headers within the deadline either);
- an idle keep-alive connection is closed after KEEP_ALIVE_SECONDS (uvicorn's
  `timeout_keep_alive`);
- beyond MAX_CONNECTIONS open connections or running requests uvicorn answers 503
  (`limit_concurrency`), so a flood degrades into refusals, not into a dead process.
Request bodies and response streams are not timed here: a body is capped by
`http.max_body_bytes`, and event streams are capped per user (events.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kefal_lite.config import Settings

HEADER_SECONDS = 10.0
HEADER_BYTES = 64 * 1024
KEEP_ALIVE_SECONDS = 5
MAX_CONNECTIONS = 1000


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size cap on each request head."""

    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes: int | None = None  # bytes of the head received so far; None: not reading one

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def _await_head(self) -> None:
        self._cancel_head_timer()
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(HEADER_SECONDS, self._head_too_slow)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._head_bytes is not None and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Counted after parsing: a chunk that completes the head (and carries body bytes)
        # has already set _head_bytes to None in on_headers_complete.
        if self._head_bytes is not None:
            self._head_bytes += len(data)
            if self._head_bytes > HEADER_BYTES and not self.transport.is_closing():
                self._cancel_head_timer()
                self._head_bytes = None
                self._refuse_large_head()

    def _refuse_large_head(self) -> None:
        body = b'{"detail":"the request head is over the server\'s limit"}'
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.close()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        self._head_bytes = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments for uvicorn.Config/run that every way of serving shares."""
    return {
        "http": GuardedProtocol,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "limit_concurrency": MAX_CONNECTIONS,
        "server_header": False,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        # Open event streams (dashboards) would otherwise hold a shutdown forever.
        "timeout_graceful_shutdown": 5,
    }
