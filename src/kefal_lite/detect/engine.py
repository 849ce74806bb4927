"""evaluate(snapshot, state, catalog, now) -> (findings, new_state). No I/O, no clock.

Speed comes from asking each snapshot's questions once: `Facts` computes, on
first use only, the lookups predicates share (normalised names, one string of
all exe paths, one of all command lines), so most predicates answer with a
single C-level `in` on a joined string and walk the process list only on a hit.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Generic, TypeVar

import msgspec

from kefal_lite.detect import predicates as p
from kefal_lite.detect.model import Finding, Invariant
from kefal_lite.detect.state import COUNT_HISTORY, MAX_BASELINE, HostState
from kefal_lite.snapshot import Process, Snapshot

ADMIN_GROUPS = frozenset({"sudo", "wheel", "admin", "adm1n", "administrators"})
T = TypeVar("T")
# (subject, human description, evidence, severity override or None)
Hit = tuple[str, str, dict[str, Any], str | None]


@lru_cache(maxsize=65_536)  # the same few hundred names arrive from every host
def norm_name(name: str) -> str:
    """Process names compare case-insensitively and without a Windows `.exe`."""
    low = name.lower()
    return low[:-4] if low.endswith(".exe") else low


@lru_cache(maxsize=4_096)  # a handful of bind addresses recur on every host
def is_loopback(address: str | None) -> bool | None:
    """True for 127.0.0.0/8 and ::1, False for anything else, None when unknown."""
    if address is None or address == "":
        return None
    a = address.strip("[]").split("%", 1)[0].lower()
    return a.startswith("127.") or a in ("::1", "localhost") or a.startswith("::ffff:127.")


def _norm_exe(exe: str) -> str:
    # macOS resolves /tmp to /private/tmp: the same directory under another name.
    return exe[8:] if exe.startswith("/private/") else exe


def _epoch(ts: datetime) -> float:
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _proc_evidence(proc: Process) -> dict[str, Any]:
    ev: dict[str, Any] = {"pid": proc.pid, "name": proc.name, "user": proc.user}
    if proc.exe is not None:
        ev["exe"] = proc.exe
    if proc.cmdline:
        ev["cmdline"] = proc.cmdline[:512]
    return ev


class lazy(Generic[T]):  # noqa: N801 - used as a decorator, like functools.cached_property
    """functools.cached_property without its per-call lock (Python 3.11 takes an RLock on
    every first access, a measurable share of a 50 us evaluation)."""

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self.fn = fn
        self.name = fn.__name__

    def __get__(self, obj: Any, owner: Any = None) -> T:
        value = self.fn(obj)
        obj.__dict__[self.name] = value  # later reads skip the descriptor entirely
        return value


class Facts:
    """Lookups over one snapshot, each computed on first use."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.procs = snap.processes

    @lazy
    def names(self) -> list[str]:
        # One lower() over a joined string is far cheaper than one per process.
        joined = "\n".join([proc.name for proc in self.procs]).lower()
        names = joined.split("\n") if self.procs else []
        if len(names) != len(self.procs):  # a name with a newline in it: no shortcut
            names = [proc.name.lower() for proc in self.procs]
        if ".exe" in joined:
            names = [n[:-4] if n.endswith(".exe") else n for n in names]
        return names

    @lazy
    def max_cpu(self) -> float:
        return max([proc.cpu_percent for proc in self.procs], default=0.0)

    @lazy
    def name_set(self) -> frozenset[str]:
        return frozenset(self.names)

    @lazy
    def names_blob(self) -> str:
        return "\n" + "\n".join(self.names) + "\n"

    @lazy
    def exe_blob(self) -> str:
        blob = "\n" + "\n".join([x.exe for x in self.procs if x.exe]) + "\n"
        return blob.replace("\n/private/", "\n/") if "\n/private/" in blob else blob

    @lazy
    def cmd_blob(self) -> str:
        return "\n".join([x.cmdline for x in self.procs if x.cmdline]).lower()

    @lazy
    def listening_ports_set(self) -> frozenset[int]:
        return frozenset([lp.port for lp in self.snap.listening_ports])

    def novel_values(self, field: str) -> set[str]:
        cache = self.__dict__.setdefault("_novel", {})
        values: set[str] | None = cache.get(field)
        if values is None:
            values = cache[field] = _NOVEL_EXTRACTORS[field](self)
        return values


def _root_processes(f: Facts) -> set[str]:
    # Kernel threads (children of kthreadd, pid 2) rename themselves all the time
    # (kworker/1:2-events): they are not programs anyone started.
    return {
        n
        for n, proc in zip(f.names, f.procs, strict=True)
        if proc.user == "root" and proc.ppid != 2 and proc.pid != 2
    }


def _admin_accounts(f: Facts) -> set[str]:
    return {u.name for u in f.snap.users if u.uid == 0 or not ADMIN_GROUPS.isdisjoint(u.groups)}


def _outbound_peers(f: Facts) -> set[str]:
    # A connection whose local port is one this host listens on is inbound.
    listening = f.listening_ports_set
    return {
        f"{norm_name(c.process) if c.process else '?'}:{c.remote_port}"
        for c in f.snap.connections
        if c.local_port not in listening
    }


_NOVEL_EXTRACTORS: dict[str, Callable[[Facts], set[str]]] = {
    "listening_ports": lambda f: {f"{lp.port}/{lp.protocol}" for lp in f.snap.listening_ports},
    "listening_processes": lambda f: {
        norm_name(lp.process) for lp in f.snap.listening_ports if lp.process
    },
    "root_processes": _root_processes,
    "logged_in_users": lambda f: set(f.snap.logged_in_users),
    "admin_accounts": _admin_accounts,
    "authorized_keys": lambda f: {f"{k.user}:{k.fingerprint}" for k in f.snap.ssh_authorized_keys},
    "outbound_peers": _outbound_peers,
}
_NOVEL_SUBJECT = {
    "listening_ports": "port",
    "listening_processes": "process",
    "root_processes": "process",
    "logged_in_users": "user",
    "admin_accounts": "user",
    "authorized_keys": "key",
    "outbound_peers": "peer",
}


class Ctx:
    """One evaluation: facts, previous state, times, and state being built."""

    def __init__(self, facts: Facts, state: HostState, now: float, ts: float) -> None:
        self.f = facts
        self.state = state
        self.now = now
        self.ts = ts
        self.monotonic = state.last_ts is None or ts > state.last_ts
        self.cpu_streaks: dict[str, int] = {}
        self.invariant_id = ""
        self._new: dict[str, set[str]] = {}

    def new_values(self, field: str) -> set[str]:
        """Values of `field` this host has not shown before (computed once per field)."""
        new = self._new.get(field)
        if new is None:
            new = self._new[field] = self.f.novel_values(field).difference(
                self.state.baselines.get(field, ())
            )
        return new


# --- leaf predicates -----------------------------------------------------------------
# Each kind has a `prepare(leaf)` run once per catalog (sets, lowered names,
# prefixes) and a `check(prepared, ctx)` run per snapshot.


def _positions(names: list[str], name: str) -> list[int]:
    """Indexes of `name` in `names`, found with C-level list.index calls."""
    out: list[int] = []
    i = -1
    while True:
        try:
            i = names.index(name, i + 1)
        except ValueError:
            return out
        out.append(i)


def _prep_paths(
    pr: p.ProcessInSuspiciousPath,
) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    prefixes = tuple(path.rstrip("/\\") + ("\\" if "\\" in path else "/")
                     for path in pr.params.suspicious_paths)  # fmt: skip
    return prefixes, tuple("\n" + pre for pre in prefixes), pr.params.user


def _suspicious_path(
    prep: tuple[tuple[str, ...], tuple[str, ...], str | None], c: Ctx
) -> list[Hit]:
    prefixes, needles, user = prep
    blob = c.f.exe_blob
    if not any(needle in blob for needle in needles):
        return []
    hits: list[Hit] = []
    for name, proc in zip(c.f.names, c.f.procs, strict=True):
        if proc.exe and _norm_exe(proc.exe).startswith(prefixes):
            if user is None or proc.user == user:
                hits.append((f"process:{name}", f"{proc.name} runs {proc.exe}",
                             _proc_evidence(proc), None))  # fmt: skip
    return hits


def _prep_names(pr: p.ProcessNameIn) -> tuple[frozenset[str], frozenset[str] | None]:
    users = frozenset(pr.params.users) if pr.params.users else None
    return frozenset(norm_name(n) for n in pr.params.names), users


def _name_in(prep: tuple[frozenset[str], frozenset[str] | None], c: Ctx) -> list[Hit]:
    wanted, users = prep
    matched = c.f.name_set & wanted
    if not matched:
        return []
    hits: list[Hit] = []
    names, procs = c.f.names, c.f.procs
    for name in sorted(matched):
        for i in _positions(names, name):
            proc = procs[i]
            if users is None or proc.user in users:
                as_user = f" as {proc.user}" if proc.user else ""
                hits.append((f"process:{name}", f"{proc.name} runs{as_user}",
                             _proc_evidence(proc), None))  # fmt: skip
    return hits


def _cmdline_contains(prep: tuple[str, ...], c: Ctx) -> list[Hit]:
    blob = c.f.cmd_blob
    found = [pat for pat in prep if pat in blob]
    if not found:
        return []
    hits: list[Hit] = []
    for name, proc in zip(c.f.names, c.f.procs, strict=True):
        if proc.cmdline:
            low = proc.cmdline.lower()
            for pat in found:
                if pat in low:
                    ev = _proc_evidence(proc) | {"pattern": pat}
                    hits.append((f"process:{name}", f"{proc.name} command line has {pat!r}",
                                 ev, None))  # fmt: skip
                    break
    return hits


def _exe_deleted(prep: None, c: Ctx) -> list[Hit]:
    if " (deleted)\n" not in c.f.exe_blob:
        return []
    return [
        (f"process:{name}", f"{proc.name} runs deleted binary {proc.exe}",
         _proc_evidence(proc), None)
        for name, proc in zip(c.f.names, c.f.procs, strict=True)
        if proc.exe and proc.exe.endswith(" (deleted)")
    ]  # fmt: skip


def _kthread_masquerade(prep: None, c: Ctx) -> list[Hit]:
    if "\n[" not in c.f.names_blob:
        return []
    return [
        (f"process:{name}", f"{proc.name} looks like a kernel thread but runs {proc.exe}",
         _proc_evidence(proc), None)
        for name, proc in zip(c.f.names, c.f.procs, strict=True)
        if name.startswith("[") and name.endswith("]") and proc.exe
    ]  # fmt: skip


def _port_hit(lp: Any, what: str) -> Hit:
    where = f" on {lp.address}" if lp.address else ""
    owner = f"{lp.process} " if lp.process else ""
    ev = {"port": lp.port, "protocol": lp.protocol, "address": lp.address, "process": lp.process}
    if lp.pid is not None:
        ev["pid"] = lp.pid
    return (f"port:{lp.port}/{lp.protocol}", f"{owner}{what} {lp.port}/{lp.protocol}{where}",
            ev, None)  # fmt: skip


def _dedupe(hits: Iterable[Hit]) -> list[Hit]:
    seen: dict[str, Hit] = {}
    for hit in hits:
        seen.setdefault(hit[0], hit)
    return list(seen.values())


def _port_exposed(ports: frozenset[int], c: Ctx) -> list[Hit]:
    if ports.isdisjoint(c.f.listening_ports_set):
        return []
    return _dedupe(
        _port_hit(lp, "listens on")
        for lp in c.f.snap.listening_ports
        if lp.port in ports and is_loopback(lp.address) is False
    )


def _port_listening(ports: frozenset[int], c: Ctx) -> list[Hit]:
    if ports.isdisjoint(c.f.listening_ports_set):
        return []
    return _dedupe(
        _port_hit(lp, "listens on") for lp in c.f.snap.listening_ports if lp.port in ports
    )


def _port_owner_not_in(prep: tuple[int, frozenset[str]], c: Ctx) -> list[Hit]:
    port, allowed = prep
    if port not in c.f.listening_ports_set:
        return []
    return _dedupe(
        _port_hit(lp, "owns port")
        for lp in c.f.snap.listening_ports
        if lp.port == port and lp.process and norm_name(lp.process) not in allowed
    )


def _port_owner_in(owners: frozenset[str], c: Ctx) -> list[Hit]:
    if owners.isdisjoint(c.f.novel_values("listening_processes")):
        return []
    return _dedupe(
        _port_hit(lp, "listens on")
        for lp in c.f.snap.listening_ports
        if lp.process and norm_name(lp.process) in owners
    )


def _logged_in_user_in(users: frozenset[str], c: Ctx) -> list[Hit]:
    return [(f"user:{u}", f"{u} is logged in", {"user": u}, None)
            for u in dict.fromkeys(c.f.snap.logged_in_users) if u in users]  # fmt: skip


def _system_account_login(prep: tuple[int, frozenset[str]], c: Ctx) -> list[Hit]:
    max_uid, exempt = prep
    logged = set(c.f.snap.logged_in_users)
    if not logged:
        return []
    return [
        (f"user:{u.name}", f"{u.name} (uid {u.uid}) is logged in",
         {"user": u.name, "uid": u.uid, "shell": u.shell}, None)
        for u in c.f.snap.users
        if u.name in logged and u.uid is not None and u.uid <= max_uid and u.name not in exempt
    ]  # fmt: skip


def _uid0_not_root(prep: None, c: Ctx) -> list[Hit]:
    return [(f"user:{u.name}", f"{u.name} has uid 0", {"user": u.name, "uid": 0,
             "groups": u.groups, "shell": u.shell}, None)
            for u in c.f.snap.users if u.uid == 0 and u.name != "root"]  # fmt: skip


def _novel_value(prep: tuple[str, int], c: Ctx) -> list[Hit]:
    field, learning = prep
    if c.state.seen < learning:
        return []
    new = c.new_values(field)
    if not new:
        return []
    hits: list[Hit] = []
    kind = _NOVEL_SUBJECT[field]
    for value in sorted(new):
        ev: dict[str, Any] = {"field": field, "value": value}
        severity = None
        if field == "authorized_keys":
            user, _, fingerprint = value.partition(":")
            ev |= {"user": user, "fingerprint": fingerprint}
            comment = next((k.comment for k in c.f.snap.ssh_authorized_keys
                            if k.user == user and k.fingerprint == fingerprint), None)  # fmt: skip
            if comment:
                ev["comment"] = comment
            severity = "critical" if user == "root" else None
        hits.append(
            (f"{kind}:{value}", f"new {field.replace('_', ' ')[:-1]} {value}", ev, severity)
        )
    return hits


def _not_monotonic(prep: None, c: Ctx) -> list[Hit]:
    if c.monotonic or c.state.last_ts is None:
        return []
    ev = {"timestamp": _iso(c.ts), "last_timestamp": _iso(c.state.last_ts)}
    return [("timestamp", f"snapshot from {ev['timestamp']} is not newer than "
             f"{ev['last_timestamp']}", ev, None)]  # fmt: skip


def _clock_skew(seconds: int, c: Ctx) -> list[Hit]:
    sent = c.f.snap.sent_at
    host_time = _epoch(sent) if sent is not None else c.ts
    skew = host_time - c.now
    if abs(skew) <= seconds:
        return []
    ev = {"host_time": _iso(host_time), "server_time": _iso(c.now), "skew_seconds": round(skew)}
    return [("clock", f"host clock is {round(skew)} s off", ev, None)]


def _uptime_decreased(prep: None, c: Ctx) -> list[Hit]:
    prev = c.state.last_uptime
    up = c.f.snap.uptime_seconds
    if not c.monotonic or prev is None or up >= prev:
        return []
    booted = _iso(c.ts - up)
    kernel = c.f.snap.kernel
    ev = {
        "previous_uptime": prev,
        "uptime": up,
        "booted_at": booted,
        "previous_kernel": c.state.last_kernel,
        "kernel": kernel,
        "kernel_changed": c.state.last_kernel is not None and c.state.last_kernel != kernel,
    }
    note = f" (kernel {c.state.last_kernel} -> {kernel})" if ev["kernel_changed"] else ""
    return [(f"boot:{booted[:16]}", f"rebooted at {booted}{note}", ev, None)]  # fmt: skip


def _disappeared(names: tuple[str, ...], c: Ctx) -> list[Hit]:
    before = c.state.watched
    if not before:
        return []
    return [(f"process:{n}", f"{n} was running and is gone", {"name": n}, None)
            for n in names if n in before and n not in c.f.name_set]  # fmt: skip


def _sustained_cpu(prep: tuple[float, int], c: Ctx) -> list[Hit]:
    limit, needed = prep
    if c.f.max_cpu < limit:
        return []
    hot: dict[str, float] = {}
    for name, proc in zip(c.f.names, c.f.procs, strict=True):
        if proc.cpu_percent >= limit and proc.cpu_percent > hot.get(name, -1.0):
            hot[name] = proc.cpu_percent
    hits: list[Hit] = []
    prefix = c.invariant_id + "\x00"
    for name, cpu in hot.items():
        streak = c.state.cpu_streaks.get(prefix + name, 0) + 1
        c.cpu_streaks[prefix + name] = streak
        if streak >= needed:
            ev = {"name": name, "cpu_percent": cpu, "snapshots": streak}
            hits.append((f"process:{name}", f"{name} at {cpu:.0f}% CPU for {streak} snapshots",
                         ev, None))  # fmt: skip
    return hits


def _count_spike(prep: tuple[float, int], c: Ctx) -> list[Hit]:
    factor, min_baseline = prep
    history = c.state.counts
    if len(history) < 3:
        return []
    median = statistics.median(history)
    count = len(c.f.procs)
    if median < min_baseline or count <= factor * median:
        return []
    ev = {"count": count, "median": median, "factor": round(count / median, 2)}
    return [("processes", f"{count} processes, usually {median:g}", ev, None)]


def _none(leaf: Any) -> None:
    return None


_LEAVES: dict[type, tuple[Callable[[Any], Any], Callable[[Any, Ctx], list[Hit]]]] = {
    p.ProcessInSuspiciousPath: (_prep_paths, _suspicious_path),
    p.ProcessNameIn: (_prep_names, _name_in),
    p.ProcessCmdlineContains: (
        lambda pr: tuple(dict.fromkeys(x.lower() for x in pr.params.patterns)),
        _cmdline_contains,
    ),
    p.ProcessExeDeleted: (_none, _exe_deleted),
    p.ProcessMasqueradesKernelThread: (_none, _kthread_masquerade),
    p.PortExposed: (lambda pr: frozenset(pr.params.ports), _port_exposed),
    p.PortListening: (lambda pr: frozenset(pr.params.ports), _port_listening),
    p.PortOwnerNotIn: (
        lambda pr: (pr.params.port, frozenset(norm_name(n) for n in pr.params.allowed)),
        _port_owner_not_in,
    ),
    p.PortOwnerIn: (
        lambda pr: frozenset(norm_name(n) for n in pr.params.processes),
        _port_owner_in,
    ),
    p.LoggedInUserIn: (lambda pr: frozenset(pr.params.users), _logged_in_user_in),
    p.SystemAccountLogin: (
        lambda pr: (pr.params.max_uid, frozenset(pr.params.except_)),
        _system_account_login,
    ),
    p.Uid0NotRoot: (_none, _uid0_not_root),
    p.NovelValue: (lambda pr: (pr.params.field, pr.params.learning_snapshots), _novel_value),
    p.TimestampNotMonotonic: (_none, _not_monotonic),
    p.ClockSkew: (lambda pr: pr.params.seconds, _clock_skew),
    p.UptimeDecreased: (_none, _uptime_decreased),
    p.ProcessDisappeared: (
        lambda pr: tuple(dict.fromkeys(norm_name(n) for n in pr.params.names)),
        _disappeared,
    ),
    p.SustainedCpu: (lambda pr: (pr.params.percent, pr.params.snapshots), _sustained_cpu),
    p.ProcessCountSpike: (lambda pr: (pr.params.factor, pr.params.min_baseline), _count_spike),
}


class Catalog:
    """Invariants prepared for evaluation. Build once per change of the rule set."""

    def __init__(self, invariants: Sequence[Invariant]) -> None:
        self.invariants = tuple(invariants)
        self.by_id = {inv.id: inv for inv in self.invariants}
        self.on_ingest: list[tuple[Invariant, list[tuple[Callable[[Any, Ctx], list[Hit]], Any]]]]
        self.on_ingest = []
        watched: dict[str, None] = {}
        fields: dict[str, None] = {}
        for inv in self.invariants:
            if isinstance(inv.predicate, p.AgentSilent):
                continue  # a timer checks it, not ingest
            calls = []
            for leaf in p.leaves(inv.predicate):
                if isinstance(leaf, p.AgentSilent):
                    continue
                prepare, check = _LEAVES[type(leaf)]
                calls.append((check, prepare(leaf)))
                if isinstance(leaf, p.ProcessDisappeared):
                    watched.update(dict.fromkeys(norm_name(n) for n in leaf.params.names))
                if isinstance(leaf, p.NovelValue):
                    fields[leaf.params.field] = None
            self.on_ingest.append((inv, calls))
        self.watched = tuple(watched)
        self.novel_fields = tuple(fields)
        # Resolved when a snapshot no longer shows them (agent_silent: when any arrives).
        self.auto_resolve = frozenset(inv.id for inv in self.invariants if inv.state_like)
        self.silent_rules = tuple(
            inv for inv in self.invariants if isinstance(inv.predicate, p.AgentSilent)
        )


def evaluate(
    snapshot: Snapshot, state: HostState, catalog: Catalog, now: datetime
) -> tuple[list[Finding], HostState]:
    facts = Facts(snapshot)
    ts = _epoch(snapshot.timestamp)
    ctx = Ctx(facts, state, now.timestamp(), ts)
    findings: list[Finding] = []
    for inv, calls in catalog.on_ingest:
        ctx.invariant_id = inv.id
        if len(calls) == 1:
            fn, leaf = calls[0]
            hits = fn(leaf, ctx)
        else:
            hits = _dedupe(hit for fn, leaf in calls for hit in fn(leaf, ctx))
        for subject, description, evidence, severity in hits:
            findings.append(Finding(inv.id, subject, severity or inv.severity,  # type: ignore[arg-type]
                                    f"{inv.title}: {description}", evidence))  # fmt: skip
    return findings, _next_state(facts, state, catalog, ctx)


def _next_state(facts: Facts, state: HostState, catalog: Catalog, ctx: Ctx) -> HostState:
    baselines = state.baselines
    changed: dict[str, tuple[str, ...]] = {}
    for field in catalog.novel_fields:
        old = baselines.get(field, ())
        new = ctx.new_values(field)
        if new:
            # interned: the same "443/tcp" on ten thousand hosts is stored once
            merged = old + tuple(sorted(sys.intern(v) for v in new))
            changed[field] = merged[-MAX_BASELINE:]
    if changed:
        baselines = {**baselines, **changed}
    snap = facts.snap
    name_set = facts.name_set if catalog.watched else frozenset()
    return msgspec.structs.replace(
        state,
        seen=state.seen + 1,
        last_ts=ctx.ts if ctx.monotonic else state.last_ts,
        last_uptime=snap.uptime_seconds if ctx.monotonic else state.last_uptime,
        last_kernel=sys.intern(snap.kernel) if ctx.monotonic else state.last_kernel,
        baselines=baselines,
        watched=tuple(n for n in catalog.watched if n in name_set),
        cpu_streaks=ctx.cpu_streaks,
        counts=(*state.counts, len(snap.processes))[-COUNT_HISTORY:],
    )


def still_violated(
    catalog: Catalog,
    invariant_id: str,
    subject: str,
    snapshot: Snapshot,
    state: HostState,
    now: datetime,
) -> bool:
    """Whether this snapshot still shows the violation an incident was opened for: the check
    behind a remediation marked applied. Novelty asks whether the value is still present
    (it would not fire twice), sustained CPU whether the process is hot now."""
    inv = catalog.by_id.get(invariant_id)
    if inv is None:
        return False  # retired since: nothing left to check against
    ctx = Ctx(Facts(snapshot), state, now.timestamp(), _epoch(snapshot.timestamp))
    ctx.invariant_id = inv.id
    for leaf in p.leaves(inv.predicate):
        if isinstance(leaf, p.AgentSilent):
            continue  # a snapshot arrived: the agent is not silent
        if isinstance(leaf, p.NovelValue):
            kind, _, value = subject.partition(":")
            field = leaf.params.field
            if kind == _NOVEL_SUBJECT[field] and value in ctx.f.novel_values(field):
                return True
            continue
        if isinstance(leaf, p.SustainedCpu):
            name = subject.partition(":")[2]
            if any(n == name and proc.cpu_percent >= leaf.params.percent
                   for n, proc in zip(ctx.f.names, ctx.f.procs, strict=True)):  # fmt: skip
                return True
            continue
        prepare, check = _LEAVES[type(leaf)]
        if any(hit[0] == subject for hit in check(prepare(leaf), ctx)):
            return True
    return False
