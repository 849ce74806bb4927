"""HostState: what the engine remembers about one host between snapshots.

Kept small because every host's state stays resident: baselines are tuples of
interned strings (a tuple costs 8 bytes a value, a set about 30), and the
persisted form is compact msgpack.
"""

from __future__ import annotations

import sys

import msgspec

MAX_BASELINE = 2_000  # values per field; beyond it the oldest are forgotten
MAX_PENDING = 256  # novel values per field waiting to persist; a flood is cut here
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
    # Fields below were added later; array_like decoding fills them from defaults for
    # states persisted before they existed.
    # Server time of the host's first snapshot: learning is by time as well as count.
    first_seen: float | None = None
    # Novel values seen in the last snapshot(s), not yet persistent enough to alert:
    # field -> value -> consecutive snapshots. Values that vanish are dropped.
    pending: dict[str, dict[str, int]] = {}
    # Baselines age by generation instead of a timestamp per value (8 bytes a value
    # instead of ~60): `baselines` is the current generation, `previous` the one before.
    # A value seen in either is known, and is copied into the current one when seen; at
    # each rollover `previous` is dropped, so a value unseen for one to two generations
    # is forgotten.
    previous: dict[str, tuple[str, ...]] = {}
    generation_start: float | None = None  # server time the current generation began


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
        previous={f: tuple(map(sys.intern, v)) for f, v in state.previous.items()},
        watched=tuple(map(sys.intern, state.watched)),
    )


def with_baseline(state: HostState, field: str, value: str) -> HostState:
    """`value` joins the baseline of `field` (a person said it is normal on this host)."""
    old = state.baselines.get(field, ())
    if value in old:
        return state
    merged = (*old, sys.intern(value))[-MAX_BASELINE:]
    return msgspec.structs.replace(state, baselines={**state.baselines, field: merged})
