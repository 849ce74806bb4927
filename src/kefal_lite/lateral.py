"""The `lateral` pack: estate findings from the facts the graph already has. Pure.

These rules judge the estate, not one snapshot: a key authorized for root on many hosts is
fine on each host alone. So they are not per-snapshot invariants: they run per tenant over
every host's latest facts (the timer in lateral_run.py) and open incidents through the
incident store like any other rule, under ids `lateral.*` with source `pack`.

The pack is data (PACK: rules with parameters); `evaluate` runs each rule's check from the
CHECKS catalogue. An incident needs a host: an estate-wide finding (a key on many hosts)
is anchored on the first of its hosts by hostname, the others listed in the evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal

import msgspec

from kefal_lite.paths import (
    HostFacts,
    Step,
    connection_steps,
    key_hosts,
    key_step,
    login_hosts,
    login_step,
)

PREFIX = "lateral."
Check = Literal["root_key_spread", "key_across_groups", "one_hop_from_critical"]


class EstateRule(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    check: Check
    severity: Literal["low", "medium", "high"]  # never critical: see one_hop_from_critical
    category: str = "lateral"
    attack: str | None = None
    description: str
    params: dict[str, int] = {}
    source: Literal["pack"] = "pack"


class Pack(msgspec.Struct, frozen=True):
    id: str
    name: str
    description: str
    rules: tuple[EstateRule, ...]


class EstateFinding(msgspec.Struct, frozen=True):
    rule: EstateRule
    host_id: str
    subject: str
    title: str
    evidence: dict[str, Any]


PACK = Pack(
    id="lateral",
    name="Lateral movement",
    description="Estate-wide paths an intruder would take from one host to the next.",
    rules=(
        EstateRule(
            id="lateral.root_key_spread", name="root_key_spread", check="root_key_spread",
            severity="high", attack="T1021.004", params={"max_hosts": 3},
            description="One SSH key is authorized for root on more than `max_hosts` hosts: "
            "whoever holds it is root on all of them.",
        ),
        EstateRule(
            id="lateral.key_across_groups", name="key_across_groups",
            check="key_across_groups", severity="high", attack="T1021.004",
            description="One SSH key is authorized on hosts of different groups (prod and "
            "dev): a dev laptop's key opens production.",
        ),
        EstateRule(
            id="lateral.one_hop_from_critical", name="one_hop_from_critical",
            check="one_hop_from_critical", severity="high", attack="T1021",
            description="The host is one step (shared key, connection to its service, shared "
            "login) from a host with an open critical incident.",
        ),
    ),
)  # fmt: skip


class Estate(msgspec.Struct, frozen=True):
    hosts: Sequence[HostFacts]
    groups: Mapping[str, str]  # host id -> a person's group
    critical: Collection[str]  # hosts with an open critical incident (not from this pack)


def _root_key_spread(rule: EstateRule, estate: Estate) -> list[EstateFinding]:
    names = {h.host_id: h.hostname for h in estate.hosts}
    limit = rule.params.get("max_hosts", 3)
    out = []
    for fingerprint, on in sorted(key_hosts(estate.hosts).items()):
        root = sorted((names[hid], hid) for hid, accounts in on.items() if "root" in accounts)
        if len(root) <= limit:
            continue
        out.append(EstateFinding(rule, root[0][1], f"key:{fingerprint}",
                                 f"SSH key {fingerprint} is authorized for root on {len(root)}"
                                 f" hosts (more than {limit})",
                                 {"fingerprint": fingerprint, "max_hosts": limit,
                                  "hosts": [n for n, _ in root],
                                  "host_ids": [i for _, i in root]}))  # fmt: skip
    return out


def _key_across_groups(rule: EstateRule, estate: Estate) -> list[EstateFinding]:
    names = {h.host_id: h.hostname for h in estate.hosts}
    out = []
    for fingerprint, on in sorted(key_hosts(estate.hosts).items()):
        # only hosts a person grouped: an ungrouped host's group is unknown, not different
        grouped = sorted(
            (estate.groups[hid], names[hid], hid) for hid in on if hid in estate.groups
        )
        groups = sorted({g for g, _, _ in grouped})
        if len(groups) < 2:
            continue
        _, _, anchor = grouped[0]
        by_group = {g: [n for gg, n, _ in grouped if gg == g] for g in groups}
        out.append(EstateFinding(rule, anchor, f"key:{fingerprint}",
                                 f"SSH key {fingerprint} is authorized on hosts of groups "
                                 + ", ".join(groups),
                                 {"fingerprint": fingerprint, "groups": by_group}))  # fmt: skip
    return out


def _one_hop_from_critical(rule: EstateRule, estate: Estate) -> list[EstateFinding]:
    """One finding per host one step from any critical host, by its most direct and most
    privileged such step (then the source's hostname): linear in the estate, where a path
    search per critical host was quadratic when every host shares a key."""
    # Lateral findings are never critical and `critical` excludes this pack's incidents, so
    # a finding cannot feed the next evaluation: no cascade across the estate.
    by_id = {h.host_id: h for h in estate.hosts}
    critical = set(estate.critical) & by_id.keys()
    best: dict[str, tuple[tuple[int, str, str], Step]] = {}

    def offer(step: Step) -> None:
        if step.to_host_id in critical:
            return  # it has its own critical incident already
        rank = (step.rank, step.from_hostname, step.from_host_id)
        if step.to_host_id not in best or rank < best[step.to_host_id][0]:
            best[step.to_host_id] = (rank, step)

    if not critical:
        return []
    for source, steps in connection_steps(estate.hosts).items():
        if source in critical:
            for step in steps:
                offer(step)
    for fingerprint, on in key_hosts(estate.hosts).items():
        sources = sorted((by_id[h].hostname, h) for h in on if h in critical)
        for target, accounts in on.items():
            src = next((by_id[s] for _, s in sources if s != target), None)
            if src is not None:
                offer(key_step(src, by_id[target], fingerprint, accounts))
    for account, on_hosts in login_hosts(estate.hosts).items():
        sources = sorted((by_id[h].hostname, h) for h in on_hosts if h in critical)
        for target in on_hosts:
            src = next((by_id[s] for _, s in sources if s != target), None)
            if src is not None:
                offer(login_step(src, by_id[target], account))
    out = []
    for target_id, (_, step) in sorted(best.items(), key=lambda kv: (kv[1][1].to_hostname, kv[0])):
        out.append(EstateFinding(rule, target_id, "critical-neighbour",
                                 f"{step.to_hostname} is one step from {step.from_hostname},"
                                 f" which has an open critical incident: {step.reason}",
                                 {"from_host_id": step.from_host_id,
                                  "from_hostname": step.from_hostname, "kind": step.kind,
                                  "reason": step.reason, "privilege": step.privilege}))  # fmt: skip
    return out


CHECKS: dict[str, Callable[[EstateRule, Estate], list[EstateFinding]]] = {
    "root_key_spread": _root_key_spread,
    "key_across_groups": _key_across_groups,
    "one_hop_from_critical": _one_hop_from_critical,
}


def evaluate(estate: Estate, pack: Pack = PACK) -> list[EstateFinding]:
    """Every finding of the pack's rules over one tenant's estate, in a stable order."""
    out: list[EstateFinding] = []
    for rule in pack.rules:
        out.extend(CHECKS[rule.check](rule, estate))
    return out
