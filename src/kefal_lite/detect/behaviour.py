"""Leaves of the behaviour predicates (the core pack's): what a process does, not what it
is called. Each is `prepare(leaf)` once per catalog and `check(prepared, ctx)` per
snapshot, and answers from the shared blobs before walking any process list."""

from __future__ import annotations

import posixpath
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kefal_lite.detect import predicates as p
from kefal_lite.detect.facts import host_port, label, norm_exe, norm_name, proc_evidence
from kefal_lite.detect.signals import SHELLS, is_network_service
from kefal_lite.snapshot import Process

if TYPE_CHECKING:
    from kefal_lite.detect.engine import Ctx, Hit

Names = tuple[frozenset[str], tuple[str, ...]]  # exact names, prefixes (from "python*")


def _names(names: list[str]) -> Names:
    exact = frozenset(norm_name(n) for n in names if not n.endswith("*"))
    return exact, tuple(norm_name(n[:-1]) for n in names if n.endswith("*"))


def _named(names: Names, name: str) -> bool:
    return name in names[0] or (bool(names[1]) and name.startswith(names[1]))


def _any_named(names: Names, c: Ctx) -> bool:
    exact, prefixes = names
    return not exact.isdisjoint(c.f.name_set) or any("\n" + x in c.f.names_blob for x in prefixes)


def _hit(name: str, proc: Process, what: str, c: Ctx, **extra: Any) -> Hit:
    return (f"process:{name}", f"{label(proc)} {what}", proc_evidence(proc, c.f) | extra, None)


# --- exe in a writable or hidden place --------------------------------------------------


def prep_exe(pr: p.ProcessExeSuspicious) -> tuple[tuple[str, ...], bool, bool, tuple[str, ...]]:
    dirs = tuple(x.rstrip("/") + "/" for x in pr.params.paths)
    return dirs, pr.params.hidden, pr.params.memfd, tuple(x.lower() for x in pr.params.except_)


def exe_suspicious(prep: tuple[tuple[str, ...], bool, bool, tuple[str, ...]], c: Ctx) -> list[Hit]:
    dirs, hidden, memfd, ok = prep
    blob = c.f.exe_blob
    if not (any("\n" + d in blob for d in dirs) or (hidden and "/." in blob)
            or (memfd and "memfd:" in blob)):  # fmt: skip
        return []
    hits: list[Hit] = []
    for name, proc in zip(c.f.names, c.f.procs, strict=True):
        if not proc.exe:
            continue
        exe = norm_exe(proc.exe)
        low = exe.lower()
        if memfd and "memfd:" in low:
            where = "an anonymous memory file"
        elif exe.startswith(dirs):
            where = "a world-writable directory"
        elif hidden and "/." in exe and not any(x in low for x in ok):
            where = "a hidden path"
        else:
            continue
        hits.append(_hit(name, proc, f"runs {proc.exe}, from {where}", c))
    return hits


# --- a name that imitates a system daemon or a kernel thread ----------------------------

_KTHREAD_PREFIXES = ("kworker/", "ksoftirqd/", "kthreadd", "migration/", "rcu_", "kswapd",
                     "watchdog/", "jbd2/", "kdevtmpfs", "kauditd", "kblockd", "irq/", "cpuhp/",
                     "oom_reaper", "kcompactd", "khugepaged", "ksmd", "writeback",
                     "kintegrityd", "khungtaskd")  # fmt: skip
# Binaries a daemon legitimately runs from under another name.
_ALIASES = {"systemd-udevd": ("udevadm",), "init": ("systemd",), "crond": ("cronie",),
            "syslogd": ("rsyslogd", "busybox"), "master": ("postfix",)}  # fmt: skip


def prep_mismatch(pr: p.ProcessNameMismatch) -> tuple[frozenset[str], bool]:
    # Linux reports at most 15 characters of a name: match the truncated form too.
    names = {norm_name(n) for n in pr.params.names}
    return frozenset(names | {n[:15] for n in names}), pr.params.kernel_threads


_KTHREAD_RE = re.compile("^(?:" + "|".join(map(re.escape, _KTHREAD_PREFIXES)) + ")", re.M)


@lru_cache(maxsize=16_384)  # the same daemons and binaries on every host, every snapshot
def _imitates(name: str, exe: str) -> bool:
    base = posixpath.basename(exe.removesuffix(" (deleted)")).lower()
    if base in ("busybox", "toybox") or base == name or base in _ALIASES.get(name, ()):
        return False
    return not (base.startswith(name) or name.startswith(base))


def name_mismatch(prep: tuple[frozenset[str], bool], c: Ctx) -> list[Hit]:
    daemons, kthreads = prep
    named = c.f.name_set & daemons
    fake_kthread = kthreads and _KTHREAD_RE.search(c.f.exe_names_blob) is not None
    if not named and not fake_kthread:
        return []
    hits: list[Hit] = []
    for name, proc in zip(c.f.names, c.f.procs, strict=True):
        if not proc.exe:
            continue  # kernel threads have no binary
        if name in named and _imitates(name, proc.exe):
            what = f"is named like system daemon {name} but runs {proc.exe}"
        elif fake_kthread and name.startswith(_KTHREAD_PREFIXES):
            what = f"is named like a kernel thread but runs {proc.exe}"
        else:
            continue
        hits.append(_hit(name, proc, what, c))
    return hits


# --- a shell, interpreter or network tool holding an outbound connection ----------------


def prep_outbound(pr: p.ProcessOutbound) -> tuple[Names, frozenset[int]]:
    return _names(pr.params.names), frozenset(pr.params.allowed_ports)


def outbound(prep: tuple[Names, frozenset[int]], c: Ctx) -> list[Hit]:
    names, allowed = prep
    if not c.f.snap.connections or not _any_named(names, c):
        return []
    hits: list[Hit] = []
    for conn in c.f.outbound:
        if conn.remote_port in allowed:
            continue
        if conn.process and not _named(names, norm_name(conn.process)):
            continue
        proc = c.f.owner_of(conn.pid, conn.process)
        if proc is None or not _named(names, norm_name(proc.name)):
            continue
        peer = host_port(conn.remote_address, conn.remote_port)
        where = {"remote_address": conn.remote_address, "remote_port": conn.remote_port}
        hits.append(_hit(norm_name(proc.name), proc, f"holds a connection to {peer}", c, **where))
    return hits


# --- started by a network-facing service (a web shell) ----------------------------------


def prep_parent(pr: p.ProcessParentIn) -> tuple[Names, Names]:
    return _names(pr.params.names), _names(pr.params.parents)


def parent_in(prep: tuple[Names, Names], c: Ctx) -> list[Hit]:
    children, parents = prep
    if not _any_named(parents, c) or not _any_named(children, c):
        return []
    services = {proc.pid: proc for name, proc in zip(c.f.names, c.f.procs, strict=True)
                if _named(parents, name)}  # fmt: skip
    hits: list[Hit] = []
    for name, proc in zip(c.f.names, c.f.procs, strict=True):
        parent = services.get(proc.ppid) if proc.ppid is not None else None
        if parent is not None and _named(children, name):
            what = f"was started by {parent.name} (pid {parent.pid}), a network-facing service"
            hits.append(_hit(name, proc, what, c))
    return hits


# --- sustained CPU with a connection to a mining pool -----------------------------------


def prep_cpu_conn(pr: p.CpuWithConnection) -> tuple[float, int, frozenset[int]]:
    return pr.params.percent, pr.params.snapshots, frozenset(pr.params.ports)


def cpu_with_connection(prep: tuple[float, int, frozenset[int]], c: Ctx) -> list[Hit]:
    limit, needed, ports = prep
    if c.f.max_cpu < limit or not c.f.snap.connections:
        return []
    hits: list[Hit] = []
    key = c.invariant_id + "\x00"
    for name, proc in zip(c.f.names, c.f.procs, strict=True):
        if proc.cpu_percent < limit:
            continue
        pool = next((x for x in c.f.connections_of(proc, name) if x.remote_port in ports), None)
        if pool is None or key + name in c.cpu_streaks:
            continue
        streak = c.state.cpu_streaks.get(key + name, 0) + 1
        c.cpu_streaks[key + name] = streak
        if streak >= needed:
            peer = host_port(pool.remote_address, pool.remote_port)
            what = (f"uses {proc.cpu_percent:.0f}% CPU for {streak} snapshots while connected to "
                    f"{peer}, a mining-pool port")  # fmt: skip
            extra = {
                "cpu_percent": proc.cpu_percent,
                "snapshots": streak,
                "remote_address": pool.remote_address,
                "remote_port": pool.remote_port,
            }
            hits.append(_hit(name, proc, what, c, **extra))
    return hits


# --- several fragments in one command line ----------------------------------------------


def prep_all(pr: p.ProcessCmdlineAll) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(dict.fromkeys(x.lower() for x in group)) for group in pr.params.all_of)


def cmdline_all(groups: tuple[tuple[str, ...], ...], c: Ctx) -> list[Hit]:
    blob = c.f.cmd_blob
    if not all(any(x in blob for x in group) for group in groups):
        return []
    hits: list[Hit] = []
    for name, proc in zip(c.f.names, c.f.procs, strict=True):
        if not proc.cmdline:
            continue
        low = proc.cmdline.lower()
        found = []
        for group in groups:
            match = next((x for x in group if x in low), None)
            if match is None:
                break
            found.append(match)
        else:
            shown = " + ".join(repr(x.strip()) for x in found)
            hits.append(_hit(name, proc, f"command line has {shown}", c, patterns=found))
    return hits


# --- destructive commands ---------------------------------------------------------------

_CRITICAL = frozenset({"/", "/*", "/etc", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib64",
                       "/var", "/var/lib", "/var/log", "/home", "/root", "/opt", "/srv", "~",
                       "/etc/*", "/usr/*", "/var/*", "/var/log/*", "/home/*", "/boot/*",
                       "/root/*", "~/*", "/dev/sda"})  # fmt: skip
_DISKS = ("/dev/sd", "/dev/nvme", "/dev/vd", "/dev/xvd", "/dev/hd", "/dev/mmcblk", "/dev/dm-",
          "/dev/md", "/dev/mapper/", "/dev/disk/")  # fmt: skip
_HINTS = ("rm ", "mkfs", "dd ", "shred ", "wipefs", ":(){", "--no-preserve-root")


def _destructive(argv: list[str]) -> str | None:
    """Why this command destroys data, if it does (a tokenised command, no shell parsing)."""
    if not argv:
        return None
    cmd = posixpath.basename(argv[0])
    args = argv[1:]
    if cmd == "rm":
        recursive = any(a in ("--recursive", "-r", "-R") or (a.startswith("-") and not
                        a.startswith("--") and ("r" in a or "R" in a)) for a in args)  # fmt: skip
        targets = [a.rstrip("/") or "/" for a in args if not a.startswith("-")]
        if "--no-preserve-root" in args or (recursive and any(t in _CRITICAL for t in targets)):
            return "deletes a system tree recursively"
    elif cmd.startswith("mkfs") and any(a.startswith(_DISKS) for a in args):
        return "formats a disk"
    elif cmd == "dd" and any(a.startswith("of=") and a[3:].startswith(_DISKS) for a in args):
        return "overwrites a disk"
    elif cmd in ("shred", "wipefs") and any(a.startswith(_DISKS) for a in args):
        return "wipes a disk"
    return None


def _commands(cmdline: str) -> list[list[str]]:
    """The simple commands of a command line, and of a shell's -c string."""
    out = []
    text = cmdline.replace("&&", ";").replace("||", ";").replace("|", ";").replace("&", ";")
    for part in text.split(";"):
        argv = [a.strip("'\"") for a in part.split()]
        if len(argv) > 2 and posixpath.basename(argv[0]) in SHELLS and argv[1] == "-c":
            argv = argv[2:]  # sh -c 'rm -rf /': the inner command
        if argv and argv[0] == "sudo":
            argv = argv[1:]
        out.append(argv)
    return out


def destructive(prep: None, c: Ctx) -> list[Hit]:
    blob = c.f.cmd_blob
    if not any(h in blob for h in _HINTS):
        return []
    hits: list[Hit] = []
    for name, proc in zip(c.f.names, c.f.procs, strict=True):
        if not proc.cmdline:
            continue
        if ":(){" in proc.cmdline.replace(" ", ""):
            why: str | None = "is a fork bomb"
        else:
            why = next((w for argv in _commands(proc.cmdline) if (w := _destructive(argv))), None)
        if why is not None:
            hits.append(_hit(name, proc, f"{why}: {proc.cmdline[:200]}", c))
    return hits


LEAVES: dict[type, tuple[Any, Any]] = {
    p.ProcessExeSuspicious: (prep_exe, exe_suspicious),
    p.ProcessNameMismatch: (prep_mismatch, name_mismatch),
    p.ProcessOutbound: (prep_outbound, outbound),
    p.ProcessParentIn: (prep_parent, parent_in),
    p.CpuWithConnection: (prep_cpu_conn, cpu_with_connection),
    p.ProcessCmdlineAll: (prep_all, cmdline_all),
    p.DestructiveCommand: (lambda pr: None, destructive),
}

__all__ = ["LEAVES", "is_network_service"]
