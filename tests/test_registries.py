"""Each predicate kind has its entry in every per-kind registry: evaluation (the engine),
synthesis (verification) and remediation (templates). A kind added to the catalogue without
them would fail only when a rule of it first arrived."""

from __future__ import annotations

import typing

import msgspec
import pytest

from kefal_lite.detect import engine, verify
from kefal_lite.detect import predicates as p
from kefal_lite.detect.builtins import BY_ID
from kefal_lite.detect.model import Invariant
from kefal_lite.detect.packs import PACKS
from kefal_lite.remediate import templates

KINDS = frozenset(typing.get_args(p.LeafPredicate))


def _example(kind: type) -> Invariant:
    """A one-leaf invariant of this kind, with a builtin's (or a pack's) params."""
    for inv in [*BY_ID.values(), *(rule for pack in PACKS.values() for rule in pack)]:
        for leaf in p.leaves(inv.predicate):
            if type(leaf) is kind:
                return msgspec.structs.replace(inv, id="example", predicate=leaf)
    raise LookupError(kind)


def test_every_kind_is_evaluated_synthesized_and_remediated() -> None:
    assert len(KINDS) >= 27
    # the timer kind is judged by monitor.py, never by a snapshot
    assert set(engine._LEAVES) == KINDS - {p.AgentSilent}
    assert set(verify.SYNTHESIZE) == KINDS
    assert set(templates.BY_KIND) == KINDS
    for kind in KINDS:  # and each has params an example can be drawn from
        _example(kind)


def test_the_kinds_verification_cannot_build_are_exactly_the_uncontributable_ones() -> None:
    cannot = {kind for kind, build in verify.SYNTHESIZE.items() if build is None}
    assert p.AgentSilent in cannot and p.PortExposed not in cannot
    for kind in cannot:
        assert not verify.applicable(p.leaves(_example(kind).predicate)[0]), kind


@pytest.mark.parametrize(
    "kind",
    sorted(
        (k for k, build in verify.SYNTHESIZE.items() if build is not None), key=lambda k: k.__name__
    ),  # fmt: skip
    ids=lambda k: k.__name__,
)
def test_each_synthesized_pair_fires_on_the_violation_only(kind: type) -> None:
    inv = _example(kind)
    result = verify.constructive(inv)
    assert isinstance(result, verify.CaseResult)
    assert result.fired_on_violation and not result.fired_on_clean, result


@pytest.mark.parametrize("field", sorted(verify._novel_changes(verify._base(0))))
def test_each_novel_field_has_a_pair_that_fires_on_the_violation_only(field: str) -> None:
    leaf = p.parse({"kind": "novel_value", "params": {"field": field}})
    inv = Invariant(id="example", name="example novelty", invariant_type="temporal",
                    predicate=leaf, severity="low", source="community")  # fmt: skip
    result = verify.constructive(inv)
    assert isinstance(result, verify.CaseResult)
    assert result.fired_on_violation and not result.fired_on_clean, (field, result)
