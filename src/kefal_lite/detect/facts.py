"""Facts: the lookups over one snapshot that predicates share, each computed on first use,
and the helpers that turn a process or socket into evidence a person can read.

Speed comes from asking each snapshot's questions once: most predicates answer with a
single C-level `in` on a joined string (names, exe paths, command lines) and walk the
process list only on a hit.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from functools import lru_cache
from itertools import accumulate, compress
from typing import Any, Generic, TypeVar

from kefal_lite.snapshot import Connection, ListeningPort, Process, Snapshot

T = TypeVar("T")
EPHEMERAL = range(32768, 61000)  # Linux's default ip_local_port_range


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


def norm_exe(exe: str) -> str:
    # macOS resolves /tmp to /private/tmp: the same directory under another name.
    return exe[8:] if exe.startswith("/private/") else exe


def epoch(ts: datetime) -> float:
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    def exes(self) -> list[str | None]:
        return [x.exe for x in self.procs]

    @lazy
    def exe_set(self) -> frozenset[str | None]:
        return frozenset(self.exes)

    @lazy
    def name_exe_pairs(self) -> frozenset[tuple[str, str]]:
        """The distinct (name, exe) pairs of processes with a binary (kernel threads have
        none), for a catalog's per-pair memo (`Verdicts`); built by C-level iterators."""
        return frozenset(zip(compress(self.names, self.exes), filter(None, self.exes), strict=True))

    @lazy
    def listening_ports_set(self) -> frozenset[int]:
        return frozenset([lp.port for lp in self.snap.listening_ports])

    @lazy
    def by_pid(self) -> dict[int, Process]:
        return {proc.pid: proc for proc in self.procs}

    @lazy
    def outbound(self) -> list[Connection]:
        """Connections this host made to a peer that is not itself: a connection whose local
        port is one this host listens on is inbound, one to loopback is not egress."""
        listening = self.listening_ports_set
        return [
            c
            for c in self.snap.connections
            if c.local_port not in listening and not is_loopback(c.remote_address)
        ]

    def procs_named(self, name: str) -> list[Process]:
        """Processes whose normalised name is `name`, in snapshot order (found with C-level
        list.index calls, not a Python loop over every process)."""
        if name not in self.name_set:
            return []
        names, procs = self.names, self.procs
        i = names.index(name)
        out = [procs[i]]
        for _ in range(names.count(name) - 1):
            i = names.index(name, i + 1)
            out.append(procs[i])
        return out

    @lazy
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def pid(self, pid: int) -> Process | None:
        """The process with this pid: a C-level list.index, not a dict of every process (a
        snapshot asks for a handful of pids, most never)."""
        if "by_pid" in self.__dict__:
            return self.by_pid.get(pid)
        try:
            return self.procs[self.pids.index(pid)]
        except ValueError:
            return None

    def parent(self, proc: Process) -> Process | None:
        if proc.ppid is None or proc.ppid == proc.pid:
            return None
        return self.pid(proc.ppid)

    def ancestors(self, proc: Process, depth: int = 4) -> list[Process]:
        out: list[Process] = []
        cur: Process | None = proc
        while depth and cur is not None:
            cur = self.parent(cur)
            if cur is not None:
                out.append(cur)
            depth -= 1
        return out

    def owner_of(self, pid: int | None, name: str | None) -> Process | None:
        """The process behind a socket: by pid when the agent sent one, else by name."""
        if pid is not None:
            found = self.pid(pid)
            if found is not None:
                return found
        if name:
            named = self.procs_named(norm_name(name))
            if named:
                return named[0]
        return None

    def connections_of(self, proc: Process, name: str) -> list[Connection]:
        return [
            c for c in self.outbound
            if c.pid == proc.pid or (c.pid is None and c.process and norm_name(c.process) == name)
        ]  # fmt: skip


# --- evidence ------------------------------------------------------------------------


def label(proc: Process) -> str:
    """`nc (pid 4242, root)`: how a title names a process."""
    who = f", {proc.user}" if proc.user else ""
    return f"{proc.name} (pid {proc.pid}{who})"


def proc_evidence(proc: Process, facts: Facts | None = None) -> dict[str, Any]:
    ev: dict[str, Any] = {"pid": proc.pid, "name": proc.name, "user": proc.user}
    if proc.exe is not None:
        ev["exe"] = proc.exe
    if proc.cmdline:
        # Already scrubbed: ingest scrubs every snapshot before evaluation (scrub_snapshot).
        ev["cmdline"] = proc.cmdline[:512]
    if facts is not None:
        parent = facts.parent(proc)
        if parent is not None:
            ev["parent"] = {"name": parent.name, "pid": parent.pid, "user": parent.user}
        elif proc.ppid is not None:
            ev["parent"] = {"pid": proc.ppid}
    return ev


def socket_evidence(lp: ListeningPort) -> dict[str, Any]:
    ev: dict[str, Any] = {"address": lp.address, "port": lp.port, "protocol": lp.protocol,
                          "process": lp.process}  # fmt: skip
    if lp.pid is not None:
        ev["pid"] = lp.pid
    return ev


def peer_evidence(c: Connection) -> dict[str, Any]:
    ev: dict[str, Any] = {"remote_address": c.remote_address, "remote_port": c.remote_port,
                          "protocol": c.protocol, "local_port": c.local_port,
                          "process": c.process}  # fmt: skip
    if c.pid is not None:
        ev["pid"] = c.pid
    return ev


def host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


_NOLOGIN = re.compile(r"(?:^|/)(?:nologin|false|sync|halt|shutdown)$")


@lru_cache(maxsize=1_024)  # a handful of shells on every host
def login_shell(shell: str | None) -> bool:
    return bool(shell) and not _NOLOGIN.search(shell or "")


class Scanner:
    """Which of a catalog's command-line fragments a snapshot contains, asked once for all
    rules: each rule then answers "could I match?" with a set intersection instead of its
    own substring searches over every command line.

    What one command line contains is remembered (bounded): a host shows the same command
    lines snapshot after snapshot and hosts share most of them, so a snapshot usually costs
    one dict lookup per process. The new command lines of a snapshot are searched together,
    one search per fragment over all of them joined."""

    MAX = 65_536

    def __init__(self, needles: Iterable[str]) -> None:
        self.needles = tuple(sorted({n.lower() for n in needles if n}))
        self._seen: dict[str, frozenset[str]] = {}
        # A fragment that contains another ("ncat -e" holds "ncat") cannot be in a text that
        # lacks the shorter one: those (about one in five) are searched only when all the
        # fragments they contain were found; the rest are searched outright.
        inner = {n: tuple(m for m in self.needles if m != n and m in n) for n in self.needles}
        self._outright = tuple(n for n in self.needles if not inner[n])
        self._contained = tuple(sorted(((n, inner[n]) for n in self.needles if inner[n]),
                                       key=lambda x: len(x[0])))  # fmt: skip

    def _search(self, text: str) -> list[str]:
        """The fragments in `text` (lowercase)."""
        found = [n for n in self._outright if n in text]
        # Each contained fragment holds an outright one (the shortest it contains): none
        # found, none of them can be there (the usual answer for a benign new line).
        if found and self._contained:
            have = set(found)
            for n, inner in self._contained:  # shorter first: what they contain is decided
                if have.issuperset(inner) and n in text:
                    have.add(n)
                    found.append(n)
        return found

    def of(self, cmdline: str) -> frozenset[str]:
        hit = self._seen.get(cmdline)
        if hit is None:
            low = cmdline.lower()
            hit = frozenset(self._search(low))
            if len(self._seen) >= self.MAX:
                self._seen.clear()  # rare; cheaper than an LRU's bookkeeping on every call
            self._seen[cmdline] = hit
        return hit

    def scan(self, procs: list[Process]) -> tuple[frozenset[str], list[int]]:
        """(the fragments the snapshot contains, the positions of the processes whose
        command line holds any): rules asking about command lines walk those only."""
        seen = self._seen
        out: set[str] = set()
        at: list[int] = []
        new: list[int] = []
        for i, proc in enumerate(procs):
            cmd = proc.cmdline
            if cmd:
                hit = seen.get(cmd)
                if hit is None:
                    new.append(i)
                elif hit:
                    out.update(hit)
                    at.append(i)
        if new:
            # Command lines never seen: every fragment is searched for once in all of them
            # joined, and only the few found are attributed line by line.
            fresh = list(dict.fromkeys([procs[i].cmdline or "" for i in new]))
            lows = [cmd.lower() for cmd in fresh]
            joined = "\n".join(lows)
            present = self._search(joined)
            if len(seen) + len(fresh) > self.MAX:
                seen.clear()  # rare; cheaper than an LRU's bookkeeping on every call
            for cmd, hit in zip(fresh, _attribute(present, lows, joined), strict=True):
                seen[cmd] = hit
                out.update(hit)
            if present:
                at = sorted(at + [i for i in new if seen.get(procs[i].cmdline or "")])
        return frozenset(out), at


_NONE: frozenset[str] = frozenset()
_EMPTY: frozenset[Any] = frozenset()


def _attribute(present: list[str], lows: list[str], joined: str) -> list[frozenset[str]]:
    """Which of the `present` fragments each line holds (`joined` is the lines joined by
    newlines). Each fragment's occurrences are found in the joined text and mapped to their
    line, skipping to the next line after a hit, instead of asking every line for every
    fragment: most lines hold none."""
    if not present:
        return [_NONE] * len(lows)
    if any("\n" in n for n in present):  # could span two lines in `joined`: ask each line
        return [frozenset([n for n in present if n in low]) for low in lows]
    ends = list(accumulate([len(low) + 1 for low in lows]))  # one past each line's newline
    found: dict[int, list[str]] = {}
    for n in present:
        i = joined.find(n)
        while i != -1:
            line = bisect_right(ends, i)
            found.setdefault(line, []).append(n)
            i = joined.find(n, ends[line])
    return [frozenset(found[x]) if x in found else _NONE for x in range(len(lows))]


class Verdicts(Generic[T]):
    """A catalog's memo of a pure yes/no judgement of single values (an exe path, a
    (name, exe) pair), asked with set operations: a snapshot pays one C-level difference
    against what was judged before and one intersection with what was flagged, and the
    Python judgement runs only for values never seen (bounded like `Scanner`)."""

    MAX = 65_536

    def __init__(self, judge: Callable[[T], bool]) -> None:
        self.judge = judge
        self.known: set[T] = set()
        self.bad: set[T] = set()

    def flagged(self, values: frozenset[T]) -> AbstractSet[T]:
        if self.known.issuperset(values):  # the usual case: no set built
            return self.bad.intersection(values) if self.bad else _EMPTY
        new = values.difference(self.known)
        if new:
            if len(self.known) + len(new) > self.MAX:
                self.known.clear()  # rare; cheaper than an LRU's bookkeeping on every call
                self.bad.clear()
            self.known.update(new)
            self.bad.update([v for v in new if self.judge(v)])
        return self.bad.intersection(values)
