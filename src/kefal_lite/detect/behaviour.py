"""Leaves of the behaviour predicates (the core pack's): what a process does, not what it
is called. Each is `prepare(leaf)` once per catalog and `check(prepared, ctx)` per
snapshot, and answers from the shared blobs before walking any process list."""

from __future__ import annotations

import posixpath
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kefal_lite.detect import predicates as p
from kefal_lite.detect.facts import (
    Verdicts,
    host_port,
    label,
    login_shell,
    norm_exe,
    norm_name,
    proc_evidence,
)
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
    return not exact.isdisjoint(c.f.name_set) or (bool(prefixes) and _any_prefix(prefixes, c))


def _any_prefix(prefixes: tuple[str, ...], c: Ctx) -> bool:
    """Whether a process name starts with one of `prefixes`, each asked once a snapshot."""
    known = c.prefix_hits
    for x in prefixes:
        hit = known.get(x)
        if hit is None:
            hit = known[x] = "\n" + x in c.f.names_blob
        if hit:
            return True
    return False


def _hit(name: str, proc: Process, what: str, c: Ctx, **extra: Any) -> Hit:
    return (f"process:{name}", f"{label(proc)} {what}", proc_evidence(proc, c.f) | extra, None)


# --- exe in a writable or hidden place --------------------------------------------------


ExePrep = tuple[tuple[str, ...], bool, bool, tuple[str, ...], Verdicts[str | None]]


def prep_exe(pr: p.ProcessExeSuspicious) -> ExePrep:
    dirs = tuple(x.rstrip("/") + "/" for x in pr.params.paths)
    hidden, memfd = pr.params.hidden, pr.params.memfd
    ok = tuple(x.lower() for x in pr.params.except_)
    # A host runs the same binaries snapshot after snapshot: each path is judged once.
    verdicts: Verdicts[str | None] = Verdicts(
        lambda exe: _exe_where(exe, dirs, hidden, memfd, ok) is not None
    )
    return dirs, hidden, memfd, ok, verdicts


def _exe_where(
    exe: str | None, dirs: tuple[str, ...], hidden: bool, memfd: bool, ok: tuple[str, ...]
) -> str | None:
    if not exe:
        return None
    exe = norm_exe(exe)
    low = exe.lower()
    if memfd and "memfd:" in low:
        return "an anonymous memory file"
    if exe.startswith(dirs):
        return "a world-writable directory"
    if hidden and "/." in exe and not any(x in low for x in ok):
        return "a hidden path"
    return None


def exe_suspicious(prep: ExePrep, c: Ctx) -> list[Hit]:
    dirs, hidden, memfd, ok, verdicts = prep
    # The distinct binaries (a few dozen), each judged once per catalog: cheaper than
    # searching the joined paths for every directory, "/." and "memfd:" each snapshot.
    bad = verdicts.flagged(c.f.exe_set)
    if not bad:
        return []
    hits: list[Hit] = []
    for name, proc in zip(c.f.names, c.f.procs, strict=True):
        if proc.exe in bad:
            where = _exe_where(proc.exe, dirs, hidden, memfd, ok)
            hits.append(_hit(name, proc, f"runs {proc.exe}, from {where}", c))
    return hits


# --- a name that imitates a system daemon or a kernel thread ----------------------------

# Kernel threads by name, with or without their "/cpu" suffix (a renamed scanner calls
# itself plain "kworker"); "watchdog" and "irq" alone are userland daemons, so only their
# slashed forms count.
_KTHREAD_NAME = (r"(?:(?:kworker|ksoftirqd|migration|jbd2|cpuhp)(?:/|$)|watchdog/|irq/|kthreadd"
                 r"|rcu_|kswapd|kdevtmpfs|kauditd|kblockd|oom_reaper|kcompactd|khugepaged|ksmd"
                 r"|writeback|kintegrityd|khungtaskd)")  # fmt: skip
# Binaries a daemon legitimately runs from under another name.
_ALIASES = {"systemd-udevd": ("udevadm",), "init": ("systemd",), "crond": ("cronie",),
            "syslogd": ("rsyslogd", "busybox"), "master": ("postfix",)}  # fmt: skip


MismatchPrep = tuple[frozenset[str], bool, Verdicts[tuple[str, str]]]


def prep_mismatch(pr: p.ProcessNameMismatch) -> MismatchPrep:
    # Linux reports at most 15 characters of a name: match the truncated form too.
    names = {norm_name(n) for n in pr.params.names}
    daemons = frozenset(names | {n[:15] for n in names})
    kthreads = pr.params.kernel_threads
    # Each (name, binary) pair is judged once per catalog: a host shows the same pairs
    # snapshot after snapshot, and most hosts the same few hundred.
    verdicts: Verdicts[tuple[str, str]] = Verdicts(
        lambda pair: _mismatch(daemons, kthreads, *pair) is not None
    )
    return daemons, kthreads, verdicts


_KTHREAD_RE = re.compile("^" + _KTHREAD_NAME, re.M)


@lru_cache(maxsize=16_384)  # the same daemons and binaries on every host, every snapshot
def _imitates(name: str, exe: str) -> bool:
    base = posixpath.basename(exe.removesuffix(" (deleted)")).lower()
    if base in ("busybox", "toybox") or base == name or base in _ALIASES.get(name, ()):
        return False
    return not (base.startswith(name) or name.startswith(base))


def _mismatch(daemons: frozenset[str], kthreads: bool, name: str, exe: str | None) -> str | None:
    if not exe:
        return None  # kernel threads have no binary
    if name in daemons and _imitates(name, exe):
        return f"is named like system daemon {name} but runs {exe}"
    if kthreads and _KTHREAD_RE.match(name):
        return f"is named like a kernel thread but runs {exe}"
    return None


def name_mismatch(prep: MismatchPrep, c: Ctx) -> list[Hit]:
    daemons, kthreads, verdicts = prep
    bad = verdicts.flagged(c.f.name_exe_pairs)
    if not bad:
        return []
    hits: list[Hit] = []
    for name, proc in zip(c.f.names, c.f.procs, strict=True):
        if (name, proc.exe) in bad:
            what = _mismatch(daemons, kthreads, name, proc.exe)
            hits.append(_hit(name, proc, str(what), c))
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
        where: dict[str, Any] = {"remote_address": conn.remote_address,
                                 "remote_port": conn.remote_port}  # fmt: skip
        what = f"holds a connection to {peer}"
        if conn.pid is None:
            # The agent named the process but not its pid: say which ones it could be.
            same = c.f.procs_named(norm_name(proc.name))
            if len(same) > 1:
                where["candidates"] = [proc_evidence(x, c.f) for x in same[:8]]
                pids = ", ".join(str(x.pid) for x in same[:8])
                what += f" (one of {len(same)} processes by that name: pids {pids})"
        hits.append(_hit(norm_name(proc.name), proc, what, c, **where))
    return hits


# --- started by a network-facing service (a web shell) ----------------------------------


ParentPrep = tuple[Names, Names, Verdicts[str]]


def prep_parent(pr: p.ProcessParentIn) -> ParentPrep:
    children = _names(pr.params.names)
    # Which process names are children (exact or by prefix), each name judged once.
    return children, _names(pr.params.parents), Verdicts(lambda n: _named(children, n))


def parent_in(prep: ParentPrep, c: Ctx) -> list[Hit]:
    _, parents, children = prep
    if not _any_named(parents, c):
        return []
    hits: list[Hit] = []
    # Shells and interpreters are few on a server: look up each one's parent, rather than
    # walking every process for children of every service.
    for n in children.flagged(c.f.name_set):
        for proc in c.f.procs_named(n):
            parent = c.f.parent(proc)
            if parent is not None and _named(parents, norm_name(parent.name)):
                what = f"was started by {parent.name} (pid {parent.pid}), a network-facing service"
                hits.append(_hit(norm_name(proc.name), proc, what, c))
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
    frags = c.frags()
    for group in groups:
        if frags.isdisjoint(group):
            return []
    hits: list[Hit] = []
    for name, proc, own in c.frag_procs():
        if own.isdisjoint(groups[0]):
            continue
        found = []
        for group in groups:
            match = next((x for x in group if x in own), None)
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
# Where backups and snapshots live: shred exists to make data unrecoverable, and pointed at
# these it destroys the way back (T1490), whatever the file is called.
_BACKUPS = ("backup", "/var/lib/vz/dump", "vzdump", "/dump/", ".bak", "snapshot", "restic",
            "borg", "/var/lib/mysql", "/var/lib/postgresql", "/srv/")  # fmt: skip


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
    elif cmd == "shred":
        targets = [a for a in args if not a.startswith("-")]
        if any(t.rstrip("/*") in _CRITICAL or any(b in t.lower() for b in _BACKUPS)
               for t in targets):  # fmt: skip
            return "erases backups or system files beyond recovery"
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
    if c.frags().isdisjoint(_HINTS):
        return []
    hits: list[Hit] = []
    for name, proc, own in c.frag_procs():
        if not proc.cmdline or own.isdisjoint(_HINTS):
            continue
        if ":(){" in proc.cmdline.replace(" ", ""):
            why: str | None = "is a fork bomb"
        else:
            why = next((w for argv in _commands(proc.cmdline) if (w := _destructive(argv))), None)
        if why is not None:
            hits.append(_hit(name, proc, f"{why}: {proc.cmdline[:200]}", c))
    return hits


# --- a service account running discovery commands (a web shell's first steps) ------------

# Commands that tell an intruder who and where they are (T1033, T1082, T1016).
_DISCOVERY = frozenset({"id", "whoami", "uname", "hostname", "ifconfig", "netstat", "w", "who",
                        "last", "groups", "lsb_release", "hostnamectl"})  # fmt: skip
_DISCOVERY_FILES = frozenset({"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/issue",
                              "/etc/os-release", "/proc/version", "/etc/hosts",
                              "/etc/sudoers"})  # fmt: skip
_DISCOVERY_HINTS = ("whoami", "uname", "/etc/passwd", "/etc/shadow", "hostname", "ifconfig",
                    "netstat", "/proc/version", "/etc/os-release", "/etc/issue")  # fmt: skip


def discovery_commands(cmdline: str) -> list[str]:
    """The discovery commands one command line chains, in order, each once."""
    found: dict[str, None] = {}
    for argv in _commands(cmdline):
        if not argv:
            continue
        cmd = posixpath.basename(argv[0])
        if cmd in _DISCOVERY:
            found[" ".join(argv[:2]) if cmd == "uname" else cmd] = None
        elif cmd in ("cat", "head", "less", "more", "grep") and (
            files := [a for a in argv[1:] if a in _DISCOVERY_FILES]
        ):
            found[f"{cmd} {files[0]}"] = None
    return list(found)


def service_account_discovery(prep: None, c: Ctx) -> list[Hit]:
    if c.frags().isdisjoint(_DISCOVERY_HINTS):
        return []
    # Accounts that cannot log in: daemons' (www-data, nobody, mysql). A person at a shell
    # asking "who am I" has a login shell; a web server's account should not ask.
    services = {u.name for u in c.f.snap.users if u.shell and not login_shell(u.shell)}
    hits: list[Hit] = []
    for name, proc, own in c.frag_procs():
        if not proc.cmdline or (";" not in proc.cmdline and "&&" not in proc.cmdline):
            continue
        if own.isdisjoint(_DISCOVERY_HINTS):
            continue
        found = discovery_commands(proc.cmdline)
        if len(found) < 2:
            continue
        parent = c.f.parent(proc)
        if proc.user in services:
            why = f"{proc.user} is a service account without a login shell"
        elif parent is not None and is_network_service(parent.name):
            why = f"started by network service {parent.name} (pid {parent.pid})"
        else:
            continue
        what = f"chains discovery commands ({', '.join(found)}); {why}"
        hits.append(_hit(name, proc, what, c, discovery=found))
    return hits


# --- guessing passwords against a login service (hydra, medusa, ncrack, patator...) ----

_LOGIN_PROTOCOLS = frozenset({"ssh", "sshkey", "ftp", "ftps", "telnet", "rdp", "smb", "smbnt",
                              "smb2", "vnc", "mysql", "mssql", "postgres", "pgsql", "imap",
                              "pop3", "smtp", "ldap", "winrm", "rlogin", "rexec", "snmp",
                              "http-get", "http-post-form", "https-post-form", "http-form",
                              "web-form", "wordpress"})  # fmt: skip
_LIST_HINTS = (".txt", ".lst", ".dic", "wordlist", "rockyou", "seclists", "=file", "passw")
_PROTO_HINTS = ("ssh", "ftp", "telnet", "rdp", "smb", "vnc", "sql", "imap", "pop3", "smtp",
                "ldap", "winrm", "http-", "snmp", "form")  # fmt: skip


def _wordlist(arg: str) -> bool:
    low = arg.lower()
    return low.endswith((".txt", ".lst", ".dic", ".list")) or any(
        x in low for x in ("wordlist", "rockyou", "seclists", "passw"))  # fmt: skip


def guessing(argv: list[str]) -> tuple[str, str] | None:
    """(login protocol, credential list) when a command line tries a list of passwords or
    users against a login service, written the way brute-forcers take them: a list after
    -P/-C/-U/-p, or patator's FILE0, and the service as -M/-m/--service, a URL scheme, a
    bare word or a patator module."""
    wordlist = proto = None
    for i, a in enumerate(argv[1:], 1):
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        low = a.lower()
        if a in ("-P", "-C", "-U", "-p", "-u", "--passlist", "--passwords", "--userlist",
                 "--pass", "--user") and nxt and _wordlist(nxt):  # fmt: skip
            wordlist = nxt
        elif "=FILE" in a.upper() and "=" in a:
            wordlist = a
        elif a in ("-M", "-m", "--service") and nxt.lower() in _LOGIN_PROTOCOLS:
            proto = nxt.lower()
        elif "://" in a and low.split("://", 1)[0] in _LOGIN_PROTOCOLS:
            proto = low.split("://", 1)[0]
        elif low in _LOGIN_PROTOCOLS:
            proto = low
        elif low.endswith("_login") and low[:-6] in _LOGIN_PROTOCOLS:
            proto = low[:-6]
    return (proto, wordlist) if proto and wordlist else None


def credential_guessing(prep: None, c: Ctx) -> list[Hit]:
    frags = c.frags()
    if frags.isdisjoint(_LIST_HINTS) or frags.isdisjoint(_PROTO_HINTS):
        return []
    hits: list[Hit] = []
    for name, proc, own in c.frag_procs():
        if not proc.cmdline or own.isdisjoint(_LIST_HINTS) or own.isdisjoint(_PROTO_HINTS):
            continue
        for argv in _commands(proc.cmdline):
            found = guessing([a for a in argv if a])
            if found is not None:
                proto, wordlist = found
                what = f"tries the credentials in {wordlist} against {proto}"
                hits.append(_hit(name, proc, what, c, protocol=proto, wordlist=wordlist))
                break
    return hits


# The command-line fragments each kind asks the catalog's Scanner about.
NEEDLES: dict[type, Any] = {
    p.ProcessCmdlineAll: lambda pr: [x for group in prep_all(pr) for x in group],
    p.DestructiveCommand: lambda pr: _HINTS,
    p.ServiceAccountDiscovery: lambda pr: _DISCOVERY_HINTS,
    p.CredentialGuessing: lambda pr: _LIST_HINTS + _PROTO_HINTS,
}

# What a snapshot's command lines must contain for these kinds to match at all: the
# engine's shared pre-filter skips them otherwise.
GATES: dict[type, tuple[str, ...]] = {
    p.DestructiveCommand: _HINTS,
    p.ServiceAccountDiscovery: _DISCOVERY_HINTS,
    p.CredentialGuessing: _LIST_HINTS,
}

LEAVES: dict[type, tuple[Any, Any]] = {
    p.ProcessExeSuspicious: (prep_exe, exe_suspicious),
    p.ProcessNameMismatch: (prep_mismatch, name_mismatch),
    p.ProcessOutbound: (prep_outbound, outbound),
    p.ProcessParentIn: (prep_parent, parent_in),
    p.CpuWithConnection: (prep_cpu_conn, cpu_with_connection),
    p.ProcessCmdlineAll: (prep_all, cmdline_all),
    p.DestructiveCommand: (lambda pr: None, destructive),
    p.ServiceAccountDiscovery: (lambda pr: None, service_account_discovery),
    p.CredentialGuessing: (lambda pr: None, credential_guessing),
}

__all__ = ["GATES", "LEAVES", "NEEDLES", "is_network_service"]
