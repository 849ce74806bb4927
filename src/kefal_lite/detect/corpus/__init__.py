"""Benign host snapshots (package data): the red team's false-positive check and test input.

Each `<host>.json` is a list of consecutive snapshots of one ordinary machine;
`scripts/make_corpus.py` wrote them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import msgspec

from kefal_lite.snapshot import Snapshot

_decoder = msgspec.json.Decoder(list[Snapshot])


@cache
def load() -> dict[str, tuple[Snapshot, ...]]:
    out = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            out[entry.name.removesuffix(".json")] = tuple(_decoder.decode(entry.read_bytes()))
    return out
