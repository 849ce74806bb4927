"""Enroll, send, and never lose a snapshot: a bounded on-disk spool replayed in order.

Plain urllib (no extra dependency on every monitored host). Every collected
snapshot is written to the spool first and deleted only after the server
answered 200, so an outage, a server restart or an agent crash loses nothing.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from kefal_lite import snapshot as wire
from kefal_lite.agent import transport
from kefal_lite.agent.collect import Collector

log = logging.getLogger(__name__)

SPOOL_MAX = 1440  # a day of snapshots at one a minute
TIMEOUT = 20.0
BACKOFF_MAX = 300.0


class AgentConfig(msgspec.Struct, frozen=True):
    server: str
    agent_id: str
    token: str
    # sha256:<hex> of the server's certificate when it is self-signed (see transport.py)
    pin: str | None = None


class AgentError(Exception):
    """Something the operator must fix (re-enroll, wrong URL): the message says what."""


def _user_dir(kind: str) -> Path:
    # platformdirs' user_config_dir / user_data_dir (appauthor=False), without the
    # dependency: the agent the server ships brings only psutil and msgspec.
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "kefal-lite"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "kefal-lite"
    var, fallback = {"config": ("XDG_CONFIG_HOME", ".config"),
                     "data": ("XDG_DATA_HOME", ".local/share")}[kind]  # fmt: skip
    base = os.environ.get(var, "").strip()
    return Path(base if base else home / fallback) / "kefal-lite"


def default_config_path() -> Path:
    return _user_dir("config") / "agent.json"


def default_spool_dir() -> Path:
    return _user_dir("data") / "spool"


def save_config(path: Path, config: AgentConfig) -> None:
    """Written 0600 from the start (the token is a credential), atomically replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(msgspec.json.encode(config))
    os.replace(tmp, path)


def load_config(path: Path) -> AgentConfig:
    try:
        return msgspec.json.decode(path.read_bytes(), type=AgentConfig)
    except FileNotFoundError:
        raise AgentError(
            f"no agent config at {path}; run `kefal-lite agent enroll` first"
        ) from None
    except msgspec.DecodeError as exc:
        raise AgentError(f"agent config {path} is unreadable: {exc}") from None


def _post(
    url: str, body: bytes, token: str | None = None, pin: str | None = None
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json", "User-Agent": "kefal-lite-agent"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with transport.opener(pin).open(request, timeout=TIMEOUT) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            where = exc.headers.get("Location", "elsewhere")
            raise AgentError(
                f"{url} answered HTTP {exc.code}, a redirect to {where[:200]!r}; the agent does not"
                " follow redirects (its token would go along): use the final server URL"
            ) from None
        return int(exc.code), exc.read()


def _detail(body: bytes) -> str:
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")
    return detail if isinstance(detail, str) else json.dumps(detail)[:300]


def normalise_server(server: str) -> tuple[str, str | None]:
    """The server's base URL from what an operator types, and a note when it was changed.
    `192.168.1.10:8470` gets http:// (what `kefal-lite serve` speaks); a URL copied from
    the browser's address bar loses the dashboard path. Anything else is refused with
    the form that works."""
    text = server.strip()
    note = None
    if "://" not in text:
        text = "http://" + text
        note = f"no scheme in {server!r}: using {text.rstrip('/')}"
    parts = urllib.parse.urlsplit(text)
    example = "--server http://192.168.1.10:8470"
    if parts.scheme not in ("http", "https"):
        raise AgentError(f"--server {server}: use an http:// or https:// URL, e.g. {example}")
    if not parts.hostname:
        raise AgentError(f"--server {server}: no host name in it, e.g. {example}")
    if parts.query:
        raise AgentError(f"--server {server}: give the server's address without ?...")
    base = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    # API paths and the dashboard's #routes are never part of the base URL; another path
    # is kept (a server behind a reverse proxy under a prefix).
    index = min((i for m in ("/api/", "/auth/", "/schema") if (i := (path + "/").find(m)) >= 0),
                default=-1)  # fmt: skip
    if index >= 0 or parts.fragment:
        path = path[:index] if index >= 0 else path
        note = f"{server!r} is a page of the server, not its address: using {base}{path}"
    return base + path, note


def enroll(
    server: str, username: str, password: str, name: str | None, otp: str | None = None
) -> AgentConfig:
    server, _ = normalise_server(server)
    payload: dict[str, str] = {"username": username, "password": password}
    if name:
        payload["name"] = name
    if otp:
        payload["otp"] = otp
    try:
        status, body = _post(f"{server}/api/v1/enroll", json.dumps(payload).encode())
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise AgentError(
            f"cannot reach {server}: {reason}; is `kefal-lite serve` running there, and"
            " listening on the LAN (--host 0.0.0.0)?"
        ) from None
    if status in (404, 405):
        raise AgentError(
            f"{server} answered {status}: no kefal-lite server there; --server takes the"
            " address `kefal-lite serve` prints (e.g. http://192.168.1.10:8470), with no path"
        )
    if status != 200:
        raise AgentError(f"enrollment refused ({status}): {_detail(body)}")
    data = json.loads(body)
    return AgentConfig(server=server, agent_id=data["agent_id"], token=data["token"])


def enroll_with_token(
    server: str, token: str, name: str | None, hostname: str | None, pin: str | None = None
) -> AgentConfig:
    """Enroll with a `kfe_` enrollment token (no password), over a pinned certificate
    when `pin` is given; the pin is kept for every later request."""
    server = server.strip().rstrip("/")
    try:
        transport.check_url(server, pin)
        pin = transport.normalise_pin(pin) if pin is not None else None
    except ValueError as exc:
        raise AgentError(str(exc)) from None
    payload = {"enrollment_token": token.strip()}
    if name:
        payload["name"] = name
    if hostname:
        payload["hostname"] = hostname
    try:
        status, body = _post(f"{server}/api/v1/enroll", json.dumps(payload).encode(), pin=pin)
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, transport.PinMismatch):
            raise AgentError(str(reason)) from None
        raise AgentError(f"cannot reach {server}: {reason}") from None
    if status != 200:
        raise AgentError(f"enrollment refused ({status}): {_detail(body)}")
    data = json.loads(body)
    return AgentConfig(server=server, agent_id=data["agent_id"], token=data["token"], pin=pin)


class Spool:
    """Snapshots waiting to be sent, one file each, named so that sorting is sending order."""

    def __init__(self, directory: Path, max_items: int = SPOOL_MAX) -> None:
        self.dir = directory
        self.max_items = max_items

    def put(self, body: bytes) -> Path:
        # Made on the first put, not before: a command that never has to wait (agent once)
        # leaves nothing behind.
        if not self.dir.is_dir():
            self.dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir, 0o700)
        path = self.dir / f"{time.time_ns():020d}.json"
        tmp = path.with_suffix(".tmp")
        # 0600: a snapshot lists every process, user and key of the host
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)  # a crash never leaves half a snapshot to send
        items = self.items()
        for old in items[: max(0, len(items) - self.max_items)]:
            log.warning(
                "spool full (%d): dropping the oldest snapshot %s", self.max_items, old.name
            )
            old.unlink(missing_ok=True)
        return path

    def items(self) -> list[Path]:
        return sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []


class Agent:
    def __init__(self, config: AgentConfig, spool: Spool, collector: Collector | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        self.config = config
        self.spool = spool
        self.collector = collector or Collector(config.agent_id)
        self._sleep = sleep
        self._failures = 0
        self._payment_warned = False

    def collect_to_spool(self) -> Path:
        return self.spool.put(wire.encode(self.collector.collect()))

    def drain(self) -> int:
        """Send spooled snapshots oldest first; stop at the first one the server cannot take
        now. Returns how many were accepted. Raises AgentError when the token is refused."""
        was_failing = self._failures > 0
        sent = self._drain()
        if sent and was_failing and self._failures == 0:
            log.info("back online: replayed %d spooled snapshot(s) to %s", sent,
                     self.config.server)  # fmt: skip
        elif sent:
            log.info("sent %d snapshot(s) to %s", sent, self.config.server)
        return sent

    def _drain(self) -> int:
        sent = 0
        url = f"{self.config.server}/api/v1/ingest"
        for path in self.spool.items():
            try:
                body = _with_sent_at(path.read_bytes())
            except FileNotFoundError:
                continue
            except msgspec.DecodeError:
                log.error("dropping unreadable spooled snapshot %s", path.name)
                path.unlink(missing_ok=True)
                continue
            try:
                status, answer = _post(url, body, self.config.token, self.config.pin)
            except OSError as exc:
                self._failed(f"cannot reach {self.config.server}: {exc}")
                return sent
            if status == 200:
                path.unlink(missing_ok=True)
                sent += 1
                self._failures = 0
                self._payment_warned = False
            elif status == 401:
                raise AgentError(
                    "the server refused this agent's token (revoked or rotated); enroll again with"
                    " `kefal-lite agent enroll`"
                )
            elif status == 402:
                if not self._payment_warned:
                    log.error(
                        "the server refuses snapshots: %s; they stay spooled", _detail(answer)
                    )
                    self._payment_warned = True
                return sent
            elif status in (400, 403, 413):
                # It will never be accepted: keep the rest of the queue moving.
                log.error(
                    "server rejected %s (%d): %s; dropped", path.name, status, _detail(answer)
                )
                path.unlink(missing_ok=True)
            else:
                self._failed(f"server answered {status}: {_detail(answer)}")
                return sent
        return sent

    def _failed(self, why: str) -> None:
        self._failures += 1
        log.warning("%s; %d snapshot(s) spooled, retrying", why, len(self.spool.items()))

    def backoff(self, interval: float) -> float:
        """Seconds to wait before the next attempt: the interval when healthy, growing with
        jitter while the server is away (so a fleet does not return in lockstep)."""
        if self._failures == 0:
            return interval
        base = min(BACKOFF_MAX, 5.0 * 2 ** min(self._failures - 1, 10))
        return float(min(interval, base * random.uniform(0.5, 1.0)))

    def run(self, interval: float, iterations: int | None = None) -> None:
        self.collector.prime()
        next_collect = time.monotonic() + min(interval, 1.0)  # CPU measured over >= 1 s
        done = 0
        while iterations is None or done < iterations:
            now = time.monotonic()
            if now >= next_collect:
                self.collect_to_spool()
                next_collect = now + interval
                done += 1
            self.drain()
            wait = min(self.backoff(interval), max(0.0, next_collect - time.monotonic()))
            if iterations is not None and done >= iterations and not self.spool.items():
                break
            self._sleep(max(wait, 0.05))


def _with_sent_at(body: bytes) -> bytes:
    snap = wire.decode(body)
    return wire.encode(msgspec.structs.replace(snap, sent_at=datetime.now(timezone.utc)))


SYSTEMD_UNIT = """[Unit]
Description=kefal-lite agent: host snapshots for {server}
Documentation=https://github.com/kefal-lite/kefal-lite
After=network-online.target
Wants=network-online.target

[Service]
ExecStart={exe} -m kefal_lite agent run --config {config} --interval {interval}
Restart=always
RestartSec=10
# Root sees every process, socket and authorized_keys file; the agent only reads.
User=root
Nice=10

[Install]
WantedBy=multi-user.target
"""


def systemd_unit(executable: str, config: Path, server: str, interval: int) -> str:
    return SYSTEMD_UNIT.format(exe=executable, config=config, server=server, interval=interval)
