"""Verifying a contributed invariant: constructive, then red team. Pure: no I/O.

1. Constructive: from the params, build a snapshot sequence that should violate
   the predicate and one that should not; it must fire on the first only.
2. Red team: the shipped corpus of ordinary hosts must not fire (any firing
   rejects, naming the snapshot); the obvious evasions for the kind are tried
   and reported (advisory: an evasion that slips does not reject).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from kefal_lite.detect import corpus
from kefal_lite.detect import predicates as p
from kefal_lite.detect.engine import Catalog, evaluate
from kefal_lite.detect.model import Invariant
from kefal_lite.detect.state import HostState
from kefal_lite.snapshot import (
    AuthorizedKey,
    Connection,
    ListeningPort,
    LocalUser,
    Process,
    Snapshot,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LEARN = 4  # clean snapshots before the decisive one: longer than the default learning period


class CaseResult(msgspec.Struct):
    fired_on_violation: bool
    fired_on_clean: bool
    violation: str
    clean: str


class RedTeam(msgspec.Struct):
    false_positives: list[dict[str, Any]]
    evasions: list[dict[str, Any]]
    corpus_snapshots: int


class Report(msgspec.Struct):
    constructive: CaseResult | dict[str, Any]
    red_team: RedTeam
    llm: dict[str, Any] | None = None
    passed: bool = False
    reasons: list[str] = []


def _base(i: int, **changes: Any) -> Snapshot:
    snap = Snapshot(
        agent_id="verify", timestamp=T0 + timedelta(minutes=i), hostname="verify-host",
        os="linux", kernel="6.8.0-verify", uptime_seconds=100_000 + 60 * i,
        ip_addresses=["192.0.2.10"],
        processes=[Process(pid=1, name="systemd", user="root", exe="/usr/lib/systemd/systemd", ppid=0),
                   Process(pid=400, name="sshd", user="root", exe="/usr/sbin/sshd", cmdline="sshd -D", ppid=1)] +
                  [Process(pid=500 + n, name=f"worker{n}", user="www-data", exe="/usr/bin/worker",
                           cmdline="worker", ppid=1) for n in range(30)],
        listening_ports=[ListeningPort(port=22, process="sshd", address="0.0.0.0")],
        logged_in_users=["alice"],
        users=[LocalUser(name="root", uid=0, groups=["root"], shell="/bin/bash"),
               LocalUser(name="alice", uid=1000, groups=["alice"], shell="/bin/bash")],
        ssh_authorized_keys=[AuthorizedKey(user="alice", fingerprint="SHA256:verify")],
        connections=[Connection(remote_address="192.0.2.99", remote_port=443, local_port=40000,
                                process="curl")],
    )  # fmt: skip
    return msgspec.structs.replace(snap, **changes) if changes else snap


def _with_proc(i: int, proc: Process) -> Snapshot:
    base = _base(i)
    return msgspec.structs.replace(base, processes=[*base.processes, proc])


def _with_port(i: int, port: ListeningPort) -> Snapshot:
    base = _base(i)
    return msgspec.structs.replace(base, listening_ports=[*base.listening_ports, port])


def _learn(last: Snapshot) -> list[Snapshot]:
    return [_base(i) for i in range(LEARN)] + [msgspec.structs.replace(last, timestamp=T0 + timedelta(minutes=LEARN),
                                                                       uptime_seconds=100_000 + 60 * LEARN)]  # fmt: skip


Pair = tuple[list[Snapshot], list[Snapshot]]  # violating sequence, clean sequence


def _synthesize(leaf: p.LeafPredicate) -> Pair | None:  # noqa: C901 - one case per kind
    if isinstance(leaf, p.ProcessInSuspiciousPath):
        user = leaf.params.user or "nobody"
        path = leaf.params.suspicious_paths[0]
        sep = "\\" if "\\" in path else "/"
        bad = Process(pid=9000, name="dropper", user=user, exe=path.rstrip("/\\") + sep + "dropper")
        good = Process(pid=9000, name="dropper", user=user, exe="/usr/local/bin/dropper")
        return _learn(_with_proc(0, bad)), _learn(_with_proc(0, good))
    if isinstance(leaf, p.ProcessNameIn):
        user = leaf.params.users[0] if leaf.params.users else "nobody"
        bad = Process(pid=9000, name=leaf.params.names[0], user=user, exe="/usr/bin/x")
        return _learn(_with_proc(0, bad)), _learn(_base(0))
    if isinstance(leaf, p.ProcessCmdlineContains):
        bad = Process(
            pid=9000,
            name="sh",
            user="nobody",
            exe="/bin/sh",
            cmdline=f"sh -c '{leaf.params.patterns[0]}'",
        )
        return _learn(_with_proc(0, bad)), _learn(_base(0))
    if isinstance(leaf, p.ProcessExeDeleted):
        return (
            _learn(
                _with_proc(
                    0, Process(pid=9000, name="app", user="nobody", exe="/usr/bin/app (deleted)")
                )
            ),
            _learn(_with_proc(0, Process(pid=9000, name="app", user="nobody", exe="/usr/bin/app"))),
        )
    if isinstance(leaf, p.ProcessMasqueradesKernelThread):
        return (
            _learn(
                _with_proc(0, Process(pid=9000, name="[kworker/9:9]", user="root", exe="/tmp/k"))
            ),
            _learn(
                _with_proc(
                    0, Process(pid=9000, name="[kworker/9:9]", user="root", exe=None, ppid=2)
                )
            ),
        )
    if isinstance(leaf, p.PortExposed | p.PortListening):
        port = leaf.params.ports[0]
        addr = "0.0.0.0" if isinstance(leaf, p.PortExposed) else "127.0.0.1"
        clean = (
            _with_port(0, ListeningPort(port=port, process="svc", address="127.0.0.1"))
            if isinstance(leaf, p.PortExposed)
            else _base(0)
        )
        return _learn(_with_port(0, ListeningPort(port=port, process="svc", address=addr))), _learn(
            clean
        )
    if isinstance(leaf, p.PortOwnerNotIn):
        base = _base(0)
        others = [lp for lp in base.listening_ports if lp.port != leaf.params.port]
        stranger = "impostor"
        while stranger in {a.lower() for a in leaf.params.allowed}:
            stranger += "x"
        impostor = msgspec.structs.replace(
            base,
            listening_ports=[
                *others,
                ListeningPort(port=leaf.params.port, process=stranger, address="0.0.0.0"),
            ],
        )
        rightful = msgspec.structs.replace(
            base,
            listening_ports=[
                *others,
                ListeningPort(
                    port=leaf.params.port, process=leaf.params.allowed[0], address="0.0.0.0"
                ),
            ],
        )
        return _learn(impostor), _learn(rightful)
    if isinstance(leaf, p.PortOwnerIn):
        return _learn(
            _with_port(
                0, ListeningPort(port=4444, process=leaf.params.processes[0], address="0.0.0.0")
            )
        ), _learn(_base(0))
    if isinstance(leaf, p.LoggedInUserIn):
        return _learn(_base(0, logged_in_users=["alice", leaf.params.users[0]])), _learn(_base(0))
    if isinstance(leaf, p.SystemAccountLogin):
        name = "svc-verify"
        while name in leaf.params.except_:
            name += "x"
        bad_user = LocalUser(
            name=name, uid=min(leaf.params.max_uid, 50), groups=[], shell="/bin/sh"
        )
        good_user = LocalUser(name=name, uid=leaf.params.max_uid + 1, groups=[], shell="/bin/sh")
        base = _base(0)
        return (
            _learn(
                msgspec.structs.replace(base, users=[*base.users, bad_user], logged_in_users=[name])
            ),
            _learn(
                msgspec.structs.replace(
                    base, users=[*base.users, good_user], logged_in_users=[name]
                )
            ),
        )
    if isinstance(leaf, p.Uid0NotRoot):
        base = _base(0)
        return (
            _learn(
                msgspec.structs.replace(base, users=[*base.users, LocalUser(name="toor", uid=0)])
            ),
            _learn(
                msgspec.structs.replace(base, users=[*base.users, LocalUser(name="toor", uid=1001)])
            ),
        )
    if isinstance(leaf, p.NovelValue):
        learning = leaf.params.learning_snapshots
        seq = [_base(i) for i in range(learning)]
        base = _base(learning)
        novel: dict[str, dict[str, Any]] = {
            "listening_ports": {
                "listening_ports": [
                    *base.listening_ports,
                    ListeningPort(port=31337, process="sshd", address="0.0.0.0"),
                ]
            },
            "listening_processes": {
                "listening_ports": [
                    *base.listening_ports,
                    ListeningPort(port=22, process="newd", address="::"),
                ]
            },
            "root_processes": {
                "processes": [
                    *base.processes,
                    Process(pid=9000, name="newroot", user="root", exe="/usr/bin/newroot"),
                ]
            },
            "logged_in_users": {"logged_in_users": ["alice", "mallory"]},
            "admin_accounts": {
                "users": [*base.users, LocalUser(name="mallory", uid=1001, groups=["sudo"])]
            },
            "authorized_keys": {
                "ssh_authorized_keys": [
                    *base.ssh_authorized_keys,
                    AuthorizedKey(user="alice", fingerprint="SHA256:new"),
                ]
            },
            "outbound_peers": {
                "connections": [
                    *base.connections,
                    Connection(
                        remote_address="203.0.113.9",
                        remote_port=4444,
                        local_port=40001,
                        process="python3",
                    ),
                ]
            },
        }
        novel["accounts"] = {"users": [*base.users, LocalUser(name="mallory", uid=1001)]}
        novel["login_accounts"] = {
            "users": [*base.users, LocalUser(name="mallory", uid=1001, shell="/bin/bash")]
        }
        novel["privileged_accounts"] = {
            "users": [*base.users, LocalUser(name="mallory", uid=1001, groups=["docker"])]
        }
        # a novel value alerts once it persisted: shown in two consecutive snapshots
        after = _base(learning + 1)
        changed = novel[leaf.params.field]
        return seq + [
            msgspec.structs.replace(base, **changed),
            msgspec.structs.replace(after, **changed),
        ], seq + [base, after]
    if isinstance(leaf, p.TimestampNotMonotonic):
        return [_base(5), _base(2)], [_base(2), _base(5)]
    if isinstance(leaf, p.ClockSkew):
        future = T0 + timedelta(seconds=leaf.params.seconds * 3)
        return [_base(0, timestamp=future)], [_base(0)]
    if isinstance(leaf, p.UptimeDecreased):
        return [_base(0), _base(1, uptime_seconds=60)], [_base(0), _base(1)]
    if isinstance(leaf, p.ProcessDisappeared):
        present = _with_proc(
            0, Process(pid=9000, name=leaf.params.names[0], user="root", exe="/usr/sbin/x")
        )
        again = _with_proc(
            1, Process(pid=9000, name=leaf.params.names[0], user="root", exe="/usr/sbin/x")
        )
        return [present, _base(1)], [present, again]
    if isinstance(leaf, p.SustainedCpu):
        n, pct = leaf.params.snapshots, leaf.params.percent
        hot = [
            _with_proc(i, Process(pid=9000, name="burner", user="nobody", cpu_percent=pct + 1))
            for i in range(n)
        ]
        cool = hot[:-1] + [
            _with_proc(n - 1, Process(pid=9000, name="burner", user="nobody", cpu_percent=pct / 10))
        ]
        return hot, cool
    if isinstance(leaf, p.ProcessCountSpike):
        base_n = max(leaf.params.min_baseline, 1)

        def sized(i: int, n: int) -> Snapshot:
            return _base(
                i, processes=[Process(pid=1000 + k, name=f"p{k}", user="nobody") for k in range(n)]
            )

        steady = [sized(i, base_n) for i in range(LEARN)]
        return steady + [sized(LEARN, int(base_n * leaf.params.factor) + 1)], steady + [
            sized(LEARN, base_n)
        ]
    return None  # agent_silent: judged by a timer, not by snapshots


def applicable(leaf: p.LeafPredicate) -> bool:
    """Whether verification can build a violating and a clean case for this kind: a rule
    it cannot check constructively is not accepted from a contributor."""
    try:
        return _synthesize(leaf) is not None
    except (IndexError, ValueError):
        return True  # odd params: verification itself judges (and reports) them


def _fires(inv: Invariant, seq: list[Snapshot]) -> list[str]:
    catalog = Catalog([inv])
    state = HostState()
    subjects: list[str] = []
    for i, snap in enumerate(seq):
        # the server's clock: a minute per snapshot, as an agent would send them
        findings, state = evaluate(snap, state, catalog, T0 + timedelta(minutes=i, seconds=1))
        subjects = [f.subject for f in findings]
    return subjects


def _describe(seq: list[Snapshot]) -> str:
    last = seq[-1]
    return (f"{len(seq)} snapshots; last at {last.timestamp:%H:%M} with {len(last.processes)} processes,"
            f" ports {sorted({lp.port for lp in last.listening_ports})}, users {last.logged_in_users}")  # fmt: skip


def constructive(inv: Invariant) -> CaseResult | dict[str, Any]:
    leaf = p.leaves(inv.predicate)[0]
    pair = _synthesize(leaf)
    if pair is None:
        return {"applicable": False, "why": "agent_silent is checked by a timer, not by snapshots"}
    bad, good = pair
    return CaseResult(
        fired_on_violation=bool(_fires(inv, bad)), fired_on_clean=bool(_fires(inv, good)),
        violation=_describe(bad), clean=_describe(good),
    )  # fmt: skip


def red_team(inv: Invariant) -> RedTeam:
    catalog = Catalog([inv])
    false_positives = []
    count = 0
    for host, snapshots in corpus.load().items():
        state = HostState()
        for i, snap in enumerate(snapshots):
            count += 1
            findings, state = evaluate(snap, state, catalog, snap.timestamp + timedelta(seconds=3))
            for f in findings:
                false_positives.append(
                    {"snapshot": f"{host}#{i}", "subject": f.subject, "title": f.title}
                )
    return RedTeam(false_positives=false_positives, evasions=_evasions(inv), corpus_snapshots=count)


def _evasions(inv: Invariant) -> list[dict[str, Any]]:
    leaf = p.leaves(inv.predicate)[0]
    pair = _synthesize(leaf)
    if pair is None:
        return []
    bad = pair[0]
    out = []
    for name, mutate in _EVASIONS.get(type(leaf), []):
        variant = mutate(bad[-1])
        if variant is None:
            continue
        caught = bool(_fires(inv, [*bad[:-1], variant]))
        out.append({"variant": name, "caught": caught})
    return out


def _map_procs(fn: Callable[[Process], Process]) -> Callable[[Snapshot], Snapshot]:
    return lambda s: msgspec.structs.replace(
        s, processes=[fn(x) if x.pid == 9000 else x for x in s.processes]
    )


def _map_ports(fn: Callable[[ListeningPort], ListeningPort]) -> Callable[[Snapshot], Snapshot]:
    return lambda s: msgspec.structs.replace(
        s,
        listening_ports=[
            fn(x) if x.port != 22 or x.process != "sshd" else x for x in s.listening_ports
        ],
    )


_EVASIONS: dict[type, list[tuple[str, Callable[[Snapshot], Snapshot | None]]]] = {
    p.ProcessNameIn: [
        ("name in upper case", _map_procs(lambda x: msgspec.structs.replace(x, name=x.name.upper()))),
        ("name with a Windows .exe suffix", _map_procs(lambda x: msgspec.structs.replace(x, name=x.name + ".exe"))),
        ("name with a digit appended", _map_procs(lambda x: msgspec.structs.replace(x, name=x.name + "2"))),
    ],
    p.ProcessInSuspiciousPath: [
        ("path under a symlink-like /private prefix", _map_procs(lambda x: msgspec.structs.replace(x, exe="/private" + (x.exe or "")))),
        ("binary in a nested hidden directory", _map_procs(lambda x: msgspec.structs.replace(x, exe=(x.exe or "").rsplit("/", 1)[0] + "/.cache/.x/dropper"))),
        ("path with a doubled slash", _map_procs(lambda x: msgspec.structs.replace(x, exe="/" + (x.exe or "")))),
    ],
    p.ProcessCmdlineContains: [
        ("pattern in upper case", _map_procs(lambda x: msgspec.structs.replace(x, cmdline=(x.cmdline or "").upper()))),
        ("pattern with doubled spaces", _map_procs(lambda x: msgspec.structs.replace(x, cmdline=(x.cmdline or "").replace(" ", "  ")))),
    ],
    p.PortExposed: [
        ("bound to the IPv6 any-address ::", _map_ports(lambda x: msgspec.structs.replace(x, address="::"))),
        ("bound to an IPv4-mapped any-address", _map_ports(lambda x: msgspec.structs.replace(x, address="::ffff:0.0.0.0"))),
        ("bound to a LAN address", _map_ports(lambda x: msgspec.structs.replace(x, address="192.0.2.10"))),
    ],
    p.PortOwnerIn: [
        ("owner in upper case", _map_ports(lambda x: msgspec.structs.replace(x, process=(x.process or "").upper()))),
    ],
    p.LoggedInUserIn: [
        ("user name in upper case", lambda s: msgspec.structs.replace(s, logged_in_users=[u.upper() for u in s.logged_in_users])),
    ],
}  # fmt: skip


def verify(inv: Invariant) -> Report:
    c = constructive(inv)
    r = red_team(inv)
    reasons = []
    if isinstance(c, CaseResult):
        if not c.fired_on_violation:
            reasons.append("it did not fire on its own constructive violation: " + c.violation)
        if c.fired_on_clean:
            reasons.append("it fired on the clean constructive example: " + c.clean)
    if r.false_positives:
        first: dict[str, str] = {}  # the first offending snapshot of each benign host
        for fp in r.false_positives:
            first.setdefault(fp["snapshot"].split("#")[0], fp["snapshot"])
        names = ", ".join(first[h] for h in sorted(first))
        # Snapshots, not findings: one snapshot can fire several times (one per subject).
        hit = len({fp["snapshot"] for fp in r.false_positives})
        reasons.append(
            f"it fired on {hit} of the {r.corpus_snapshots} benign corpus snapshots,"
            f" first on: {names}"
        )
    return Report(constructive=c, red_team=r, passed=not reasons, reasons=reasons)
