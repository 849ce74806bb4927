"""What changed between two snapshots of one host (pure: no I/O, no clock).

A snapshot is reduced to items: (kind, subject) -> value. Two snapshots differ by
the items added, removed, or kept with another value. What churns without meaning
stays out of the items: CPU percentages, pids, ephemeral local ports, kernel
threads (no binary, no command line: their names change every minute, kworker/0:1
becomes kworker/0:2), and clients connected to a listening port (a web server's
visitors are traffic; the listening socket is the change, and outbound connections,
a reverse shell's included, are recorded by peer). A process is identified by
binary, command line and user, so an nginx worker replaced by another is no change;
the first instance of an identity to start, and the last to end, are.

Ingest compares a cheap fingerprint (a hash per item, values included) first: most
snapshots only differ in CPU, and for them the items are never built. Equal fingerprints
mean equal items, so a host keeps the items of its last changed snapshot as those of its
previous one (Resident) and a change costs building the new snapshot's items only, not
reading, decompressing and decoding the previous snapshot.
"""

from __future__ import annotations

from array import array
from typing import Literal

import msgspec

from kefal_lite.snapshot import Snapshot

Kind = Literal["process", "listening", "connection", "login", "account", "key", "address", "host"]
KINDS: tuple[str, ...] = Kind.__args__  # type: ignore[attr-defined]
ChangeType = Literal["added", "removed", "modified"]


class Change(msgspec.Struct, frozen=True, gc=False):
    kind: str
    change: str
    subject: str
    before: str | None
    after: str | None


class Fingerprint(msgspec.Struct, frozen=True, gc=False):
    """What a host keeps of its previous snapshot between ingests: a sorted array of item
    hashes (8 bytes an item, against ~200 for the strings) and the uptime, for reboots."""

    hashes: array  # type: ignore[type-arg]
    uptime: int


def _kernel_thread(exe: str | None, cmdline: str | None) -> bool:
    return exe is None and not cmdline


def _served(snap: Snapshot) -> set[int]:
    return {x.port for x in snap.listening_ports}


def fingerprint(snap: Snapshot) -> Fingerprint:
    # Tuples of the fields items() reads, hashed without formatting a string: this runs
    # on every ingest. Equal items give equal hashes; the reverse only costs a slow path.
    h: set[int] = {
        hash((p.exe, p.cmdline, p.user, p.name))  # the name is the item's value
        for p in snap.processes
        if not _kernel_thread(p.exe, p.cmdline)
    }
    h.update(hash((1, x.protocol, x.address, x.port, x.process)) for x in snap.listening_ports)
    served = _served(snap)
    h.update(hash((2, c.protocol, c.remote_address, c.remote_port, c.process))
             for c in snap.connections if c.local_port not in served)  # fmt: skip
    h.update(hash((3, u)) for u in snap.logged_in_users)
    h.update(hash((4, u.name, u.uid, tuple(u.groups), u.shell)) for u in snap.users)
    h.update(hash((5, k.user, k.fingerprint, k.comment)) for k in snap.ssh_authorized_keys)
    h.update(hash((6, a)) for a in snap.ip_addresses)
    h.add(hash((7, snap.hostname, snap.os, snap.kernel)))
    return Fingerprint(array("q", sorted(h)), snap.uptime_seconds)


class Resident(msgspec.Struct, frozen=True):
    """What a host keeps of its previous snapshot between ingests: its fingerprint, and its
    items once a change built them (~10 KB a host for a 70-process snapshot)."""

    fingerprint: Fingerprint
    items: dict[tuple[str, str], str] | None = None


def same(a: Fingerprint, b: Fingerprint) -> bool:
    """No change worth a record between the snapshots these were taken from."""
    return a.hashes == b.hashes and b.uptime >= a.uptime


def _put(out: dict[tuple[str, str], str], key: tuple[str, str], value: str) -> None:
    # Two items under one subject (two instances of a process under different names):
    # keep the least value, so the result does not depend on the agent's ordering.
    old = out.get(key)
    out[key] = value if old is None or value < old else old


def items(snap: Snapshot) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for p in snap.processes:
        if _kernel_thread(p.exe, p.cmdline):
            continue
        binary = p.exe if p.exe is not None else f"[{p.name}]"
        _put(out, ("process", f"{p.user or '?'}: {binary} {p.cmdline or ''}".rstrip()), p.name)
    for x in snap.listening_ports:
        _put(out, ("listening", f"{x.protocol} {x.address or '*'}:{x.port}"), x.process or "")
    served = _served(snap)
    for c in snap.connections:
        if c.local_port in served:
            continue
        _put(out, ("connection", f"{c.protocol} {c.remote_address}:{c.remote_port}"),
             c.process or "")  # fmt: skip
    for u in snap.logged_in_users:
        out[("login", u)] = ""
    for a in snap.users:
        groups = ",".join(sorted(a.groups))
        _put(out, ("account", a.name), f"uid={a.uid} shell={a.shell} groups={groups}")
    for k in snap.ssh_authorized_keys:
        _put(out, ("key", f"{k.user} {k.fingerprint}"), k.comment or "")
    for ip in snap.ip_addresses:
        out[("address", ip)] = ""
    out[("host", "hostname")] = snap.hostname
    out[("host", "os")] = snap.os
    out[("host", "kernel")] = snap.kernel
    return out


def compare(before: dict[tuple[str, str], str], after: dict[tuple[str, str], str]) -> list[Change]:
    """Changes from one item set to another, ordered by kind then subject."""
    out: list[Change] = []
    for key, value in after.items():
        old = before.get(key)
        if old is None:
            out.append(Change(key[0], "added", key[1], None, value or None))
        elif old != value:
            out.append(Change(key[0], "modified", key[1], old or None, value or None))
    out.extend(
        Change(key[0], "removed", key[1], value or None, None)
        for key, value in before.items()
        if key not in after
    )
    order = {kind: i for i, kind in enumerate(KINDS)}
    out.sort(key=lambda c: (order[c.kind], c.subject, c.change))
    return out


def changes(before: dict[tuple[str, str], str], before_uptime: int,
            after: dict[tuple[str, str], str], after_uptime: int) -> list[Change]:  # fmt: skip
    """Items compared, and a reboot (the uptime went back)."""
    out = compare(before, after)
    if after_uptime < before_uptime:
        out.append(Change("host", "modified", "uptime reset", f"{before_uptime} s",
                          f"{after_uptime} s"))  # fmt: skip
    return out


def diff(before: Snapshot, after: Snapshot) -> list[Change]:
    """What changed from `before` to `after`: items, and a reboot (the uptime went back)."""
    return changes(items(before), before.uptime_seconds, items(after), after.uptime_seconds)
