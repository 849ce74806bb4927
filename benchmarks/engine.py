"""Engine micro-benchmark and resident state size.

    python benchmarks/engine.py

- evaluate(): all 32 builtins on the corpus's ubuntu-web host (73 processes, 15
  listening ports, realistic command lines) after its learning period; median
  and p90 of per-call times over repeated batches, next to msgspec decoding the
  same snapshot from bytes (the floor any ingest pays) in the same run.
- memory: the resident HostState of 10,000 distinct hosts, measured as the
  growth of traced allocations (tracemalloc) and of process RSS.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
import tracemalloc
from datetime import timedelta

import msgspec
import psutil

from kefal_lite import snapshot
from kefal_lite.detect import corpus
from kefal_lite.detect.builtins import BUILTINS
from kefal_lite.detect.engine import Catalog, evaluate
from kefal_lite.detect.model import Invariant
from kefal_lite.detect.state import HostState, dumps, loads

COMMUNITY = (
    [
        {"kind": "process_name_in", "params": {"names": [f"tool{i}", f"agent{i}", "frpc", "bore"]}}
        for i in range(5)
    ]
    + [
        {
            "kind": "process_cmdline_contains",
            "params": {"patterns": [f"--evil-flag-{i}", "wget http://"]},
        }
        for i in range(4)
    ]
    + [{"kind": "port_exposed", "params": {"ports": [8000 + i, 9000 + i]}} for i in range(4)]
    + [
        {
            "kind": "process_in_suspicious_path",
            "params": {"suspicious_paths": ["/run/user", f"/opt/x{i}"]},
        }
        for i in range(3)
    ]
    + [
        {"kind": "port_owner_in", "params": {"processes": ["python3", "perl"]}},
        {"kind": "logged_in_user_in", "params": {"users": ["guest", "test"]}},
        {"kind": "novel_value", "params": {"field": "listening_ports"}},
        {
            "kind": "any_of",
            "params": {
                "predicates": [
                    {"kind": "process_name_in", "params": {"names": ["mimikatz"]}},
                    {"kind": "process_cmdline_contains", "params": {"patterns": ["base64 -d |"]}},
                ]
            },
        },
    ]
)


def per_call(fn: object, n: int, rounds: int = 15) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t) / n * 1e6)
    return out


def main() -> None:
    catalog = Catalog(BUILTINS)
    snaps = corpus.load()["ubuntu-web"]
    state = HostState()
    for s in snaps[:4]:
        _, state = evaluate(s, state, catalog, s.timestamp)
    s = snaps[4]
    raw = snapshot.encode(s)
    now = s.timestamp + timedelta(seconds=2)
    ev = per_call(lambda: evaluate(s, state, catalog, now), 2000)
    de = per_call(lambda: snapshot.decode(raw), 2000)
    print(
        f"snapshot: {len(s.processes)} processes, {len(s.listening_ports)} ports, {len(raw)} bytes"
    )
    print(
        f"evaluate(32 builtins): median {statistics.median(ev):.1f} us, p90 {sorted(ev)[int(len(ev) * 0.9)]:.1f} us"
    )
    print(f"decode:                median {statistics.median(de):.1f} us")
    print(f"ratio evaluate/decode: {statistics.median(ev) / statistics.median(de):.2f}")

    # the server's default rule set: the builtins and the core pack
    try:
        from kefal_lite.detect import packs

        served = Catalog([*BUILTINS, *packs.active()])
        state3 = HostState()
        for x in snaps[:4]:
            _, state3 = evaluate(x, state3, served, x.timestamp)
        ev3 = per_call(lambda: evaluate(s, state3, served, now), 2000)
        print(f"evaluate(32 builtins + core pack): median {statistics.median(ev3):.1f} us")
    except ImportError:  # a checkout from before packs
        pass

    # 20 active community invariants on top of the builtins, of the kinds people contribute
    community = [
        msgspec.convert(
            {
                "id": f"c{i}",
                "name": f"community rule {i}",
                "invariant_type": "structural",
                "severity": "high",
                "source": "community",
                "predicate": pred,
            },
            Invariant,
        )
        for i, pred in enumerate(COMMUNITY)
    ]
    both = Catalog([*BUILTINS, *community])
    state2 = HostState()
    for x in snaps[:4]:
        _, state2 = evaluate(x, state2, both, x.timestamp)
    ev2 = per_call(lambda: evaluate(s, state2, both, now), 2000)
    print(
        f"evaluate(32 builtins + 20 community): median {statistics.median(ev2):.1f} us;"
        f" +{(statistics.median(ev2) / statistics.median(ev) - 1) * 100:.0f}% over builtins alone"
    )

    # 10,000 hosts: each host's state after 5 snapshots, made distinct per host by
    # host-specific users, ports and keys on top of the corpus machines.
    hosts = list(corpus.load().values())
    gc.collect()
    rss0 = psutil.Process(os.getpid()).memory_info().rss
    tracemalloc.start()
    resident: dict[str, HostState] = {}
    for n in range(10_000):
        seq = hosts[n % len(hosts)]
        st = HostState()
        for i, base in enumerate(seq[:5]):
            extra_user = f"user{n}"
            x = msgspec.structs.replace(
                base,
                logged_in_users=[*base.logged_in_users, extra_user],
                listening_ports=[
                    *base.listening_ports,
                    snapshot.ListeningPort(
                        port=10000 + n % 50000, process=f"svc{n % 300}", address="0.0.0.0"
                    ),
                ],
                ssh_authorized_keys=[
                    *base.ssh_authorized_keys,
                    snapshot.AuthorizedKey(user=extra_user, fingerprint=f"SHA256:{n:043d}"),
                ],
            )
            _, st = evaluate(x, st, catalog, x.timestamp + timedelta(seconds=i))
        resident[f"agent-{n}"] = loads(dumps(st))  # as loaded from the database after a restart
    gc.collect()
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = psutil.Process(os.getpid()).memory_info().rss
    print(
        f"10,000 host states: traced {traced / 2**20:.1f} MiB, RSS growth {(rss1 - rss0) / 2**20:.1f} MiB,"
        f" total RSS {rss1 / 2**20:.1f} MiB, {traced / 10_000 / 1024:.2f} KiB/host"
    )


if __name__ == "__main__":
    main()
