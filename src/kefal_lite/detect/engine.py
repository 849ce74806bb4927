"""evaluate(snapshot, state, catalog, now) -> (findings, new_state). No I/O, no clock.

Lookups over the snapshot live in `facts`, novelty in `novelty`, the behaviour rules
of packs in `behaviour`; this module runs them, and folds the findings that concern the
same subject into one (one process, one incident, at the highest severity).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from kefal_lite.detect import behaviour, mcp, novelty
from kefal_lite.detect import predicates as p
from kefal_lite.detect.facts import (
    Facts,
    Scanner,
    Verdicts,
    epoch,
    is_loopback,
    iso,
    label,
    norm_exe,
    norm_name,
    proc_evidence,
    socket_evidence,
)
from kefal_lite.detect.model import SEVERITY_RANK, Finding, Invariant
from kefal_lite.detect.signals import ROUTINE_PARENTS
from kefal_lite.detect.state import COUNT_HISTORY, MAX_BASELINE, MAX_PENDING, HostState
from kefal_lite.snapshot import Process, Snapshot

__all__ = ["Catalog", "Detection", "evaluate", "is_loopback", "norm_name", "still_violated"]

# (subject, human description, evidence, severity override or None)
Hit = tuple[str, str, dict[str, Any], str | None]
Check = Callable[[Any, "Ctx"], list[Hit]]
Gate = tuple[frozenset[Any], ...]  # sets that must each meet the snapshot's tokens
Leaf = tuple[Check, Any, Gate | None]  # (check, prepared, the leaf's own gate)
DAY = 86_400.0


class Detection(msgspec.Struct, frozen=True, kw_only=True):
    """The operator's detection settings ([detection] in kefal.toml). The defaults here are
    a replay's: learning by count only; the server passes its configured values."""

    learning_minutes: int = 0
    learning_snapshots: int = 3
    novelty_persistence: int = 2
    baseline_days: int = 30


REPLAY = Detection()


class Ctx:
    """One evaluation: facts, previous state, times, and state being built."""

    def __init__(self, facts: Facts, state: HostState, now: float, ts: float,
                 scanner: Scanner, detection: Detection = REPLAY) -> None:  # fmt: skip
        self.f = facts
        self.scanner = scanner
        self._frags: frozenset[str] | None = None
        self._frag_at: list[int] = []
        self._frag_procs: list[tuple[str, Process, frozenset[str]]] | None = None
        self.prefix_hits: dict[str, bool] = {}  # name prefix (python*) -> any process has it
        self.state = state
        self.now = now
        self.ts = ts
        self.monotonic = state.last_ts is None or ts > state.last_ts
        self.cpu_streaks: dict[str, int] = {}
        self.invariant_id = ""
        self.detection = detection
        first = state.first_seen
        self.learning = state.seen < detection.learning_snapshots or (
            first is not None and now < first + detection.learning_minutes * 60
        )
        self._unknown: dict[str, novelty.Values] = {}
        self._ready: dict[str, set[str]] = {}
        self.pending: dict[str, dict[str, int]] = {}

    def frags(self) -> frozenset[str]:
        """The catalog's command-line fragments this snapshot contains (computed once)."""
        out = self._frags
        if out is None:
            out, self._frag_at = self.scanner.scan(self.f.procs)
            self._frags = out
        return out

    def frag_procs(self) -> list[tuple[str, Process, frozenset[str]]]:
        """(name, process, its fragments) of the processes whose command line holds any of
        the catalog's fragments, in snapshot order: the only ones a command-line rule needs
        to look at."""
        out = self._frag_procs
        if out is None:
            self.frags()
            names, procs, of = self.f.names, self.f.procs, self.scanner.of
            out = self._frag_procs = [(names[i], procs[i], of(procs[i].cmdline or ""))
                                      for i in self._frag_at]  # fmt: skip
        return out

    def unknown(self, field: str) -> novelty.Values:
        """Values of `field` not in the current baseline generation (computed once)."""
        out = self._unknown.get(field)
        if out is None:
            out = self._unknown[field] = novelty.present(self.f, field).difference(
                self.state.baselines.get(field, ())
            )
        return out

    def novelty_gates(self, fields: Iterable[str]) -> list[str]:
        """The gate tokens of the novelty fields with values ready to alert, computing every
        field's unknown values on the way (the state update needs them all anyway)."""
        f, baselines, known, out = self.f, self.state.baselines, self._unknown, []
        cache: dict[str, novelty.Values] = f.__dict__.setdefault("_present", {})
        for field in fields:
            unknown = known.get(field)
            if unknown is None:
                values = cache.get(field)
                if values is None:
                    values = novelty.present(f, field)
                unknown = known[field] = values.difference(baselines.get(field, ()))
            # Nothing unknown, or still learning: nothing can be ready (see `ready`).
            if unknown and not self.learning and self.ready(field):
                out.append(_NOVEL + field)
        return out

    def novel(self, field: str) -> novelty.Values:
        """Values of `field` in neither baseline generation."""
        unknown = self.unknown(field)
        previous = self.state.previous.get(field)
        return unknown.difference(previous) if unknown and previous else unknown

    def ready(self, field: str) -> set[str]:
        """Novel values seen in enough consecutive snapshots to alert (none while learning)."""
        out = self._ready.get(field)
        if out is None:
            out = set()
            waiting: dict[str, int] = {}
            # Usually every value is in the baseline: one difference, no further calls.
            unknown = self.unknown(field)
            novel = self.novel(field) if unknown and not self.learning else unknown
            if novel and not self.learning:
                before = self.state.pending.get(field, {})
                need = self.detection.novelty_persistence
                for value in novel:
                    count = before.get(value, 0) + 1
                    if count >= need:
                        out.add(value)
                    elif len(waiting) < MAX_PENDING:
                        waiting[value] = count
            self._ready[field] = out
            if waiting:
                self.pending[field] = waiting
        return out


# --- leaf predicates -----------------------------------------------------------------
# Each kind has a `prepare(leaf)` run once per catalog (sets, lowered names,
# prefixes) and a `check(prepared, ctx)` run per snapshot.


PathPrep = tuple[str | None, Verdicts[str | None]]


def _prep_paths(pr: p.ProcessInSuspiciousPath) -> PathPrep:
    prefixes = tuple(path.rstrip("/\\") + ("\\" if "\\" in path else "/")
                     for path in pr.params.suspicious_paths)  # fmt: skip
    # Each distinct binary is judged once per catalog (hosts run the same few dozen).
    verdicts: Verdicts[str | None] = Verdicts(
        lambda exe: bool(exe) and norm_exe(exe or "").startswith(prefixes)
    )
    return pr.params.user, verdicts


def _suspicious_path(prep: PathPrep, c: Ctx) -> list[Hit]:
    user, verdicts = prep
    bad = verdicts.flagged(c.f.exe_set)
    if not bad:
        return []
    hits: list[Hit] = []
    for name, proc in zip(c.f.names, c.f.procs, strict=True):
        if proc.exe in bad:
            if user is None or proc.user == user:
                hits.append((f"process:{name}", f"{label(proc)} runs {proc.exe}",
                             proc_evidence(proc, c.f), None))  # fmt: skip
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
    for name in sorted(matched):
        for proc in c.f.procs_named(name):
            if users is None or proc.user in users:
                exe = f" {proc.exe}" if proc.exe else ""
                hits.append((f"process:{name}", f"{label(proc)} runs{exe}",
                             proc_evidence(proc, c.f), None))  # fmt: skip
    return hits


def _cmdline_contains(prep: tuple[str, ...], c: Ctx) -> list[Hit]:
    frags = c.frags()
    if frags.isdisjoint(prep):
        return []
    found = [pat for pat in prep if pat in frags]
    hits: list[Hit] = []
    for name, proc, own in c.frag_procs():
        if proc.cmdline:
            for pat in found:
                if pat in own:
                    ev = proc_evidence(proc, c.f) | {"pattern": pat}
                    what = f"{label(proc)} has {pat!r} in its command line"
                    hits.append((f"process:{name}", what, ev, None))
                    break
    return hits


def _prep_deleted(leaf: Any) -> Verdicts[str | None]:
    # Each distinct binary judged once per catalog: the exe set is built for other rules
    # anyway, and two set operations beat joining every path into a blob to search.
    return Verdicts(lambda exe: bool(exe) and (exe or "").endswith(" (deleted)"))


def _exe_deleted(prep: Verdicts[str | None], c: Ctx) -> list[Hit]:
    if not prep.flagged(c.f.exe_set):
        return []
    return [
        (f"process:{name}", f"{label(proc)} runs deleted binary {proc.exe}",
         proc_evidence(proc, c.f), None)
        for name, proc in zip(c.f.names, c.f.procs, strict=True)
        if proc.exe and proc.exe.endswith(" (deleted)")
    ]  # fmt: skip


def _prep_kthread(leaf: Any) -> Verdicts[str]:
    # Each distinct name judged once per catalog: two set operations a snapshot.
    return Verdicts(lambda name: name.startswith("[") and name.endswith("]"))


def _kthread_masquerade(prep: Verdicts[str], c: Ctx) -> list[Hit]:
    if not prep.flagged(c.f.name_set):
        return []
    return [
        (f"process:{name}", f"{label(proc)} looks like a kernel thread but runs {proc.exe}",
         proc_evidence(proc, c.f), None)
        for name, proc in zip(c.f.names, c.f.procs, strict=True)
        if name.startswith("[") and name.endswith("]") and proc.exe
    ]  # fmt: skip


def _port_hit(lp: Any, what: str, c: Ctx) -> Hit:
    where = f" on {lp.address}" if lp.address else ""
    proc = c.f.owner_of(lp.pid, lp.process)
    owner = f"{label(proc)} " if proc else f"{lp.process} " if lp.process else ""
    ev = socket_evidence(lp)
    if proc is not None:
        ev["owner"] = proc_evidence(proc, c.f)
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
        _port_hit(lp, "listens on", c)
        for lp in c.f.snap.listening_ports
        if lp.port in ports and is_loopback(lp.address) is False
    )


def _port_listening(ports: frozenset[int], c: Ctx) -> list[Hit]:
    if ports.isdisjoint(c.f.listening_ports_set):
        return []
    return _dedupe(
        _port_hit(lp, "listens on", c) for lp in c.f.snap.listening_ports if lp.port in ports
    )


def _port_owner_not_in(prep: tuple[int, frozenset[str]], c: Ctx) -> list[Hit]:
    port, allowed = prep
    if port not in c.f.listening_ports_set:
        return []
    return _dedupe(
        _port_hit(lp, "owns port", c)
        for lp in c.f.snap.listening_ports
        if lp.port == port and lp.process and norm_name(lp.process) not in allowed
    )


def _port_owner_in(owners: frozenset[str], c: Ctx) -> list[Hit]:
    if owners.isdisjoint(novelty.present(c.f, "listening_processes")):
        return []
    return _dedupe(
        _port_hit(lp, "listens on", c)
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


def _novel_value(prep: tuple[str, int, str], c: Ctx) -> list[Hit]:
    field, learning, declared = prep
    if c.state.seen < learning:
        return []
    ready = c._ready.get(field)
    if ready is None:
        ready = c.ready(field)
    return novelty.hits(field, ready, declared, c) if ready else []


def _not_monotonic(prep: None, c: Ctx) -> list[Hit]:
    if c.monotonic or c.state.last_ts is None:
        return []
    ev = {"timestamp": iso(c.ts), "last_timestamp": iso(c.state.last_ts)}
    return [("timestamp", f"snapshot from {ev['timestamp']} is not newer than "
             f"{ev['last_timestamp']}", ev, None)]  # fmt: skip


def _clock_skew(seconds: int, c: Ctx) -> list[Hit]:
    sent = c.f.snap.sent_at
    host_time = epoch(sent) if sent is not None else c.ts
    skew = host_time - c.now
    if abs(skew) <= seconds:
        return []
    ev = {"host_time": iso(host_time), "server_time": iso(c.now), "skew_seconds": round(skew)}
    return [("clock", f"host clock is {round(skew)} s off", ev, None)]


def _uptime_decreased(prep: None, c: Ctx) -> list[Hit]:
    prev = c.state.last_uptime
    up = c.f.snap.uptime_seconds
    if not c.monotonic or prev is None or up >= prev:
        return []
    booted = iso(c.ts - up)
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


def _disappeared(names: frozenset[str], c: Ctx) -> list[Hit]:
    before = c.state.watched  # few: the watched names that ran last time
    if not before:
        return []
    return [(f"process:{n}", f"{n} was running and is gone", {"name": n}, None)
            for n in before if n in names and n not in c.f.name_set]  # fmt: skip


SUSTAINED_MIN_STEP = 30.0  # seconds of host time between snapshots that count for a streak


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
    # "Sustained" is minutes, not samples: an agent on a fast interval (or a burst of
    # replayed snapshots) must not turn a few busy seconds (a backup hashing a file) into
    # an alert, so a snapshot less than MIN_STEP after the previous one extends no streak.
    last = c.state.last_ts
    step = 1 if last is None or c.ts - last >= SUSTAINED_MIN_STEP else 0
    for name, cpu in hot.items():
        streak = max(1, c.state.cpu_streaks.get(prefix + name, 0) + step)
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
    p.ProcessExeDeleted: (_prep_deleted, _exe_deleted),
    p.ProcessMasqueradesKernelThread: (_prep_kthread, _kthread_masquerade),
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
    # the declared severity is filled in by Catalog: it needs the invariant, not the leaf
    p.NovelValue: (lambda pr: (pr.params.field, pr.params.learning_snapshots), _novel_value),
    p.TimestampNotMonotonic: (_none, _not_monotonic),
    p.ClockSkew: (lambda pr: pr.params.seconds, _clock_skew),
    p.UptimeDecreased: (_none, _uptime_decreased),
    p.ProcessDisappeared: (
        lambda pr: frozenset(norm_name(n) for n in pr.params.names),
        _disappeared,
    ),
    p.SustainedCpu: (lambda pr: (pr.params.percent, pr.params.snapshots), _sustained_cpu),
    p.ProcessCountSpike: (lambda pr: (pr.params.factor, pr.params.min_baseline), _count_spike),
}
_LEAVES.update(behaviour.LEAVES)
_LEAVES.update(mcp.LEAVES)


def _no_needles(leaf: Any) -> tuple[str, ...]:
    return ()


# The command-line fragments each kind asks about, gathered into the catalog's Scanner.
_NEEDLES: dict[type, Callable[[Any], Iterable[str]]] = {
    p.ProcessCmdlineContains: lambda pr: [x.lower() for x in pr.params.patterns],
    **behaviour.NEEDLES,
}


class Catalog:
    """Invariants prepared for evaluation. Build once per change of the rule set."""

    def __init__(self, invariants: Sequence[Invariant], detection: Detection = REPLAY) -> None:
        self.invariants = tuple(invariants)
        self.detection = detection
        self.by_id = {inv.id: inv for inv in self.invariants}
        # (rule, its check and prepared leaf, or None and its leaves as (check, prepared,
        # leaf gate) when it has several, whether hits are sentences, the rule's gate)
        self.on_ingest: list[tuple[Invariant, Check | None, Any, tuple[Leaf, ...] | None,
                                   bool, Gate | None]] = []  # fmt: skip
        prefixes: dict[str, None] = {}
        watched: dict[str, None] = {}
        fields: dict[str, None] = {}
        needles: list[str] = []
        for inv in self.invariants:
            if isinstance(inv.predicate, p.AgentSilent):
                continue  # a timer checks it, not ingest
            calls: list[Leaf] = []
            sentence = False  # novelty hits are whole sentences, others follow the rule's title
            gates: list[list[set[Any]] | None] = []
            for leaf in p.leaves(inv.predicate):
                if isinstance(leaf, p.AgentSilent):
                    continue
                prepare, check = _LEAVES[type(leaf)]
                prepared = prepare(leaf)
                needles += _NEEDLES.get(type(leaf), _no_needles)(leaf)
                if isinstance(leaf, p.NovelValue):
                    fields[leaf.params.field] = None
                    prepared = (*prepared, inv.severity)
                    sentence = True
                if isinstance(leaf, p.ProcessDisappeared):
                    watched.update(dict.fromkeys(norm_name(n) for n in leaf.params.names))
                gate = _gate(leaf, prepared, prefixes)
                gates.append(gate)
                # A leaf of an any_of is skipped when its own gate is closed: every group of a
                # command-line conjunction must show (the rule's gate holds only one per leaf).
                groups = prepared if isinstance(leaf, p.ProcessCmdlineAll) else gate
                calls.append((check, prepared, None if groups is None
                              else tuple(frozenset(x) for x in groups)))  # fmt: skip
            if len(calls) == 1:
                self.on_ingest.append((inv, calls[0][0], calls[0][1], None, sentence,
                                       _rule_gate(gates)))  # fmt: skip
            else:
                self.on_ingest.append((inv, None, None, tuple(calls), sentence,
                                       _rule_gate(gates)))  # fmt: skip
        self.prefixes = tuple((x, "\n" + x) for x in prefixes)
        self.no_prefix = dict.fromkeys(prefixes, False)
        self._prefix_of: dict[str, tuple[str, ...]] = {}
        self.prefixed: Verdicts[str] = Verdicts(lambda name: bool(self.prefixes_of(name)))
        self.scanner = Scanner(needles)
        self.watched = tuple(watched)
        self.watched_set = frozenset(watched)
        self.novel_fields = tuple(fields)
        # Resolved when a snapshot no longer shows them (agent_silent: when any arrives).
        self.auto_resolve = frozenset(inv.id for inv in self.invariants if inv.state_like)
        # Rules whose command is also what scheduled audits run (find -perm -4000 from a
        # cron security job): under a routine parent it is a low notice, said so in evidence.
        self.routine_ok = frozenset(
            inv.id for inv in self.invariants if inv.metadata.get("routine_parent_benign") == "true"
        )
        self.silent_rules = tuple(
            inv for inv in self.invariants if isinstance(inv.predicate, p.AgentSilent)
        )

    def prefixes_of(self, name: str) -> tuple[str, ...]:
        """The rules' name prefixes (python*, php*) this process name starts with."""
        out = self._prefix_of.get(name)
        if out is None:
            if len(self._prefix_of) >= Verdicts.MAX:
                self._prefix_of.clear()  # rare; cheaper than an LRU's bookkeeping
            out = self._prefix_of[name] = tuple(x for x, _ in self.prefixes if name.startswith(x))
        return out


def evaluate(
    snapshot: Snapshot, state: HostState, catalog: Catalog, now: datetime
) -> tuple[list[Finding], HostState]:
    facts = Facts(snapshot)
    ts = epoch(snapshot.timestamp)
    ctx = Ctx(facts, state, now.timestamp(), ts, catalog.scanner, catalog.detection)
    findings: list[Finding] = []
    # Community rules never fold into (or lead) a builtin's finding: a shared rule must not
    # change when or whether a builtin fires, so each keeps its own incident.
    shared: list[Finding] = []
    tokens: set[Any] | None = None
    for inv, fn, prepared, leaves, sentence, gate in catalog.on_ingest:
        if gate is not None:
            # The shared pre-filter: a rule whose names, fragments, ports or connection
            # owners this snapshot does not show cannot match, and is skipped without a call.
            if tokens is None:
                tokens = _tokens(ctx, catalog)
            if gate[0].isdisjoint(tokens) or (len(gate) > 1 and gate[1].isdisjoint(tokens)):
                continue
        ctx.invariant_id = inv.id
        if fn is not None:
            hits = fn(prepared, ctx)
        else:
            hits = []
            for check, prep, needs in leaves:  # type: ignore[union-attr]
                if needs is not None:
                    if tokens is None:
                        tokens = _tokens(ctx, catalog)
                    for x in needs:
                        if x.isdisjoint(tokens):
                            break
                    else:
                        hits += check(prep, ctx)
                else:
                    hits += check(prep, ctx)
            if len(hits) > 1:
                hits = _dedupe(hits)
        if hits and inv.id in catalog.routine_ok:
            hits = [_routine(hit, facts) for hit in hits]
        for subject, description, evidence, severity in hits:
            title = description if sentence else f"{inv.title}: {description}"
            (shared if inv.source == "community" else findings).append(
                Finding(inv.id, subject, severity or inv.severity,  # type: ignore[arg-type]
                        title, evidence))  # fmt: skip
    if len(findings) > 1:
        findings = _merge(findings)
    return findings + shared, _next_state(facts, state, catalog, ctx)


_PREFIX = "\x00prefix:"  # a token no name or command-line fragment can be


_NOVEL = "\x00novel:"  # a novelty field with values ready to alert
_CONN = "\x00conn:"  # the owner of an outbound connection
_CONN_UNKNOWN = "\x00conn?"  # an outbound connection whose owner the agent did not name


def _gate(leaf: Any, prepared: Any, prefixes: dict[str, None]) -> list[set[Any]] | None:
    """What a snapshot must show for this leaf to match at all, as sets that must each meet
    the snapshot's tokens (names, command-line fragments, listening ports, name prefixes,
    connection owners), or None when any snapshot might."""
    if isinstance(leaf, p.ProcessNameIn):
        return [set(prepared[0])]
    if isinstance(leaf, p.ProcessCmdlineContains):
        return [set(prepared)]
    if isinstance(leaf, p.ProcessCmdlineAll):
        return [set(group) for group in prepared[:2]]
    if isinstance(leaf, p.PortExposed | p.PortListening):
        return [set(prepared)]
    if isinstance(leaf, p.PortOwnerNotIn):
        return [{prepared[0]}]
    if isinstance(leaf, p.ProcessOutbound):
        exact, pre = prepared[0]
        prefixes.update(dict.fromkeys(pre))
        return [{_CONN + x for x in (*exact, *pre)} | {_CONN_UNKNOWN}]
    if isinstance(leaf, p.ProcessParentIn):
        (kids, kid_pre), (parents, parent_pre), _ = prepared
        prefixes.update(dict.fromkeys((*kid_pre, *parent_pre)))
        return [set(parents) | {_PREFIX + x for x in parent_pre},
                set(kids) | {_PREFIX + x for x in kid_pre}]  # fmt: skip
    if isinstance(leaf, p.NovelValue):
        # Novelty fires only on values that persisted: `_tokens` names the fields that have
        # some, so the (many) novelty rules of a quiet host are skipped without a call.
        return [{_NOVEL + leaf.params.field}]
    needles = behaviour.GATES.get(type(leaf))
    return [set(needles)] if needles is not None else None


def _rule_gate(gates: list[list[set[Any]] | None]) -> tuple[frozenset[Any], ...] | None:
    if not gates or any(g is None for g in gates):
        return None
    if len(gates) == 1:
        return tuple(frozenset(x) for x in gates[0])  # type: ignore[union-attr]
    # any_of: one leaf must pass, so one of the leaves' first sets must meet the tokens
    return (frozenset().union(*(g[0] for g in gates if g is not None)),)


def _tokens(ctx: Ctx, catalog: Catalog) -> set[Any]:
    f = ctx.f
    out: set[Any] = set(f.name_set)
    out.update(ctx.frags())
    out.update(f.listening_ports_set)
    # Which rule prefixes (python*) the names start with: each distinct name is judged
    # once per catalog, a snapshot pays two set operations.
    known = ctx.prefix_hits = dict(catalog.no_prefix)  # the rules' own prefix questions
    for name in catalog.prefixed.flagged(f.name_set):
        for x in catalog.prefixes_of(name):
            known[x] = True
            out.add(_PREFIX + x)
    out.update(ctx.novelty_gates(catalog.novel_fields))
    for conn in f.outbound:
        if not conn.process:
            out.add(_CONN_UNKNOWN)
            continue
        name = norm_name(conn.process)
        out.add(_CONN + name)
        out.update([_CONN + x for x in catalog.prefixes_of(name)])
    return out


def _routine(hit: Hit, facts: Facts) -> Hit:
    """A process finding under a routine parent (cron, the package manager, configuration
    management) becomes a low notice with that parent as evidence for benign."""
    proc = facts.by_pid.get(hit[2].get("pid", -1))
    if proc is None:
        return hit
    for anc in facts.ancestors(proc, 4):
        if norm_name(anc.name) in ROUTINE_PARENTS:
            note = f"started under {anc.name} (pid {anc.pid}), a routine parent"
            return (hit[0], hit[1], {**hit[2], "benign": [note]}, "low")
    return hit


def _merge_key(f: Finding) -> str:
    # A novel peer "peer:python3:4444" is about the process python3.
    subject = f.subject
    if subject.startswith("peer:"):
        return "process:" + subject[5:].rpartition(":")[0]
    # A new listener's port and its process, new together, are one socket.
    if f.evidence.get("field") == "listening_processes":
        sock = f.evidence.get("socket") or {}
        return f"port:{sock.get('port')}/{sock.get('protocol')}"
    return subject


def _merge(findings: list[Finding]) -> list[Finding]:
    """One subject, one finding: the highest severity leads (the first on a tie) and carries
    every rule's title and evidence, so one process opens one incident."""
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(_merge_key(f), []).append(f)
    if len(groups) == len(findings):
        return findings
    out: list[Finding] = []
    for group in groups.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        lead = max(group, key=lambda f: SEVERITY_RANK[f.severity])  # max keeps the first
        rules = [{"invariant_id": f.invariant_id, "severity": f.severity, "title": f.title}
                 | ({} if f is lead else {"evidence": f.evidence}) for f in group]  # fmt: skip
        out.append(Finding(lead.invariant_id, lead.subject, lead.severity, lead.title,
                           {**lead.evidence, "rules": rules}))  # fmt: skip
    return out


def _next_state(facts: Facts, state: HostState, catalog: Catalog, ctx: Ctx) -> HostState:
    det = catalog.detection
    first_seen = state.first_seen
    if first_seen is None:
        # A state from before time-based learning has learned already: do not start over.
        first_seen = ctx.now if state.seen == 0 else ctx.now - det.learning_minutes * 60
    generation = state.generation_start if state.generation_start is not None else ctx.now
    baselines = state.baselines
    previous = state.previous
    changed: dict[str, tuple[str, ...]] = {}
    for field in catalog.novel_fields:
        unknown = ctx.unknown(field)
        if not unknown:
            continue
        if ctx.learning:
            add = unknown
        else:
            # values from the previous generation are copied over; novel ones join once
            # they persisted (and alerted)
            add = unknown.difference(ctx.novel(field)) | ctx.ready(field)
        if add:
            # interned: the same "443/tcp" on ten thousand hosts is stored once
            merged = baselines.get(field, ()) + tuple(sorted(sys.intern(v) for v in add))
            changed[field] = merged[-MAX_BASELINE:]
    if changed:
        baselines = {**baselines, **changed}
    if ctx.now - generation >= det.baseline_days * DAY:
        previous, baselines, generation = baselines, {}, ctx.now
    snap = facts.snap
    name_set = facts.name_set if catalog.watched else frozenset()
    return msgspec.structs.replace(
        state,
        seen=state.seen + 1,
        last_ts=ctx.ts if ctx.monotonic else state.last_ts,
        last_uptime=snap.uptime_seconds if ctx.monotonic else state.last_uptime,
        last_kernel=sys.intern(snap.kernel) if ctx.monotonic else state.last_kernel,
        baselines=baselines,
        watched=tuple(sorted(catalog.watched_set.intersection(name_set))),
        cpu_streaks=ctx.cpu_streaks,
        counts=(*state.counts, len(snap.processes))[-COUNT_HISTORY:],
        first_seen=first_seen,
        pending=ctx.pending,
        previous=previous,
        generation_start=generation,
    )


def learning(state: HostState, detection: Detection, now: float) -> tuple[float | None, bool]:
    """(when learning ends by time, whether the host still learns) for the host's page.
    The time is None before the first snapshot; a host learns until the count is also met."""
    if state.first_seen is None:
        return None, True
    until = state.first_seen + detection.learning_minutes * 60
    return until, now < until or state.seen < detection.learning_snapshots


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
    ctx = Ctx(Facts(snapshot), state, now.timestamp(), epoch(snapshot.timestamp),
              catalog.scanner, catalog.detection)  # fmt: skip
    ctx.invariant_id = inv.id
    for leaf in p.leaves(inv.predicate):
        if isinstance(leaf, p.AgentSilent):
            continue  # a snapshot arrived: the agent is not silent
        if isinstance(leaf, p.NovelValue):
            field = leaf.params.field
            value = novelty.subject_value(field, subject)
            if value is not None and value in novelty.present(ctx.f, field):
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
