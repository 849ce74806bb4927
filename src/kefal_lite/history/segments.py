"""A segment: one host's consecutive snapshots (an hour of them) in one compressed blob.

Measured on the corpus with per-minute CPU churn (benchmarks/history.py has the run):
each snapshot zlib-compressed alone is ~2.4 KB; compressed against its predecessor
(zlib preset dictionary) ~0.4 KB; the hour's bodies as one xz stream ~0.15 KB, and one
row per hour instead of one per snapshot also saves SQLite's per-row and per-index
bytes (~0.3 KB a snapshot). xz is in the standard library and runs in the background
compactor, off the ingest path, which keeps storing each snapshot as it does today
until its hour is over.

Layout: version byte 1, then xz of (4-byte header length, header JSON, bodies). The
header lists [snapshot id, received_at, taken_at, body length] in order; each body
comes back byte for byte as it was ingested.
"""

from __future__ import annotations

import lzma

import msgspec

VERSION = 1


class Entry(msgspec.Struct, frozen=True, array_like=True):
    snapshot_id: str
    received_at: str
    taken_at: str
    length: int


class Snapshot(msgspec.Struct, frozen=True):
    snapshot_id: str
    received_at: str
    taken_at: str
    body: bytes


_header = msgspec.json.Decoder(list[Entry])


def _filters(size: int) -> list[dict[str, int]]:
    # A dictionary as large as the input (at most 8 MiB) holds the whole hour: every
    # snapshot finds its predecessor; xz's default preset would reserve ~94 MB to compress.
    dict_size = min(max(size, 1 << 16), 1 << 23)
    return [{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": dict_size}]


def pack(snapshots: list[Snapshot]) -> bytes:
    if not snapshots:
        raise ValueError("a segment holds at least one snapshot")
    header = msgspec.json.encode(
        [Entry(s.snapshot_id, s.received_at, s.taken_at, len(s.body)) for s in snapshots]
    )
    payload = b"".join([len(header).to_bytes(4, "big"), header, *(s.body for s in snapshots)])
    packed = lzma.compress(payload, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                           filters=_filters(len(payload)))  # fmt: skip
    return bytes([VERSION]) + packed


def unpack(blob: bytes) -> list[Snapshot]:
    if not blob or blob[0] != VERSION:
        raise ValueError("not a snapshot segment (unknown version)")
    payload = lzma.decompress(blob[1:], format=lzma.FORMAT_XZ)
    size = int.from_bytes(payload[:4], "big")
    entries = _header.decode(payload[4 : 4 + size])
    out, at = [], 4 + size
    for e in entries:
        out.append(Snapshot(e.snapshot_id, e.received_at, e.taken_at, payload[at : at + e.length]))
        at += e.length
    if at != len(payload):
        raise ValueError("snapshot segment is corrupt (lengths do not add up)")
    return out
