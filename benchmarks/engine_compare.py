"""evaluate() of two checkouts, back to back, on the same machine in the same run.

    git -C /work/main worktree add /tmp/old45 45624f7      # the engine before the detect rewrite
    python benchmarks/engine_compare.py --old /tmp/old45/src --new src --rounds 5

Each side runs in its own interpreter (PYTHONPATH=<its src>), alternating old/new
`--rounds` times so a noisy neighbour slows both alike. Each measures the rule set its
server runs by default: the builtins, plus every active pack when the checkout has
`kefal_lite.detect.packs`, on the package corpus's ubuntu-web snapshot after learning
(median of 15 batches of 2,000 calls). `--cold` gives every process's command line a
fresh suffix in every evaluation (9 batches of 300 snapshots): the worst case for
anything that remembers command lines. `--churn` replays what a server sees of one host:
2,700 distinct consecutive snapshots a minute apart (some processes' CPU moving, two
restarting under new pids and a cron-style job with a new command line coming and going
each minute), each decoded from its own JSON bytes, the state carried from one to the next
(9 batches of 300): the check that what an engine remembers across evaluations still pays
when nothing is identical. Time is the process's CPU time (process_time), not
the wall clock: on a machine shared with other jobs a descheduled probe would otherwise
be charged for their work. Reported: each side's median of medians and the ratio
new/old (target <= 1.30).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

# Runs inside each checkout's interpreter: only what every version of the engine has.
PROBE = r"""
COLD = __COLD__
CHURN = __CHURN__
import json, statistics, time
from datetime import timedelta
from kefal_lite.detect import corpus
from kefal_lite.detect.builtins import BUILTINS
from kefal_lite.detect.engine import Catalog, evaluate
from kefal_lite.detect.state import HostState
rules = list(BUILTINS)
try:
    from kefal_lite.detect import packs
    rules += list(packs.active())
except ImportError:
    pass
catalog = Catalog(rules)
snaps = corpus.load()["ubuntu-web"]
state = HostState()
for s in snaps[:4]:
    _, state = evaluate(s, state, catalog, s.timestamp)
s = snaps[4]
now = s.timestamp + timedelta(seconds=2)
out = []
if CHURN:
    # A host as the server sees it: distinct consecutive snapshots, one a minute, each
    # decoded from its own bytes (fresh strings, no hash cached), the state carried from
    # one to the next. Each minute some processes' CPU moves, two restart under new pids,
    # and a cron-style job (a new command line) comes and goes.
    import random
    import msgspec
    from kefal_lite.snapshot import Process, Snapshot
    rnd = random.Random(15)
    procs = list(s.processes)
    cron = next((x.pid for x in procs if x.name == "cron"), 1)
    user = [i for i, x in enumerate(procs) if x.exe and x.pid > 2]
    next_pid = 40000
    seq = []
    jobs = [("sh", "/bin/sh", "/bin/sh -c /usr/local/bin/backup --since {}"),
            ("run-parts", "/usr/bin/run-parts", "run-parts --report /etc/cron.hourly"),
            ("logrotate", "/usr/sbin/logrotate", "/usr/sbin/logrotate /etc/logrotate.conf"),
            ("sleep", "/usr/bin/sleep", "sleep {}")]
    for minute in range(1, 9 * 300 + 1):
        procs = [msgspec.structs.replace(x, cpu_percent=rnd.choice([0.0, 0.3, 1.2, 4.5, 12.0]))
                 if rnd.random() < 0.3 else x for x in procs if x.pid < 50000]
        for i in rnd.sample(user, 2):
            next_pid += 1
            procs[i] = msgspec.structs.replace(procs[i], pid=next_pid)
        if rnd.random() < 0.5:
            name, exe, cmd = rnd.choice(jobs)
            procs.append(Process(pid=50000 + minute, name=name, user="root", exe=exe,
                                 cmdline=cmd.format(rnd.randrange(1000)), ppid=cron))
        snap = msgspec.structs.replace(s, processes=procs,
                                       timestamp=s.timestamp + timedelta(minutes=minute),
                                       uptime_seconds=s.uptime_seconds + 60 * minute)
        seq.append(msgspec.json.decode(msgspec.json.encode(snap), type=Snapshot))
    state0 = state
    for b in range(9):
        batch = seq[b * 300:(b + 1) * 300]
        t = time.process_time()
        for v in batch:
            _, state = evaluate(v, state, catalog, v.timestamp)
        out.append((time.process_time() - t) / 300 * 1e6)
elif COLD:
    # Every command line new in every evaluation: what remembers command lines cannot help.
    import msgspec
    def fresh(i):
        procs = [msgspec.structs.replace(x, cmdline=f"{x.cmdline} #{i}") if x.cmdline else x
                 for x in s.processes]
        return msgspec.structs.replace(s, processes=procs)
    for b in range(9):
        batch = [fresh(b * 300 + i) for i in range(300)]
        t = time.process_time()
        for v in batch:
            evaluate(v, state, catalog, now)
        out.append((time.process_time() - t) / 300 * 1e6)
else:
    for _ in range(15):
        t = time.process_time()
        for _ in range(2000):
            evaluate(s, state, catalog, now)
        out.append((time.process_time() - t) / 2000 * 1e6)
print(json.dumps({"rules": len(rules), "median_us": statistics.median(out)}))
"""


def probe(src: str, cold: bool = False, churn: bool = False) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    code = PROBE.replace("__COLD__", repr(cold)).replace("__CHURN__", repr(churn))
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="src/ of the reference checkout")
    ap.add_argument("--new", default="src", help="src/ of the checkout under test")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--cold",
        action="store_true",
        help="every command line new in every evaluation (9 batches of 300)",
    )
    ap.add_argument(
        "--churn",
        action="store_true",
        help="distinct consecutive snapshots of one host, a few processes changing each "
        "minute, each decoded from its own bytes (9 batches of 300)",
    )
    args = ap.parse_args()
    old: list[float] = []
    new: list[float] = []
    for i in range(args.rounds):
        o, n = probe(args.old, args.cold, args.churn), probe(args.new, args.cold, args.churn)
        old.append(o["median_us"])
        new.append(n["median_us"])
        print(f"round {i + 1}: old {o['median_us']:.1f} us ({o['rules']:.0f} rules), "
              f"new {n['median_us']:.1f} us ({n['rules']:.0f} rules)", flush=True)  # fmt: skip
    mo, mn = statistics.median(old), statistics.median(new)
    print(f"old median {mo:.1f} us, new median {mn:.1f} us, ratio new/old {mn / mo:.2f} "
          f"(target <= 1.30)")  # fmt: skip


if __name__ == "__main__":
    main()
