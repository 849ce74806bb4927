"""The wire snapshot, shared by the server and the agent.

A versioned contract: the seed fields are always accepted, every later field
has a default, types never change, unknown fields are ignored. One Decoder is
built at import; ingest decodes straight from the request bytes.

Every string here can end up inside a remediation command someone pastes into a
root shell, so none carries a control character (C0, DEL, C1) past decode(): a
pasted ^U or CR is an editing key to the terminal, not text. Fields only root on
the host controls (names from passwd, hostname, kernel, addresses, fingerprints)
reject the snapshot, since a root that sends them is hostile. Fields any local
user controls (process names, binary paths, command lines, key comments) are
sanitised instead: rejecting them would let an unprivileged process named "a\nb"
blind the monitoring of its whole host. The check is a pass after decoding, not
a msgspec `pattern` per field: patterns tripled decode time (20 -> 61 us on the
benchmark host), the pass costs 0.2-4 us on a body without controls.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone  # no datetime.UTC: 3.10 runs the agent
from typing import Annotated, Any, Literal

import msgspec

Str64 = Annotated[str, msgspec.Meta(max_length=64)]
Str256 = Annotated[str, msgspec.Meta(max_length=256)]
Path = Annotated[str, msgspec.Meta(max_length=4096)]
Protocol = Literal["tcp", "udp", "tcp6", "udp6"]
PortNumber = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Pid = Annotated[int, msgspec.Meta(ge=0, le=2**31)]
Cpu = Annotated[float, msgspec.Meta(ge=0)]
MAX_UPTIME = 100 * 366 * 86_400  # a century: 10**30 overflowed datetime arithmetic


class Process(msgspec.Struct, frozen=True, gc=False):
    pid: Pid
    name: Str256
    # Some platforms hide the owner of other users' processes from an unprivileged agent.
    user: Str256 | None = None
    cpu_percent: Cpu = 0.0
    # Linux appends " (deleted)" when the binary was removed after start.
    exe: Path | None = None
    cmdline: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    ppid: Pid | None = None


class ListeningPort(msgspec.Struct, frozen=True, gc=False):
    port: PortNumber
    protocol: Protocol = "tcp"
    process: Str256 | None = None
    # Bind address; None from an agent that predates the field (treated as unknown).
    address: Str64 | None = None
    pid: Pid | None = None


class Connection(msgspec.Struct, frozen=True, gc=False):
    remote_address: Str64
    remote_port: PortNumber
    protocol: Protocol = "tcp"
    local_port: PortNumber | None = None
    process: Str256 | None = None
    state: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    # The owning process, so evidence names the very process (two `python3` differ).
    pid: Pid | None = None


class LocalUser(msgspec.Struct, frozen=True, gc=False):
    name: Str256
    uid: int | None = None
    groups: Annotated[list[Str256], msgspec.Meta(max_length=256)] = []
    shell: Str256 | None = None


class AuthorizedKey(msgspec.Struct, frozen=True, gc=False):
    user: Str256
    fingerprint: Str256
    comment: Annotated[str, msgspec.Meta(max_length=1024)] | None = None


Arg = Annotated[str, msgspec.Meta(max_length=4096)]
McpTransport = Literal["stdio", "http", "sse"]


class McpServer(msgspec.Struct, frozen=True, gc=False):
    """An MCP server an AI client on the host is configured to start or reach. The agent
    sends names, never values: `env_names` not the environment, `secrets_inline` (and
    where, in `secret_in`) not the secret; args and url come with secret-shaped text
    masked."""

    client: Str64  # claude-desktop, claude-code, cursor, vscode, codex, ...
    name: Str256
    config_path: Path
    transport: McpTransport = "stdio"
    command: Path | None = None
    args: Annotated[list[Arg], msgspec.Meta(max_length=256)] = []
    url: Arg | None = None
    paths: Annotated[list[Path], msgspec.Meta(max_length=256)] = []  # filesystem scopes
    env_names: Annotated[list[Str256], msgspec.Meta(max_length=256)] = []
    secrets_inline: bool = False
    # The account whose configuration holds it (None: a machine-wide file).
    user: Str256 | None = None
    # Where an inline secret sits ("env:NAME", "args", "url", "headers:NAME"): names only.
    secret_in: Annotated[list[Str256], msgspec.Meta(max_length=64)] = []


class Snapshot(msgspec.Struct, frozen=True):
    agent_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    timestamp: datetime
    hostname: Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
    os: Str64
    kernel: Str256
    uptime_seconds: Annotated[int, msgspec.Meta(ge=0, le=MAX_UPTIME)]
    ip_addresses: Annotated[list[Str64], msgspec.Meta(max_length=1024)] = []
    processes: Annotated[list[Process], msgspec.Meta(max_length=20_000)] = []
    listening_ports: Annotated[list[ListeningPort], msgspec.Meta(max_length=10_000)] = []
    logged_in_users: Annotated[list[Str256], msgspec.Meta(max_length=1024)] = []
    connections: Annotated[list[Connection], msgspec.Meta(max_length=20_000)] = []
    users: Annotated[list[LocalUser], msgspec.Meta(max_length=20_000)] = []
    ssh_authorized_keys: Annotated[list[AuthorizedKey], msgspec.Meta(max_length=10_000)] = []
    agent_version: Str64 | None = None
    # When the agent sent it; differs from `timestamp` for a snapshot replayed from the
    # agent's spool after an outage, so clock skew is judged on this when present.
    sent_at: datetime | None = None
    mcp_servers: Annotated[list[McpServer], msgspec.Meta(max_length=1024)] = []


DECODER = msgspec.json.Decoder(Snapshot)
ENCODER = msgspec.json.Encoder()


def decode(raw: bytes) -> Snapshot:
    """The one way in for untrusted bytes: decode, then no control characters (see above).
    Raises msgspec.ValidationError (with the `$.path`) for a control in a root-owned field."""
    return clean(DECODER.decode(raw), raw)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
REPLACEMENT = "\ufffd"  # visible in the dashboard, and a pasted command cannot act on it


def scrub_controls(text: str) -> str:
    return _CONTROL.sub(REPLACEMENT, text)


# An escape that may stand for a control: \b \f \n \r \t, \u0000-\u001f, \u007X, \u008X, \u009X.
_ESCAPE = re.compile(rb"\\(?:[bfnrt]|u00[01789])")


def _may_have_controls(raw: bytes) -> bool:
    # JSON carries C0 controls only as escapes; DEL and C1 may also come raw (C1 as UTF-8
    # \xc2\x80-\x9f). Byte tests run at memchr speed and the escape regex has a literal
    # prefix; false positives (an escaped "p", "C:\\temp") only cost the slow pass.
    if b"\x7f" in raw or b"\xc2" in raw:
        return True
    if b"\\" not in raw:
        return False
    for match in _ESCAPE.finditer(raw):
        start = end = match.start()
        while start and raw[start - 1] == 0x5C:  # "\\n" is an escaped backslash, then n
            start -= 1
        if (end - start) % 2 == 0:
            return True
    return False


def _reject(path: str, value: str | None) -> None:
    if value is not None and _CONTROL.search(value):
        raise msgspec.ValidationError(
            f"Expected `str` without control characters (CR, LF, C0, DEL, C1) - at `$.{path}`"
        )


def _scrub(value: str | None) -> str | None:
    return value if value is None or not _CONTROL.search(value) else scrub_controls(value)


def clean(snap: Snapshot, raw: bytes) -> Snapshot:
    """Raise on a control character in a root-owned field; replace those in free text."""
    if not _may_have_controls(raw):
        return snap
    for name in ("agent_id", "hostname", "os", "kernel", "agent_version"):
        _reject(name, getattr(snap, name))
    for name in ("ip_addresses", "logged_in_users"):
        for i, text in enumerate(getattr(snap, name)):
            _reject(f"{name}[{i}]", text)
    for i, p in enumerate(snap.processes):
        _reject(f"processes[{i}].user", p.user)
    for i, lp in enumerate(snap.listening_ports):
        _reject(f"listening_ports[{i}].address", lp.address)
    for i, c in enumerate(snap.connections):
        _reject(f"connections[{i}].remote_address", c.remote_address)
        _reject(f"connections[{i}].state", c.state)
    for i, u in enumerate(snap.users):
        _reject(f"users[{i}].name", u.name)
        _reject(f"users[{i}].shell", u.shell)
        for j, g in enumerate(u.groups):
            _reject(f"users[{i}].groups[{j}]", g)
    for i, k in enumerate(snap.ssh_authorized_keys):
        _reject(f"ssh_authorized_keys[{i}].user", k.user)
        _reject(f"ssh_authorized_keys[{i}].fingerprint", k.fingerprint)
    for i, m in enumerate(snap.mcp_servers):
        # the client is the agent's own word and the user comes from passwd; the rest is
        # what a user wrote in a config file, so it is sanitised
        _reject(f"mcp_servers[{i}].client", m.client)
        _reject(f"mcp_servers[{i}].user", m.user)

    replace = msgspec.structs.replace
    changes: dict[str, Any] = {}
    procs = [
        replace(x, name=scrub_controls(x.name), exe=_scrub(x.exe), cmdline=_scrub(x.cmdline))
        if _CONTROL.search(f"{x.name}\x20{x.exe}\x20{x.cmdline}")
        else x
        for x in snap.processes
    ]
    if any(a is not b for a, b in zip(procs, snap.processes, strict=True)):
        changes["processes"] = procs
    for name in ("listening_ports", "connections"):
        items = getattr(snap, name)
        fixed = [
            replace(x, process=_scrub(x.process)) if x.process and _CONTROL.search(x.process) else x
            for x in items
        ]
        if any(a is not b for a, b in zip(fixed, items, strict=True)):
            changes[name] = fixed
    keys = [
        replace(k, comment=_scrub(k.comment)) if k.comment and _CONTROL.search(k.comment) else k
        for k in snap.ssh_authorized_keys
    ]
    if any(a is not b for a, b in zip(keys, snap.ssh_authorized_keys, strict=True)):
        changes["ssh_authorized_keys"] = keys
    servers = [_clean_mcp(m) for m in snap.mcp_servers]
    if any(a is not b for a, b in zip(servers, snap.mcp_servers, strict=True)):
        changes["mcp_servers"] = servers
    return replace(snap, **changes) if changes else snap


def _clean_mcp(m: McpServer) -> McpServer:
    lists = (m.args, m.paths, m.env_names, m.secret_in)
    texts = (m.name, m.config_path, m.command, m.url)
    if not any(t and _CONTROL.search(t) for t in texts) and not any(
        _CONTROL.search(t) for items in lists for t in items
    ):
        return m
    return msgspec.structs.replace(
        m, name=scrub_controls(m.name), config_path=scrub_controls(m.config_path),
        command=_scrub(m.command), url=_scrub(m.url), args=[scrub_controls(a) for a in m.args],
        paths=[scrub_controls(a) for a in m.paths],
        env_names=[scrub_controls(a) for a in m.env_names],
        secret_in=[scrub_controls(a) for a in m.secret_in],
    )  # fmt: skip


# The earliest time a snapshot may carry: older times underflow the date arithmetic of
# the engine (boot time = timestamp - uptime), and no agent has a reason to send them.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
# How far ahead of the server a host clock may run: a year-9999 timestamp accepted once
# made every later (true) snapshot look replayed.
MAX_AHEAD = timedelta(days=1)


def time_errors(snap: Snapshot, now: datetime) -> list[tuple[str, str]]:
    """(field, message) for each of the snapshot's times outside [EARLIEST, now + a day]."""
    out = []
    for name in ("timestamp", "sent_at"):
        value: datetime | None = getattr(snap, name)
        if value is None:
            continue
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if aware > now + MAX_AHEAD:
            out.append((name, "is more than a day ahead of the server's clock"))
        elif aware < EARLIEST:
            out.append((name, "is before 1970"))
    return out


def encode(snapshot: Snapshot) -> bytes:
    return ENCODER.encode(snapshot)
