"""Recall and false positives of the detection engine on the detection corpus.

    python -m benchmarks.corpus_report              # tables
    python -m benchmarks.corpus_report --verbose    # plus every scenario and its findings
    python -m benchmarks.corpus_report --json

Every scenario of benchmarks/corpus/ is replayed through `detect.engine.evaluate` from
an empty HostState, one snapshot a minute, with the clock fixed at each snapshot's
timestamp (no skew, no wall clock). The rules are what the server runs by default:
the 32 builtins plus the active packs (`packs.active()`), with the server's default
`[detection]` settings (learning 3 snapshots, novelty persisting 2) except learning by
time, which a replay at one snapshot a minute cannot wait for (`learning_minutes = 0`).

- An attack is **caught** when at least one medium+ finding, in a snapshot from the
  plant on, is about the planted subject: its subject, title or evidence names a
  planted pid, a new process name, a planted port or peer, the account, the key's
  fingerprint or the stopped process (`benchmarks.corpus.subject_tokens`).
  Recall per category = caught / scenarios, with the evasion variants apart, and how
  many were caught by a rule other than novelty (novelty alone is to become a low
  notice, so this column is what recall falls back to).
- A **false positive** is a medium+ finding on a benign scenario, counted per
  rule category (findings that repeat in later snapshots with the same rule and
  subject count once, as the incident would). Findings of attack scenarios that are
  not about the plant are reported as "off-subject" (the base hosts are benign, so
  they are false positives of the same kind, counted once per base host).
  A finding already raised on a host's first snapshot is **standing**: the host as it
  was enrolled (redis running as root), judged once on day one, like noise.py's
  "standing"; it is counted in its own column, not as noise of normal operation.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec

from benchmarks import corpus
from kefal_lite.config import Settings
from kefal_lite.detect.builtins import BUILTINS
from kefal_lite.detect.engine import Catalog, Detection, evaluate
from kefal_lite.detect.model import SEVERITY_RANK, Finding, Invariant
from kefal_lite.detect.state import HostState
from kefal_lite.rules import detection_settings

MEDIUM = SEVERITY_RANK["medium"]


def rules() -> tuple[list[Invariant], list[str]]:
    """The rule set the server runs by default: the builtins and the active packs
    (`packs.active()`, as `kefal_lite.rules.Rules` builds it), and the packs' names."""
    out = {inv.id: inv for inv in BUILTINS}
    try:
        packs = importlib.import_module("kefal_lite.detect.packs")
    except ModuleNotFoundError:  # a checkout from before packs
        return list(out.values()), []
    out.update((inv.id, inv) for inv in packs.active() if inv.id not in out)
    return list(out.values()), list(packs.DEFAULT_PACKS)


def detection() -> Detection:
    """The server's default [detection] settings, except learning by time: a replay is one
    snapshot a minute, so learning ends by count (`learn` snapshots), as tests replay it."""
    served = detection_settings(Settings())
    return msgspec.structs.replace(served, learning_minutes=0)


@dataclass
class Outcome:
    id: str
    label: str
    category: str
    variant: str | None
    attack: str | None
    caught: bool | None  # None for benign scenarios
    # Caught by a rule that is not mere novelty (novelty alone is to become a low notice).
    caught_by_behaviour: bool | None
    on_subject: list[dict[str, Any]] = field(default_factory=list)
    other: list[dict[str, Any]] = field(default_factory=list)  # medium+ not about the plant


def _brief(f: Finding, category: str) -> dict[str, Any]:
    # One subject, one finding: the rules folded into it are in evidence["rules"].
    folded = [r["invariant_id"] for r in f.evidence.get("rules", ())] or [f.invariant_id]
    return {"rule": f.invariant_id, "rules": folded, "category": category,
            "severity": f.severity, "subject": f.subject, "title": f.title}  # fmt: skip


def run_scenario(sc: corpus.Scenario, catalog: Catalog) -> Outcome:
    snaps, first_plant = corpus.sequence(sc)
    tokens = corpus.subject_tokens(sc) if sc.label == "attack" else set()
    state = HostState()
    seen: set[tuple[str, str]] = set()
    attack = sc.label == "attack"
    out = Outcome(sc.id, sc.label, sc.category, sc.variant, sc.attack,
                  False if attack else None, False if attack else None)  # fmt: skip
    for i, snap in enumerate(snaps):
        findings, state = evaluate(snap, state, catalog, snap.timestamp)
        for f in findings:
            if SEVERITY_RANK[f.severity] < MEDIUM or (f.invariant_id, f.subject) in seen:
                continue
            seen.add((f.invariant_id, f.subject))
            brief = _brief(f, catalog.by_id[f.invariant_id].category) | {"standing": i == 0}
            if (
                tokens
                and i >= first_plant
                and corpus.mentions(tokens, f.subject, f.title, f.evidence)
            ):
                out.caught = True
                out.caught_by_behaviour = out.caught_by_behaviour or brief["category"] != "novelty"
                out.on_subject.append(brief)
            else:
                out.other.append(brief)
    return out


def evaluate_corpus(scenarios: Iterable[corpus.Scenario] | None = None) -> dict[str, Any]:
    invariants, packs = rules()
    catalog = Catalog(invariants, detection())
    outcomes = [run_scenario(sc, catalog) for sc in (scenarios or corpus.load())]
    recall: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for o in outcomes:
        if o.label == "attack":
            row = recall[o.category]
            row["scenarios"] += 1
            row["caught"] += bool(o.caught)
            row[f"{o.variant}"] += 1
            row[f"{o.variant}_caught"] += bool(o.caught)
            row["by_behaviour"] += bool(o.caught_by_behaviour)
    fp: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    benign_hosts = 0
    for o in outcomes:
        if o.label == "benign":
            benign_hosts += 1
            hit: set[str] = set()
            for b in o.other:
                if b["standing"]:
                    fp[b["category"]]["standing"] += 1
                    continue
                fp[b["category"]]["findings"] += 1
                hit.add(b["category"])
            for cat in hit:
                fp[cat]["hosts"] += 1
    # Off-subject findings of attack scenarios, once per base host (same benign snapshots).
    off: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for o in outcomes:
        if o.label == "attack":
            for b in o.other:
                if not b["standing"]:
                    off[b["category"]].add((o.id, b["rule"]))
    attacks = [o for o in outcomes if o.label == "attack"]
    return {
        "rules": len(invariants),
        "packs": packs,
        "attack_scenarios": len(attacks),
        "benign_scenarios": benign_hosts,
        "caught": sum(bool(o.caught) for o in attacks),
        "recall": {k: dict(v) for k, v in sorted(recall.items())},
        "false_positives": {k: dict(v) for k, v in sorted(fp.items())},
        "off_subject": {k: len(v) for k, v in sorted(off.items())},
        "outcomes": [asdict(o) for o in outcomes],
    }


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:.0f}%" if d else "-"


def table(report: dict[str, Any], verbose: bool = False) -> str:
    rec = report["recall"]
    lines = [
        f"rules: {report['rules']} (packs: {', '.join(report['packs']) or 'none'}); "
        f"{report['attack_scenarios']} attack scenarios, {report['benign_scenarios']} benign",
        "",
        "| attack category | scenarios | caught | recall | classic caught | evasion caught | caught without novelty |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    tot = defaultdict(int)
    for cat, r in rec.items():
        for k, v in r.items():
            tot[k] += v
        lines.append(f"| {cat} | {r['scenarios']} | {r['caught']} | {_pct(r['caught'], r['scenarios'])} "
                     f"| {r.get('classic_caught', 0)}/{r.get('classic', 0)} "
                     f"| {r.get('evasion_caught', 0)}/{r.get('evasion', 0)} | {r.get('by_behaviour', 0)} |")  # fmt: skip
    lines.append(f"| **all** | {tot['scenarios']} | {tot['caught']} | {_pct(tot['caught'], tot['scenarios'])} "
                 f"| {tot['classic_caught']}/{tot['classic']} | {tot['evasion_caught']}/{tot['evasion']} | {tot['by_behaviour']} |")  # fmt: skip
    lines += [
        "",
        f"| rule category | medium+ findings on the {report['benign_scenarios']} benign hosts | hosts with one | standing (first snapshot) | off-subject on attack runs |",
        "|---|---:|---:|---:|---:|",
    ]
    cats = sorted(set(report["false_positives"]) | set(report["off_subject"]))
    for cat in cats:
        fp = report["false_positives"].get(cat, {})
        lines.append(
            f"| {cat} | {fp.get('findings', 0)} | {fp.get('hosts', 0)} | {fp.get('standing', 0)} | {report['off_subject'].get(cat, 0)} |"
        )
    total_fp = sum(v.get("findings", 0) for v in report["false_positives"].values())
    standing = sum(v.get("standing", 0) for v in report["false_positives"].values())
    lines.append(f"| **all** | {total_fp} | | {standing} | {sum(report['off_subject'].values())} |")
    missed = [o for o in report["outcomes"] if o["label"] == "attack" and not o["caught"]]
    lines += ["", f"missed ({len(missed)}): " + ", ".join(o["id"] for o in missed)]
    if verbose:
        for o in report["outcomes"]:
            mark = {True: "CAUGHT", False: "MISSED", None: "benign"}[o["caught"]]
            lines.append(f"\n{o['id']} [{o['category']}, {o['variant'] or o['label']}] {mark}")
            lines += [f"  + [{b['severity']}] {b['title']}" for b in o["on_subject"]]
            lines += [
                f"  - [{b['severity']}]{' (standing)' if b['standing'] else ''} {b['title']}"
                for b in o["other"]
            ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    report = evaluate_corpus()
    print(json.dumps(report, indent=1) if args.json else table(report, args.verbose))


if __name__ == "__main__":
    main()
