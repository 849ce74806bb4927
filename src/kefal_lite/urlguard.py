"""The one gate for requests the server makes on behalf of a tenant (notification webhooks,
Apprise deliveries, a channel's /test).

A tenant chooses the URL, so a tenant must not be able to make this server call its own
network (server-side request forgery). The rules, all enforced here:

- One parser: the URL is split and read by Apprise's parser (the one that will deliver
  it), and it must be exactly one URL with a host. A second parser is consulted only to
  refuse when the two disagree about the host.
- Resolve once, check every answer, connect to the checked answer. Built-in webhooks go
  through httpx to the pinned IP literal with the original name as Host header and TLS
  SNI (certificates are verified against the name). Apprise plugins do their own HTTP
  with `requests`; for the duration of one delivery a context-scoped hook on
  `socket.getaddrinfo` answers every lookup from the guard (checked, and pinned: the
  same answer for the same name within the delivery). The hook is a pass-through for
  every other caller: it acts only where `_ACTIVE` is set, and asyncio's own resolver
  threads do not inherit that context.
- No redirects: httpx is told not to follow them; for Apprise, `requests` is told there
  is no redirect target while a delivery is guarded, so the 3xx reaches the plugin as a
  failure.
- With private destinations forbidden, only Apprise schemes known to connect through
  `requests` (so through the hook) are accepted: others (SMTP, MQTT, XMPP, IRC, syslog,
  desktop notifications) open sockets in ways the hook cannot pin and are refused.

Operator-set URLs (the LLM base URL, the heartbeat URL, PayPal's API base) are the
operator's configuration, not a tenant's, and do not pass through here.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host -> the addresses it resolves to (textual IPs); injectable for tests
Resolver = Callable[[str], list[str]]
# (address, port) -> may the server connect there
Policy = Callable[[IPAddress, int], bool]

_system_getaddrinfo = socket.getaddrinfo

# Apprise schemes whose plugins make every connection through `requests` (checked by a
# test against the installed Apprise's source), so the resolution hook pins them.
PINNABLE_APPRISE = frozenset(
    """json jsons form forms xml xmls ntfy ntfys gotify gotifys slack discord tgram
    workflow workflows matrix matrixs pover mmost mmosts rocket rockets signal signals
    apprise apprises pbul ifttt opsgenie pagerduty gchat hassio hassios nctalk nctalks
    ncloud nclouds zulip webex lametric bark barks mastodon toot line spush""".split()
)

_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        # cloud metadata / platform endpoints outside the ranges above (Azure's wireserver)
        "168.63.129.16/32",
    )
)  # fmt: skip
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible forms
        "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10",
        "ff00::/8", "64:ff9b:1::/48",  # local-use NAT64 translates to anything inside
    )
)  # fmt: skip
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public(address: IPAddress) -> bool:
    """An address on the public internet, not one of the server's neighbours. IPv6 forms
    that carry an IPv4 address (mapped, NAT64, 6to4) are judged by that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address in _NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            return is_public(address.sixtofour)
        if any(address in net for net in _BLOCKED_V6):
            return False
    elif any(address in net for net in _BLOCKED_V4):
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved)


class Refused(Exception):
    """The URL or its destination is not allowed; the message says why (for the tenant who
    is creating the channel; at delivery time it is logged, not shown)."""


class Unknown(Refused):
    """No Apprise plugin takes this URL."""


def system_resolver(host: str) -> list[str]:
    try:
        infos = _system_getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Refused(f"cannot resolve {host}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_literal(host: str) -> bool:
    return _literal(host) is not None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class Target:
    """One parsed destination: what the parser says the URL means."""

    scheme: str
    host: str  # without brackets
    port: int


def _apprise_parsers() -> Any:
    try:
        from apprise.utils import parse  # Apprise >= 1.9.1
    except ImportError:  # pragma: no cover - older Apprise kept them in one module
        from apprise import utils as parse  # type: ignore[no-redef]
    return parse


def _split_one(url: str) -> None:
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise Refused("a notification URL has no spaces or control characters")
    urls = _apprise_parsers().parse_urls(url)
    if len(urls) != 1:
        raise Refused("exactly one notification URL, please")


def parse_webhook(url: str) -> tuple[Target, str]:
    """webhook:// and webhooks://: the target and the path-and-query to request."""
    _split_one(url)
    parsed = _apprise_parsers().parse_url(url, verify_host=True)
    host = (parsed or {}).get("host") or ""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise Refused("the URL's port is not a number from 1 to 65535") from None
    if not host or (parts.hostname or "").lower() != host.strip("[]").lower():
        raise Refused("the URL needs exactly one host (webhook://host[:port]/path)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    scheme = "https" if parts.scheme.lower() == "webhooks" else "http"
    return Target(scheme, host.strip("[]"), port or (443 if scheme == "https" else 80)), path


def apprise_plugin(url: str) -> Any:
    """The Apprise plugin for exactly one URL with a host, or Refused."""
    import apprise

    _split_one(url)
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        raise Unknown("not a notification URL kefal-lite knows")
    if not getattr(plugin, "host", None):
        raise Refused("the URL needs a host")
    return plugin


@dataclass
class UrlGuard:
    """Decides where the server may connect for a tenant. `resolver` and `policy` are
    parameters so tests can stand in for DNS and for "the public internet"."""

    allow_private: bool
    resolver: Resolver = system_resolver
    policy: Policy | None = None

    @property
    def restricted(self) -> bool:
        return not self.allow_private or self.policy is not None

    def permits(self, address: IPAddress, port: int) -> bool:
        if self.policy is not None:
            return self.policy(address, port)
        return self.allow_private or is_public(address)

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address of `host`, each permitted, or Refused. One lookup; the caller
        connects to these and nothing else."""
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in self.resolver(host)]
            if not addresses:
                raise Refused(f"cannot resolve {host}")
        for address in addresses:
            if not self.permits(address, port):
                raise Refused(
                    f"{host} resolves to a non-public address ({address}); this server"
                    " does not send notifications inside its network"
                )
        return addresses

    def check_scheme(self, url: str) -> None:
        if not self.restricted:
            return
        scheme = url.split(":", 1)[0].lower()
        if scheme not in PINNABLE_APPRISE:
            raise Refused(
                f"{scheme}:// cannot be restricted to public addresses, and this server"
                " does not send notifications inside its network"
            )

    def check_apprise(self, url: str, plugin: Any) -> None:
        """At channel creation: the scheme can be pinned, and a host the tenant named
        resolves outside. (Each delivery is checked again, connection by connection.)"""
        self.check_scheme(url)
        if self.restricted and "host" in type(plugin).template_tokens:
            default = 443 if getattr(plugin, "secure", False) else 80
            self.resolve(str(plugin.host), int(getattr(plugin, "port", None) or default))

    @contextlib.contextmanager
    def pinning(self) -> Iterator[None]:
        """While active (in this thread and contexts copied from it), every name lookup goes
        through `resolve` and is pinned, and `requests` follows no redirect."""
        _install()
        token = _ACTIVE.set(_Delivery(self))
        try:
            yield
        finally:
            _ACTIVE.reset(token)


@dataclass
class _Delivery:
    """One guarded delivery: its guard and the answers pinned so far (per delivery, so
    concurrent deliveries never share pins)."""

    guard: UrlGuard
    pins: dict[str, list[IPAddress]] = field(default_factory=dict)

    def lookup(self, host: str, port: int) -> list[IPAddress]:
        key = host.lower()
        if key not in self.pins:
            self.pins[key] = self.guard.resolve(host, port)
        elif not all(self.guard.permits(a, port) for a in self.pins[key]):
            raise Refused(f"{host}: port {port} is not allowed")
        return self.pins[key]


_ACTIVE: contextvars.ContextVar[_Delivery | None] = contextvars.ContextVar(
    "kefal_url_guard", default=None
)
_installed = False
_install_lock = threading.Lock()


def _guarded_getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> Any:
    delivery = _ACTIVE.get()
    if delivery is None or host is None:
        return _system_getaddrinfo(host, port, family, type, proto, flags)
    name = host.decode() if isinstance(host, bytes) else str(host)
    try:
        number = int(port) if port is not None else 0
    except ValueError:
        number = socket.getservbyname(str(port))
    try:
        addresses = delivery.lookup(name, number)
    except Refused as exc:
        raise socket.gaierror(socket.EAI_FAIL, str(exc)) from None
    out: list[Any] = []
    for address in addresses:
        with contextlib.suppress(socket.gaierror):
            out += _system_getaddrinfo(
                str(address), port, family, type, proto, flags | socket.AI_NUMERICHOST
            )
    if not out:
        raise socket.gaierror(socket.EAI_FAMILY, f"no usable address for {name}")
    return out


def _no_redirect_target(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_redirect_target(self: Any, resp: Any) -> Any:
        if _ACTIVE.get() is not None:
            return None
        return original(self, resp)

    return get_redirect_target


def _install() -> None:
    """Once per process. Both patches do nothing unless a guard is active in the caller's
    context, so the rest of the server (and every test) sees the stock behaviour."""
    global _installed
    with _install_lock:
        if _installed:
            return
        import requests.sessions

        socket.getaddrinfo = _guarded_getaddrinfo
        mixin = requests.sessions.SessionRedirectMixin
        mixin.get_redirect_target = _no_redirect_target(mixin.get_redirect_target)  # type: ignore[method-assign]
        _installed = True
