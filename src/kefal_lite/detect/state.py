"""HostState: what the engine remembers about one host between snapshots.

Kept small because every host's state stays resident: baselines are tuples of
interned strings (a tuple costs 8 bytes a value, a set about 30), and the
persisted form is compact msgpack.
"""

from __future__ import annotations

import sys

import msgspec

MAX_BASELINE = 2_000  # values per field; beyond it the oldest are forgotten
COUNT_HISTORY = 30  # process counts kept for the median


class HostState(msgspec.Struct, frozen=True, array_like=True, gc=False):
    seen: int = 0  # snapshots accepted so far
    last_ts: float | None = None  # newest snapshot timestamp (epoch seconds)
    last_uptime: int | None = None
    last_kernel: str | None = None
    baselines: dict[str, tuple[str, ...]] = {}
    # Names watched by process_disappeared rules that were running last time.
    watched: tuple[str, ...] = ()
    # Consecutive hot snapshots, keyed "<invariant id>\x00<process name>".
    cpu_streaks: dict[str, int] = {}
    counts: tuple[int, ...] = ()


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(HostState)


def dumps(state: HostState) -> bytes:
    return _encoder.encode(state)


def loads(blob: bytes | None) -> HostState:
    """Decode a persisted state, interning its strings: the same values recur on many hosts."""
    if not blob:
        return HostState()
    state = _decoder.decode(blob)
    return msgspec.structs.replace(
        state,
        baselines={f: tuple(map(sys.intern, v)) for f, v in state.baselines.items()},
        watched=tuple(map(sys.intern, state.watched)),
    )


def with_baseline(state: HostState, field: str, value: str) -> HostState:
    """`value` joins the baseline of `field` (a person said it is normal on this host)."""
    old = state.baselines.get(field, ())
    if value in old:
        return state
    merged = (*old, sys.intern(value))[-MAX_BASELINE:]
    return msgspec.structs.replace(state, baselines={**state.baselines, field: merged})
