"""The detection corpus: labelled attack and benign scenarios, replayed through the engine
by benchmarks/corpus_report.py.

It lives here, beside the benchmark, and not in the package: it is a measuring
instrument (hundreds of KB of recordings that no monitored host needs), while
`kefal_lite/detect/corpus/` stays the small benign set the red team ships with.

A scenario is one JSON file (schema: `Scenario`), either
- `base` + `plant`: a host of the benign package corpus replayed for `learn`
  snapshots, then `persist` more with the plant applied (processes, sockets,
  accounts and keys added; processes stopped; accounts changed). `before` adds what
  must be running during learning (the security tool an attack later stops); or
- `snapshots`: a recorded sequence (a real machine, a constructed replay), of which
  the first `learn` are the learning period.
Snapshots are re-stamped one a minute with increasing uptime, so only the plant is new.

`attacks/` holds `label: "attack"` files (classic and `evasion` variants, with the
ATT&CK technique and where the idiom is written that way); `benign/` holds busy but
innocent hosts. scripts/make_detection_corpus.py writes the constructed files and
benchmarks/corpus/record.py records a real machine.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from kefal_lite.detect import corpus as benign_corpus
from kefal_lite.snapshot import (
    AuthorizedKey,
    Connection,
    ListeningPort,
    LocalUser,
    Process,
    Snapshot,
)

HERE = Path(__file__).resolve().parent
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CATEGORIES = {
    # attack scenarios: what happened
    "reverse_shell", "bind_shell", "web_shell", "shell_upgrade", "crypto_miner",
    "offensive_tool", "privesc_enumeration", "tunnel", "masquerade", "deleted_binary",
    "suspicious_path", "exposed_service", "ssh_key_persistence", "account_manipulation",
    "defense_evasion", "destructive",
    # benign scenarios: what kind of busy
    "recorded_host", "developer_laptop", "cron", "package_upgrade", "admin_work",
}  # fmt: skip
ATTACK_ID = re.compile(r"^T\d{4}(\.\d{3})?$")


class Plant(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    processes: list[Process] = []
    listening_ports: list[ListeningPort] = []
    connections: list[Connection] = []
    # Added, or replacing the account of the same name (a changed shell, group or uid).
    users: list[LocalUser] = []
    ssh_authorized_keys: list[AuthorizedKey] = []
    logged_in_users: list[str] = []
    # Process names that are no longer running (every process of that name).
    stop_processes: list[str] = []


class Scenario(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    id: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    label: Literal["attack", "benign"]
    category: str
    description: str
    # Where the idiom comes from (a write-up, a cheat sheet, a recording): why it is realistic.
    source: str
    attack: str | None = None  # ATT&CK technique of an attack scenario
    variant: Literal["classic", "evasion"] | None = None
    base: str | None = None
    learn: Annotated[int, msgspec.Meta(ge=1)] = 4
    persist: Annotated[int, msgspec.Meta(ge=1)] = 3
    before: Plant | None = None
    plant: Plant | None = None
    snapshots: list[Snapshot] | None = None


class CorpusError(ValueError):
    pass


_decoder = msgspec.json.Decoder(Scenario)
_PLANT_TYPES = {"processes": Process, "listening_ports": ListeningPort, "connections": Connection,
                "users": LocalUser, "ssh_authorized_keys": AuthorizedKey}  # fmt: skip


def decode(raw: bytes) -> Scenario:
    """A scenario from JSON. The wire Structs ignore unknown fields (the snapshot contract);
    in a hand-written plant an unknown field is a typo, so it is refused here."""
    sc = _decoder.decode(raw)
    for part in ("before", "plant"):
        plant = msgspec.json.decode(raw).get(part) or {}
        for field, typ in _PLANT_TYPES.items():
            for item in plant.get(field, []):
                unknown = set(item) - set(typ.__struct_fields__)
                if unknown:
                    raise CorpusError(f"{part}.{field}: unknown field(s) {sorted(unknown)}")
    return sc


def validate(sc: Scenario, name: str) -> None:
    """What the schema cannot say: labels, categories and one source of snapshots."""
    if f"{sc.id}.json" != name:
        raise CorpusError(f"{name}: id {sc.id!r} does not match the file name")
    if sc.category not in CATEGORIES:
        raise CorpusError(f"{name}: unknown category {sc.category!r}")
    if sc.base is not None and sc.base not in benign_corpus.load():
        raise CorpusError(f"{name}: no benign corpus host {sc.base!r}")
    if sc.label == "attack":
        if sc.attack is None or not ATTACK_ID.match(sc.attack):
            raise CorpusError(f"{name}: an attack needs an ATT&CK technique (T1234 or T1234.001)")
        if sc.variant is None or sc.plant is None:
            raise CorpusError(f"{name}: an attack needs a variant and a plant")
        if not subject_tokens(sc):
            raise CorpusError(f"{name}: the plant has nothing that identifies it")
    if (sc.base is None) == (sc.snapshots is None):
        raise CorpusError(f"{name}: give either base (+ plant) or snapshots")
    if sc.snapshots is not None and len(sc.snapshots) <= sc.learn:
        raise CorpusError(f"{name}: {len(sc.snapshots)} snapshots, {sc.learn} of them learning")


def load(kind: str | None = None) -> list[Scenario]:
    """Every scenario (or those under attacks/ or benign/), validated, sorted by id."""
    out = []
    for sub in ("attacks", "benign") if kind is None else (kind,):
        for path in sorted((HERE / sub).glob("*.json")):
            try:
                sc = decode(path.read_bytes())
            except (msgspec.DecodeError, CorpusError) as exc:
                raise CorpusError(f"{sub}/{path.name}: {exc}") from None
            validate(sc, path.name)
            if (sub == "attacks") != (sc.label == "attack"):
                raise CorpusError(f"{sub}/{path.name}: label {sc.label!r} in the wrong folder")
            out.append(sc)
    return out


def _apply(snap: Snapshot, plant: Plant) -> Snapshot:
    stopped = set(plant.stop_processes)
    replaced = {u.name for u in plant.users}
    return msgspec.structs.replace(
        snap,
        processes=[p for p in snap.processes if p.name not in stopped] + plant.processes,
        listening_ports=[lp for lp in snap.listening_ports if lp.process not in stopped]
        + plant.listening_ports,
        connections=[c for c in snap.connections if c.process not in stopped] + plant.connections,
        users=[u for u in snap.users if u.name not in replaced] + plant.users,
        ssh_authorized_keys=snap.ssh_authorized_keys + plant.ssh_authorized_keys,
        logged_in_users=sorted(set(snap.logged_in_users) | set(plant.logged_in_users)),
    )


def sequence(sc: Scenario) -> tuple[list[Snapshot], int]:
    """The snapshots to replay and the index of the first one after learning (the plant's)."""
    if sc.snapshots is not None:
        raw = list(sc.snapshots)
    else:
        assert sc.base is not None
        base = benign_corpus.load()[sc.base]
        raw = [base[i % len(base)] for i in range(sc.learn + sc.persist)]
        raw = [_apply(s, sc.before) if sc.before and i < sc.learn else s for i, s in enumerate(raw)]
        raw = [_apply(s, sc.plant) if sc.plant and i >= sc.learn else s for i, s in enumerate(raw)]
    uptime = raw[0].uptime_seconds
    out = [
        msgspec.structs.replace(
            s, timestamp=START + timedelta(minutes=i), uptime_seconds=uptime + 60 * i, sent_at=None
        )  # fmt: skip
        for i, s in enumerate(raw)
    ]
    return out, sc.learn


def subject_tokens(sc: Scenario) -> set[str]:
    """Strings that name the planted thing, and nothing of the base host: its pids, new
    process names, ports, peers, accounts, key fingerprints, and stopped processes."""
    plant = sc.plant
    if plant is None:
        return set()
    base_names: set[str] = set()
    base_ports: set[int] = set()
    if sc.base is not None:
        for s in benign_corpus.load()[sc.base]:
            base_names |= {p.name for p in s.processes}
            base_ports |= {c.remote_port for c in s.connections}
            base_ports |= {lp.port for lp in s.listening_ports}
    tokens = {str(p.pid) for p in plant.processes}
    tokens |= {p.name for p in plant.processes if p.name not in base_names}
    tokens |= {str(lp.port) for lp in plant.listening_ports}
    tokens |= {c.remote_address for c in plant.connections if c.remote_address}
    tokens |= {str(c.remote_port) for c in plant.connections if c.remote_port not in base_ports}
    tokens |= {u.name for u in plant.users}
    tokens |= {k.fingerprint for k in plant.ssh_authorized_keys}
    tokens |= set(plant.stop_processes) | set(plant.logged_in_users)
    return tokens


def mentions(tokens: set[str], subject: str, title: str, evidence: Any) -> bool:
    """Whether a finding is about one of `tokens` (whole words of its subject, title or
    evidence, so pid 7 does not match port 8007)."""
    text = msgspec.json.encode([subject, title, evidence]).decode()
    return any(re.search(rf"(?<![\w.+-]){re.escape(t)}(?![\w.+-])", text) for t in tokens)
