"""psutil -> Snapshot: everything the server's invariants read, from this machine.

Runs unprivileged too: what cannot be read (other users' processes, sockets,
home directories) is left out and said once in the log. Command lines are
scrubbed of password/token-style values before they leave the host.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import platform
import re
import socket
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import psutil

from kefal_lite import __version__
from kefal_lite.snapshot import (
    AuthorizedKey,
    Connection,
    ListeningPort,
    LocalUser,
    Process,
    Snapshot,
)

log = logging.getLogger(__name__)

CMDLINE_MAX = 4096
_SECRET_WORDS = (
    r"(?:password|passwd|pwd|pass|token|secret|api[_-]?key|access[_-]?key|auth|credentials?)"
)
# key=value / key:value, e.g. --db-password=hunter2, PGPASSWORD=x, token:abc
_ASSIGNED = re.compile(rf"(?i)([\w.-]*{_SECRET_WORDS}[\w.-]*\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)")
# flag value, e.g. --password hunter2, -p hunter2 is too ambiguous to touch
_FLAG = re.compile(rf"(?i)((?:^|\s)--?[\w-]*{_SECRET_WORDS}[\w-]*\s+)(?!-)(\S+)")
# credentials in URLs: scheme://user:secret@host
_URL = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)")
_KEY_TYPES = re.compile(r"(?:^|\s)((?:ssh|ecdsa|sk)-[\w@.-]+)\s+([A-Za-z0-9+/=]+)(?:\s+(.*))?$")


def scrub(cmdline: str) -> str:
    """Mask values that look like secrets; keep the shape so a person can still read it."""
    out = _URL.sub(r"\1***\3", cmdline)
    out = _ASSIGNED.sub(r"\1***", out)
    out = _FLAG.sub(r"\1***", out)
    return out


def fingerprint(key_blob_b64: str) -> str:
    """OpenSSH's `SHA256:` fingerprint of a base64 public key blob (as `ssh-keygen -l`)."""
    digest = hashlib.sha256(base64.b64decode(key_blob_b64, validate=True)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_authorized_keys(text: str, user: str) -> list[AuthorizedKey]:
    keys = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # options (from="...",command="...") may precede the key type
        match = _KEY_TYPES.search(line)
        if not match:
            continue
        try:
            fp = fingerprint(match.group(2))
        except ValueError:
            continue
        comment = (match.group(3) or "").strip() or None
        keys.append(
            AuthorizedKey(user=user, fingerprint=fp, comment=comment[:1024] if comment else None)
        )
    return keys


_OS_NAMES = {"linux": "linux", "darwin": "darwin", "win32": "windows"}


class Collector:
    """One per agent run. psutil.process_iter() hands back the same Process objects
    between calls, so each process's CPU percent covers the time since the last collection."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self._warned: set[str] = set()

    def _warn_once(self, what: str, detail: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning(
                "cannot read %s (%s); run the agent as root for a complete view", what, detail
            )

    def prime(self) -> None:
        """Start CPU measurement now, so the next collect() reports usage since this call."""
        self._processes()

    def collect(self) -> Snapshot:
        processes = self._processes()
        names = {p.pid: p.name for p in processes}
        listening, connections = self._sockets(names)
        users = self._accounts()
        return Snapshot(
            agent_id=self.agent_id,
            timestamp=datetime.now(timezone.utc),
            hostname=socket.gethostname()[:253] or "unknown",
            os=_OS_NAMES.get(sys.platform, sys.platform)[:64],
            kernel=platform.release()[:256],
            uptime_seconds=max(0, int(time.time() - psutil.boot_time())),
            ip_addresses=self._addresses(),
            processes=processes,
            listening_ports=listening,
            logged_in_users=sorted({u.name for u in psutil.users() if u.name})[:1024],
            connections=connections,
            users=users,
            ssh_authorized_keys=self._authorized_keys(users),
            agent_version=__version__,
        )  # fmt: skip

    # --- processes ---------------------------------------------------------------

    def _processes(self) -> list[Process]:
        out: list[Process] = []
        denied = 0
        for proc in psutil.process_iter():
            pid = proc.pid
            try:
                with proc.oneshot():
                    name = proc.name()
                    ppid = proc.ppid()
                    cpu = proc.cpu_percent(None)
                    try:
                        user: str | None = proc.username()
                    except (psutil.AccessDenied, KeyError):
                        user = None
                    try:
                        cmd = " ".join(proc.cmdline())
                    except psutil.AccessDenied:
                        cmd, denied = None, denied + 1
                    exe = _exe(proc)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            except psutil.AccessDenied:
                denied += 1
                continue
            out.append(Process(
                pid=pid, name=name[:256], user=user[:256] if user else user,
                cpu_percent=round(max(cpu, 0.0), 1), exe=exe[:4096] if exe else None,
                cmdline=scrub(cmd)[:CMDLINE_MAX] if cmd is not None else None, ppid=ppid,
            ))  # fmt: skip
        if denied:
            self._warn_once("some processes' details", f"{denied} refused")
        return out

    # --- sockets -----------------------------------------------------------------

    def _sockets(self, names: dict[int, str]) -> tuple[list[ListeningPort], list[Connection]]:
        try:
            conns = psutil.net_connections(kind="inet")
        except psutil.AccessDenied as exc:
            self._warn_once("sockets", str(exc) or "access denied")
            return [], []
        listening: dict[tuple[int, str, str], ListeningPort] = {}
        established: list[Connection] = []
        for c in conns:
            proto = "tcp" if c.type == socket.SOCK_STREAM else "udp"
            if not c.laddr:
                continue
            owner = names.get(c.pid) if c.pid else None
            if (proto == "tcp" and c.status == psutil.CONN_LISTEN) or (
                proto == "udp" and not c.raddr
            ):
                key = (c.laddr.port, proto, c.laddr.ip)
                listening.setdefault(key, ListeningPort(
                    port=c.laddr.port, protocol=proto, process=owner, address=c.laddr.ip[:64],
                    pid=c.pid,
                ))  # fmt: skip
            elif proto == "tcp" and c.status == psutil.CONN_ESTABLISHED and c.raddr:
                established.append(Connection(
                    remote_address=c.raddr.ip[:64], remote_port=c.raddr.port, protocol=proto,
                    local_port=c.laddr.port, process=owner, state="ESTABLISHED",
                ))  # fmt: skip
        if any(lp.process is None for lp in listening.values()):
            self._warn_once("the owners of some listening sockets", "other users' processes")
        return sorted(
            listening.values(), key=lambda lp: (lp.port, lp.protocol, lp.address or "")
        ), established[:20_000]

    def _addresses(self) -> list[str]:
        out = []
        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.family in (socket.AF_INET, socket.AF_INET6):
                    ip = a.address.split("%", 1)[0]
                    if ip not in ("127.0.0.1", "::1"):
                        out.append(ip[:64])
        return sorted(set(out))[:1024]

    # --- accounts and keys -------------------------------------------------------

    def _accounts(self) -> list[LocalUser]:
        try:
            import grp
            import pwd
        except ImportError:  # Windows: no passwd database to read
            self._warn_once("local accounts", "not supported on this platform")
            return []
        groups: dict[str, list[str]] = {}
        gid_names: dict[int, str] = {}
        for g in grp.getgrall():
            gid_names[g.gr_gid] = g.gr_name
            for member in g.gr_mem:
                groups.setdefault(member, []).append(g.gr_name)
        out = []
        for pw in pwd.getpwall():
            primary = gid_names.get(pw.pw_gid)
            member_of = ([primary] if primary else []) + [
                g for g in groups.get(pw.pw_name, []) if g != primary
            ]
            out.append(
                LocalUser(
                    name=pw.pw_name[:256],
                    uid=pw.pw_uid,
                    groups=member_of[:256],
                    shell=pw.pw_shell[:256],
                )
            )
        return out

    def _authorized_keys(self, users: Iterable[LocalUser]) -> list[AuthorizedKey]:
        try:
            import pwd
        except ImportError:
            return []
        keys: list[AuthorizedKey] = []
        unreadable = 0
        for user in users:
            try:
                home = Path(pwd.getpwnam(user.name).pw_dir)
            except KeyError:
                continue
            for name in ("authorized_keys", "authorized_keys2"):
                path = home / ".ssh" / name
                try:
                    text = path.read_text(errors="replace")
                except FileNotFoundError:
                    continue
                except (PermissionError, NotADirectoryError, OSError):
                    unreadable += 1
                    continue
                keys.extend(parse_authorized_keys(text, user.name))
        if unreadable:
            self._warn_once("some authorized_keys files", f"{unreadable} unreadable")
        return keys[:10_000]


def _exe(proc: psutil.Process) -> str | None:
    if sys.platform == "linux":
        # Read the link ourselves: psutil drops the " (deleted)" marker. Keep it only when
        # the binary is really gone, not when a package upgrade replaced it in place.
        try:
            raw = os.readlink(f"/proc/{proc.pid}/exe").split("\x00")[0]
        except (FileNotFoundError, ProcessLookupError):
            return None  # kernel threads have no binary
        except PermissionError:
            return None  # another user's process, agent not root
        if raw.endswith(" (deleted)") and os.path.exists(raw[:-10]):
            return raw[:-10]
        return raw or None
    try:
        return proc.exe() or None
    except psutil.AccessDenied:
        return None
