"""psutil -> Snapshot: everything the server's invariants read, from this machine.

Runs unprivileged too: what cannot be read (other users' processes, sockets,
home directories) is left out and said once in the log. Command lines are
scrubbed of password/token-style values before they leave the host.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import platform
import re
import socket
import stat
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timezone

import msgspec
import psutil

from kefal_lite import __version__
from kefal_lite.scrub import scrub
from kefal_lite.snapshot import (
    AuthorizedKey,
    Connection,
    ListeningPort,
    LocalUser,
    McpServer,
    Process,
    Protocol,
    Snapshot,
)

log = logging.getLogger(__name__)

CMDLINE_MAX = 4096
KEYS_MAX_BYTES = 1 << 20  # far above any real authorized_keys; sshd itself has no limit
_KEY_TYPES = re.compile(r"(?:^|\s)((?:ssh|ecdsa|sk)-[\w@.-]+)\s+([A-Za-z0-9+/=]+)(?:\s+(.*))?$")


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

    def __init__(self, agent_id: str, *, euid: int | None = None) -> None:
        self.agent_id = agent_id
        self._warned: set[str] = set()
        self._noted: set[tuple[str, str]] = set()
        geteuid = getattr(os, "geteuid", None)  # absent on Windows
        self._root = (euid if euid is not None else geteuid() if geteuid else -1) == 0

    def _warn_once(self, what: str, detail: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            # As root the rest is out of reach of any user (kernel sockets, other
            # namespaces, a security module): telling root to be root helps nobody.
            hint = (
                "not visible even to root here (kernel, another namespace or a security"
                " module); the snapshot has the rest"
                if self._root
                else "run the agent as root for a complete view"
            )
            log.warning("cannot read %s (%s); %s", what, detail, hint)

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
            mcp_servers=self._mcp_servers(),
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
            proto: Protocol = "tcp" if c.type == socket.SOCK_STREAM else "udp"
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
                    local_port=c.laddr.port, process=owner, state="ESTABLISHED", pid=c.pid,
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

    # --- AI clients' MCP servers (agent/mcp.py) --------------------------------------

    def _mcp_servers(self) -> list[McpServer]:
        from kefal_lite.agent import mcp  # it reuses this module's safe open

        reader = self.__dict__.get("_mcp_reader")
        if reader is None:
            reader = self.__dict__["_mcp_reader"] = mcp.Reader()
        found = reader.collect(mcp.homes())
        for path, why in reader.files.skipped:
            if (path, why) not in self._noted:
                self._noted.add((path, why))
                log.warning("skipped %s: %s", path, why)
        if reader.files.denied:
            self._warn_once("some AI clients' MCP configurations", f"{reader.files.denied}"
                            " unreadable")  # fmt: skip
        return found

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
        denied = 0
        for user in users:
            try:
                pw = pwd.getpwnam(user.name)
            except KeyError:
                continue
            found, refused = self.keys_in_home(user.name, pw.pw_dir, pw.pw_uid)
            keys.extend(found)
            denied += refused
        if denied:
            self._warn_once("some authorized_keys files", f"{denied} unreadable")
        return keys[:10_000]

    def keys_in_home(self, user: str, home: str, uid: int) -> tuple[list[AuthorizedKey], int]:
        """The user's keys, and how many files were refused by permissions (an agent not
        run as root). Anything else skipped is said in the log, once per file and reason."""
        files = read_key_files(home, uid)
        for path, why in files.skipped:
            if (path, why) not in self._noted:
                self._noted.add((path, why))
                log.warning("skipped %s: %s", path, why)
        keys = [k for text in files.texts for k in parse_authorized_keys(text, user)]
        return keys, files.denied


class KeyFiles(msgspec.Struct):
    texts: list[str] = []
    skipped: list[tuple[str, str]] = []  # (path, why)
    denied: int = 0


def read_key_files(home: str, uid: int) -> KeyFiles:
    """Read ~/.ssh/authorized_keys{,2} as root without trusting the user who owns them.

    The user controls everything under their home: a FIFO would block a plain open()
    forever, a symlink to /dev/zero would be read until memory runs out, a symlinked
    .ssh would point anywhere. So: each step opened relative to the previous one's
    descriptor with O_NOFOLLOW, the file opened O_NONBLOCK, fstat() of what was
    opened (not of the path, which could be swapped after) must be a regular file
    owned by the user or root (as sshd's StrictModes asks), and at most
    KEYS_MAX_BYTES are read.
    """
    out = KeyFiles()
    cloexec = getattr(os, "O_CLOEXEC", 0)
    try:
        home_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | cloexec)
    except (FileNotFoundError, NotADirectoryError):
        return out  # system accounts with /nonexistent homes
    except PermissionError:
        out.denied += 1
        return out
    except OSError as exc:
        out.skipped.append((home, exc.strerror or str(exc)))
        return out
    try:
        ssh = os.path.join(home, ".ssh")
        ssh_fd = _open_owned(ssh, home_fd, uid, os.O_DIRECTORY, out)
        if ssh_fd is None:
            return out
        try:
            for name in ("authorized_keys", "authorized_keys2"):
                path = os.path.join(ssh, name)
                fd = _open_owned(path, ssh_fd, uid, os.O_NONBLOCK | os.O_NOCTTY, out)
                if fd is None:
                    continue
                try:
                    out.texts.append(_read_capped(fd, path, out))
                except OSError as exc:
                    out.skipped.append((path, exc.strerror or str(exc)))
                finally:
                    os.close(fd)
        finally:
            os.close(ssh_fd)
    finally:
        os.close(home_fd)
    return out


def _open_owned(path: str, dir_fd: int, uid: int, flags: int, out: KeyFiles) -> int | None:
    """Open the last component of `path` under `dir_fd`, never through a symlink; return
    the descriptor if it is what it should be (a directory for O_DIRECTORY, otherwise a
    regular file) and owned by `uid` or root, else None with the reason noted."""
    want_dir = bool(flags & os.O_DIRECTORY)
    try:
        fd = os.open(os.path.basename(path), os.O_RDONLY | os.O_NOFOLLOW | flags
                     | getattr(os, "O_CLOEXEC", 0), dir_fd=dir_fd)  # fmt: skip
    except FileNotFoundError:
        return None
    except PermissionError:
        out.denied += 1
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            # Linux says ENOTDIR for a symlink opened O_DIRECTORY|O_NOFOLLOW: ask lstat which
            try:
                link = stat.S_ISLNK(os.lstat(os.path.basename(path), dir_fd=dir_fd).st_mode)
            except OSError:
                link = False  # gone meanwhile
            out.skipped.append((path, "a symbolic link; not followed" if link
                                else "not a directory"))  # fmt: skip
        else:
            out.skipped.append((path, exc.strerror or str(exc)))
        return None
    st = os.fstat(fd)
    why = None
    if not want_dir and not stat.S_ISREG(st.st_mode):
        why = "not a regular file"
    elif st.st_uid not in (uid, 0):
        why = f"owned by uid {st.st_uid}, not by the user ({uid}) or root"
    if why is not None:
        os.close(fd)
        out.skipped.append((path, why))
        return None
    return fd


def _read_capped(fd: int, path: str, out: KeyFiles) -> str:
    chunks: list[bytes] = []
    left = KEYS_MAX_BYTES
    while left > 0:
        chunk = os.read(fd, min(left, 65_536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    data = b"".join(chunks)
    if left == 0 and os.read(fd, 1):
        # sshd would still read the rest, so the head is reported rather than nothing
        out.skipped.append((path, f"larger than {KEYS_MAX_BYTES} bytes; only the first"
                                  f" {KEYS_MAX_BYTES} read"))  # fmt: skip
        data = data[: data.rfind(b"\n") + 1]  # no half line at the cut
    return data.decode(errors="replace")


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
