"""The wire snapshot, shared by the server and the agent.

A versioned contract: the seed fields are always accepted, every later field
has a default, types never change, unknown fields are ignored. One Decoder is
built at import; ingest decodes straight from the request bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

Str64 = Annotated[str, msgspec.Meta(max_length=64)]
Str256 = Annotated[str, msgspec.Meta(max_length=256)]
Path = Annotated[str, msgspec.Meta(max_length=4096)]
PortNumber = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Pid = Annotated[int, msgspec.Meta(ge=0, le=2**31)]
Cpu = Annotated[float, msgspec.Meta(ge=0)]


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
    protocol: Annotated[str, msgspec.Meta(max_length=8)] = "tcp"
    process: Str256 | None = None
    # Bind address; None from an agent that predates the field (treated as unknown).
    address: Str64 | None = None
    pid: Pid | None = None


class Connection(msgspec.Struct, frozen=True, gc=False):
    remote_address: Str64
    remote_port: PortNumber
    protocol: Annotated[str, msgspec.Meta(max_length=8)] = "tcp"
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


class Snapshot(msgspec.Struct, frozen=True):
    agent_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    timestamp: datetime
    hostname: Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
    os: Str64
    kernel: Str256
    uptime_seconds: Annotated[int, msgspec.Meta(ge=0)]
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


DECODER = msgspec.json.Decoder(Snapshot)
ENCODER = msgspec.json.Encoder()


def decode(raw: bytes) -> Snapshot:
    return DECODER.decode(raw)


def encode(snapshot: Snapshot) -> bytes:
    return ENCODER.encode(snapshot)
