"""evaluate() of two checkouts, back to back, on the same machine in the same run.

    git -C /work/main worktree add /tmp/old45 45624f7      # the engine before the detect rewrite
    python benchmarks/engine_compare.py --old /tmp/old45/src --new src --rounds 5

Each side runs in its own interpreter (PYTHONPATH=<its src>), alternating old/new
`--rounds` times so a noisy neighbour slows both alike. Each measures the rule set its
server runs by default: the builtins, plus every active pack when the checkout has
`kefal_lite.detect.packs`, on the package corpus's ubuntu-web snapshot after learning
(median of 15 batches of 2,000 calls). `--cold` gives every process's command line a
fresh suffix in every evaluation (9 batches of 300 snapshots): the worst case for
anything that remembers command lines. Time is the process's CPU time (process_time), not
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
if COLD:
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


def probe(src: str, cold: bool = False) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    code = PROBE.replace("__COLD__", repr(cold))
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
    args = ap.parse_args()
    old: list[float] = []
    new: list[float] = []
    for i in range(args.rounds):
        o, n = probe(args.old, args.cold), probe(args.new, args.cold)
        old.append(o["median_us"])
        new.append(n["median_us"])
        print(f"round {i + 1}: old {o['median_us']:.1f} us ({o['rules']:.0f} rules), "
              f"new {n['median_us']:.1f} us ({n['rules']:.0f} rules)", flush=True)  # fmt: skip
    mo, mn = statistics.median(old), statistics.median(new)
    print(f"old median {mo:.1f} us, new median {mn:.1f} us, ratio new/old {mn / mo:.2f} "
          f"(target <= 1.30)")  # fmt: skip


if __name__ == "__main__":
    main()
