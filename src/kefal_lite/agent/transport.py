"""How the agent reaches its server: urllib, no redirects, and optionally a pinned
certificate.

A server started with `kefal-lite serve --tls` and no certificate of its own makes a
self-signed one; the install line carries its SHA-256 (`--pin sha256:…`). With a pin
the agent accepts exactly that certificate, whatever CA or name it claims, and checks it
right after the TLS handshake, before a byte of the request (and so of its token) is
written. Without a pin an https:// server needs a certificate the system's CAs vouch for.

Standard library only: this module ships in the agent the server hands out.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.client
import ssl
import urllib.request
from typing import Any

PIN_PREFIX = "sha256:"


class PinMismatch(ssl.SSLError):
    """The server's certificate is not the pinned one: nothing was sent."""


def fingerprint(der: bytes) -> str:
    """`sha256:<hex>` of a DER certificate, the form `--pin` takes."""
    return PIN_PREFIX + hashlib.sha256(der).hexdigest()


def normalise_pin(pin: str) -> str:
    """Accept `sha256:ab12…`, upper case and the colon-separated form `openssl x509
    -fingerprint -sha256` prints; ValueError for anything else."""
    text = pin.strip()
    if text.lower().startswith(PIN_PREFIX):
        text = text[len(PIN_PREFIX) :]
    digest = text.replace(":", "").lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"--pin {pin!r}: expected sha256: followed by 64 hex digits")
    return PIN_PREFIX + digest


class _PinnedConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, pin: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pin = pin

    def connect(self) -> None:
        super().connect()  # TCP, then the TLS handshake; no request byte is written yet
        der = self.sock.getpeercert(binary_form=True) or b""
        got = fingerprint(der)
        if not hmac.compare_digest(got, self._pin):
            self.sock.close()
            raise PinMismatch(
                f"the server's certificate is {got}, not the pinned {self._pin}; nothing was"
                " sent. Another machine answers at this address, or the server's certificate"
                " changed (then install again with the new --pin from its Agents page)"
            )


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, pin: str) -> None:
        # The pin replaces CA and name checks: a self-signed certificate has neither.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        super().__init__(context=context)
        self._pin = pin

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_PinnedConnection, pin=self._pin)
        return self.do_open(connection, req, context=self._context)  # type: ignore[attr-defined]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx comes back as an HTTPError instead of being followed: following would carry
    the token to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@functools.lru_cache(maxsize=8)
def opener(pin: str | None) -> urllib.request.OpenerDirector:
    if pin is None:
        return urllib.request.build_opener(_NoRedirects)
    return urllib.request.build_opener(_NoRedirects, _PinnedHTTPSHandler(normalise_pin(pin)))


def check_url(server: str, pin: str | None) -> None:
    """A pin means TLS: refuse to send a token over plain HTTP when one was given."""
    if pin is not None and not server.lower().startswith("https://"):
        raise ValueError(f"--pin needs an https:// server URL, not {server}")
