"""A webhook receiver for notification tests (the `receiver` fixture in conftest.py runs
it on 127.0.0.1): it records what arrives and can fail the first attempts."""

from __future__ import annotations

import http.server
from typing import Any


class Receiver(http.server.BaseHTTPRequestHandler):
    fail_first = 0
    received: list[dict[str, Any]]
    attempts: list[int]

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        cls.attempts.append(1)
        if len(cls.attempts) <= cls.fail_first:
            self.send_response(500)
            self.end_headers()
            return
        cls.received.append(
            {"body": body, "headers": dict(self.headers.items()), "path": self.path}
        )
        self.send_response(204)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 - heartbeats
        type(self).received.append(
            {"body": b"", "headers": dict(self.headers.items()), "path": self.path}
        )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass
