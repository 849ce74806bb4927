"""CPU time and memory of the agent's collection on this machine.

    python benchmarks/agent_collect.py

Runs in a fresh interpreter like `kefal-lite agent run` does: imports, one
priming pass (starts CPU measurement), then timed collections. Reports process
CPU time (user + system) per collection, the size of the snapshot, and the
process's peak RSS.
"""

from __future__ import annotations

import resource
import statistics
import time

from kefal_lite import snapshot
from kefal_lite.agent.collect import Collector


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    collector = Collector("bench")
    t0 = cpu()
    collector.prime()
    first = cpu() - t0
    times = []
    snap = None
    for _ in range(10):
        time.sleep(0.2)
        t = cpu()
        snap = collector.collect()
        body = snapshot.encode(snap)
        times.append(cpu() - t)
    assert snap is not None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{len(snap.processes)} processes, {len(snap.listening_ports)} listening, {len(snap.connections)} connections,"
        f" {len(snap.users)} accounts, {len(snap.ssh_authorized_keys)} keys; snapshot {len(body):,} bytes"
    )
    print(f"priming pass: {first * 1000:.1f} ms CPU")
    print(
        f"collection + encode: median {statistics.median(times) * 1000:.1f} ms CPU, max {max(times) * 1000:.1f} ms"
    )
    print(f"peak RSS: {peak:.1f} MiB")


if __name__ == "__main__":
    main()
