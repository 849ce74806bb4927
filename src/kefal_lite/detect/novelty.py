"""Novelty: what a host shows that its baseline never held, told as a sentence.

Novelty alone is a `low` notice. The rule's own severity needs a second signal (a
non-loopback bind, a binary in a writable or hidden path, an interpreter holding a
connection, a privileged account, a network service as parent). Routine parents (cron,
the package manager, configuration management) are recorded as evidence for benign, and
then two signals are needed. Loopback connections are not egress and ephemeral listener
ports are not values at all: such a listener is judged by its owning process.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from kefal_lite.detect import mcp
from kefal_lite.detect.facts import (
    EPHEMERAL,
    Facts,
    host_port,
    iso,
    label,
    login_shell,
    norm_name,
    peer_evidence,
    proc_evidence,
    socket_evidence,
)
from kefal_lite.detect.signals import (
    CONTAINER_PROXIES,
    PRIVILEGED_GROUPS,
    ROUTINE_PORTS,
    WEB_PORTS,
    exposed,
    is_interpreter,
    process_signals,
)
from kefal_lite.snapshot import LocalUser, Process

if TYPE_CHECKING:
    from kefal_lite.detect.engine import Ctx, Hit

Values = set[str] | frozenset[str]  # a field's values in one snapshot (never changed)
ADMIN_GROUPS = frozenset({"sudo", "wheel", "admin", "adm1n", "administrators"})
SYSTEM_UID_MAX = 999


def _root_processes(f: Facts) -> set[str]:
    # Kernel threads (children of kthreadd, pid 2) rename themselves all the time
    # (kworker/1:2-events): they are not programs anyone started.
    return {
        n
        for n, proc in zip(f.names, f.procs, strict=True)
        if proc.user == "root" and proc.ppid != 2 and proc.pid != 2
    }


def _accounts(f: Facts, field: str) -> set[str]:
    """The four account fields, from one pass over the accounts (asked together)."""
    cache: dict[str, set[str]] = f.__dict__.setdefault("_present", {})
    if field not in cache:
        names: set[str] = set()
        login: set[str] = set()
        admin: set[str] = set()
        privileged: set[str] = set()
        for u in f.snap.users:
            name = u.name
            names.add(name)
            if login_shell(u.shell):
                login.add(name)
            if u.uid == 0:
                admin.add(name)
                if name != "root":
                    privileged.add(f"{name}:uid0")
            groups = u.groups
            # Most accounts are in their own group only: two C-level isdisjoint calls, and
            # no comprehension (each costs a function call on 3.11) unless one matches.
            if groups and not PRIVILEGED_GROUPS.isdisjoint(groups):
                if not ADMIN_GROUPS.isdisjoint(groups):
                    admin.add(name)
                if name != "root":
                    for g in PRIVILEGED_GROUPS.intersection(groups):
                        privileged.add(f"{name}:{g}")
            elif groups and not ADMIN_GROUPS.isdisjoint(groups):
                admin.add(name)
        cache.update(accounts=names, login_accounts=login, admin_accounts=admin,
                     privileged_accounts=privileged)  # fmt: skip
    return cache[field]


def _outbound_peers(f: Facts) -> set[str]:
    return {f"{norm_name(c.process) if c.process else '?'}:{c.remote_port}" for c in f.outbound}


EXTRACTORS: dict[str, Callable[[Facts], set[str]]] = {
    "listening_ports": lambda f: {
        f"{lp.port}/{lp.protocol}" for lp in f.snap.listening_ports if lp.port not in EPHEMERAL
    },  # fmt: skip
    "listening_processes": lambda f: {
        norm_name(lp.process) for lp in f.snap.listening_ports if lp.process
    },
    "root_processes": _root_processes,
    "logged_in_users": lambda f: set(f.snap.logged_in_users),
    "admin_accounts": lambda f: _accounts(f, "admin_accounts"),
    "authorized_keys": lambda f: {f"{k.user}:{k.fingerprint}" for k in f.snap.ssh_authorized_keys},
    "outbound_peers": _outbound_peers,
    "accounts": lambda f: _accounts(f, "accounts"),
    "login_accounts": lambda f: _accounts(f, "login_accounts"),
    "privileged_accounts": lambda f: _accounts(f, "privileged_accounts"),
    "mcp_servers": mcp.novel_values,
}
SUBJECT_KIND = {
    "listening_ports": "port",
    "listening_processes": "process",
    "root_processes": "process",
    "logged_in_users": "user",
    "admin_accounts": "user",
    "authorized_keys": "key",
    "outbound_peers": "peer",
    "accounts": "user",
    "login_accounts": "user",
    "privileged_accounts": "user",
    "mcp_servers": "mcp",
}


def subject_value(field: str, subject: str) -> str | None:
    """The baseline value an incident's subject stands for (None: another field's)."""
    kind, _, value = subject.partition(":")
    if kind != SUBJECT_KIND[field]:
        return None
    return value


class _Judged:
    """Signals for and against one novel value, and the evidence they come with."""

    def __init__(self) -> None:
        self.signals: list[str] = []
        self.benign: list[str] = []
        self.ev: dict[str, Any] = {}
        self.severity: str | None = None  # forced (critical for root's key), else by signals
        self.loopback_only = False

    def process(self, f: Facts, proc: Process | None) -> None:
        if proc is None:
            return
        self.ev["owner"] = proc_evidence(proc, f)
        signals, benign = process_signals(f, proc)
        self.signals += signals
        self.benign += benign


def _user(f: Facts, name: str) -> LocalUser | None:
    return next((u for u in f.snap.users if u.name == name), None)


def _account_signals(j: _Judged, f: Facts, name: str) -> LocalUser | None:
    j.ev["user"] = name
    u = _user(f, name)
    if u is None:
        if f.snap.users:
            j.signals.append(f"{name} is not a local account")
        return None
    j.ev["account"] = {"name": u.name, "uid": u.uid, "groups": u.groups, "shell": u.shell}
    if u.uid == 0:
        j.signals.append(f"{name} has uid 0")
    privileged = PRIVILEGED_GROUPS.intersection(u.groups) | ADMIN_GROUPS.intersection(u.groups)
    if privileged:
        j.signals.append(f"{name} is in privileged group(s) {', '.join(sorted(privileged))}")
    if u.uid is not None and 0 < u.uid <= SYSTEM_UID_MAX and login_shell(u.shell):
        j.signals.append(f"{name} is a system account (uid {u.uid}) with shell {u.shell}")
    return u


def _judge(field: str, value: str, c: Ctx) -> tuple[str, _Judged]:
    """(title, judgement) for one novel value of `field`."""
    f = c.f
    j = _Judged()
    if field in ("listening_ports", "listening_processes"):
        if field == "listening_ports":
            port, _, proto = value.partition("/")
            lps = [lp for lp in f.snap.listening_ports
                   if str(lp.port) == port and lp.protocol == proto]  # fmt: skip
        else:
            lps = [lp for lp in f.snap.listening_ports
                   if lp.process and norm_name(lp.process) == value]  # fmt: skip
        wide = [lp for lp in lps if exposed(lp.address)]
        lp = (wide or lps)[0]
        j.ev["socket"] = socket_evidence(lp)
        owner = f.owner_of(lp.pid, lp.process)
        j.process(f, owner)
        proxy = owner.name if owner is not None else lp.process
        if proxy and norm_name(proxy) in CONTAINER_PROXIES:
            j.benign.append(f"published by the container runtime ({proxy})")
        if wide:
            j.signals.append(f"bound to {lp.address or 'an unknown address'}, not loopback")
            if owner is not None and is_interpreter(owner.name):
                j.signals.append(f"{owner.name} is a shell/interpreter accepting connections")
        else:
            j.loopback_only = True  # reachable from this host only: not exposure
        who = label(owner) if owner else (lp.process or "an unknown process")
        where = host_port(lp.address or "?", lp.port) + f"/{lp.protocol}"
        if field == "listening_ports":
            return f"{who} listens on {where}, a port this host never opened", j
        return f"{who} listens on {where}, the first time {value} accepts connections here", j
    if field == "root_processes":
        procs = [x for x in f.procs_named(value) if x.user == "root"]
        proc = procs[0] if procs else None
        j.process(f, proc)
        if proc is not None:  # as process rules give it, for remediation templates
            j.ev |= {"pid": proc.pid, "name": proc.name, "user": proc.user, "exe": proc.exe}
        if proc is not None:
            usual = WEB_PORTS if is_interpreter(proc.name) else ROUTINE_PORTS
            for conn in f.connections_of(proc, value):
                if conn.remote_port not in usual:
                    peer = host_port(conn.remote_address, conn.remote_port)
                    j.signals.append(f"holds a connection to {peer}")
                    break
        exe = f" ({proc.exe})" if proc and proc.exe else ""
        who = label(proc) if proc else value
        return f"{who} runs as root for the first time on this host{exe}", j
    if field == "outbound_peers":
        name, _, port = value.rpartition(":")
        conns = [x for x in f.outbound if str(x.remote_port) == port
                 and (norm_name(x.process) if x.process else "?") == name]  # fmt: skip
        conn = conns[0]
        j.ev["socket"] = peer_evidence(conn)
        owner = f.owner_of(conn.pid, conn.process)
        j.process(f, owner)
        name_used = owner.name if owner is not None else conn.process
        if (
            name_used
            and is_interpreter(name_used)
            and not any("interpreter" in s for s in j.signals)
        ):
            j.signals.append(f"{name_used} is a shell/interpreter holding the connection")
        who = label(owner) if owner else (conn.process or "an unknown process")
        peer = host_port(conn.remote_address, conn.remote_port)
        return f"{who} connects to {peer}, a port this host never used", j
    if field in ("logged_in_users", "admin_accounts", "accounts", "login_accounts"):
        u = _account_signals(j, f, value)
        if field == "logged_in_users":
            return f"{value} logged in, the first login by this account on this host", j
        if field == "admin_accounts":
            j.severity = "declared"  # administrator rights are the second signal
            groups = ", ".join(sorted(ADMIN_GROUPS.intersection(u.groups))) if u else ""
            how = "uid 0" if u and u.uid == 0 else f"group {groups}" if groups else "admin rights"
            return f"{value} became an administrator ({how})", j
        if field == "accounts":
            if u is not None and login_shell(u.shell):
                j.signals.append(f"created with login shell {u.shell}")
            uid = f"uid {u.uid}, " if u and u.uid is not None else ""
            return f"Account {value} ({uid}{u.shell if u else '?'}) was created", j
        # login_accounts
        j.severity = "declared"
        if u is not None and u.uid is not None and 0 < u.uid <= SYSTEM_UID_MAX:
            j.severity = "critical"
        return f"{value} can now log in (shell {u.shell if u else '?'})", j
    if field == "privileged_accounts":
        name, _, what = value.partition(":")
        _account_signals(j, f, name)
        j.severity = "critical" if what in ("uid0", "root") else "declared"
        if what == "uid0":
            return f"{name} was given uid 0", j
        return f"{name} was added to privileged group {what}", j
    if field == "mcp_servers":
        title, ev, signals = mcp.judge_novel(value, f)
        j.ev |= ev
        j.signals += signals
        return title, j
    # authorized_keys
    user, _, fingerprint = value.partition(":")
    j.ev |= {"user": user, "fingerprint": fingerprint}
    key = next((k for k in f.snap.ssh_authorized_keys
                if k.user == user and k.fingerprint == fingerprint), None)  # fmt: skip
    if key is not None and key.comment:
        j.ev["comment"] = key.comment
    u = _user(f, user)
    system = u is not None and u.uid is not None and u.uid <= SYSTEM_UID_MAX
    j.severity = "critical" if user == "root" or system else "declared"
    comment = f" ({key.comment})" if key is not None and key.comment else ""
    return f"New SSH key {fingerprint}{comment} authorized for {user}", j


def hits(field: str, values: set[str], declared: str, c: Ctx) -> list[Hit]:
    kind = SUBJECT_KIND[field]
    baseline = c.state.baselines.get(field, ())
    since = c.state.first_seen
    out: list[Hit] = []
    for value in sorted(values):
        title, j = _judge(field, value, c)
        routine = bool(j.benign)
        if j.loopback_only:
            severity = "low"
        elif j.severity == "critical":
            severity = "critical"
        elif j.severity == "declared" or len(j.signals) >= (2 if routine else 1):
            severity = declared
        else:
            severity = "low"
        related = [v for v in baseline if v.startswith(value.rpartition(":")[0] + ":")] \
            if field == "outbound_peers" else []  # fmt: skip
        ev: dict[str, Any] = {"field": field, "value": value, **j.ev, "signals": j.signals,
                              "benign": j.benign,
                              "baseline": {"since": iso(since) if since else None,
                                           "size": len(baseline),
                                           "sample": sorted(related or baseline)[:20]}}  # fmt: skip
        out.append((f"{kind}:{value}", title, ev, severity))
    return out


def present(f: Facts, field: str) -> Values:
    """The values of `field` this snapshot shows (computed once per snapshot)."""
    cache: dict[str, Values] = f.__dict__.setdefault("_present", {})
    values = cache.get(field)
    if values is None:
        if field in FROM_LISTS:
            cache.update(_from_lists(f))
            values = cache[field]
        else:
            values = cache[field] = EXTRACTORS[field](f)
    return values


# Fields that depend only on a snapshot's accounts, keys and listening sockets: lists that
# stay the same snapshot after snapshot on a host (unlike processes and connections, which
# churn every minute). Their values are remembered by those lists' exact bytes, so a host
# whose lists did not change pays one C-level encode and one lookup instead of a Python
# pass per account and per socket; any change is another key, judged afresh.
FROM_LISTS = frozenset({"listening_ports", "listening_processes", "authorized_keys",
                        "admin_accounts", "accounts", "login_accounts",
                        "privileged_accounts"})  # fmt: skip
# Bounded: forgotten whole past ~8 MiB (keys plus an estimate of the sets), about 1,800
# hosts of ubuntu-web's size; a larger estate ingesting round-robin then pays the encode
# (~2 us) on top of the Python passes instead of saving them.
LISTS_MEMO_BYTES = 8 << 20
_lists_encoder = msgspec.msgpack.Encoder()
_lists_memo: dict[bytes, dict[str, frozenset[str]]] = {}
_lists_bytes = 0


def _from_lists(f: Facts) -> dict[str, frozenset[str]]:
    global _lists_bytes
    snap = f.snap
    key = _lists_encoder.encode((snap.users, snap.ssh_authorized_keys, snap.listening_ports))
    out = _lists_memo.get(key)
    if out is None:
        out = {field: frozenset([sys.intern(v) for v in EXTRACTORS[field](f)])
               for field in FROM_LISTS}  # fmt: skip
        size = len(key) + 300 * len(out) + 80 * sum(map(len, out.values()))
        if _lists_bytes + size > LISTS_MEMO_BYTES:
            _lists_memo.clear()  # rare; cheaper than an LRU's bookkeeping on every call
            _lists_bytes = 0
        _lists_memo[key] = out
        _lists_bytes += size
    return out
