"""The invariants in force: the builtins (with the operator's settings) plus, later,
verified community invariants. Swapping the catalog applies from the next snapshot."""

from __future__ import annotations

from collections.abc import Sequence

from kefal_lite.detect.builtins import with_silent_minutes
from kefal_lite.detect.engine import Catalog
from kefal_lite.detect.model import Invariant


class Rules:
    def __init__(self, silent_minutes: int) -> None:
        self._builtins = with_silent_minutes(silent_minutes)
        self.catalog = Catalog(self._builtins)

    def invariant(self, invariant_id: str) -> Invariant | None:
        return self.catalog.by_id.get(invariant_id)

    def replace_community(self, community: Sequence[Invariant]) -> None:
        # A community row carrying a builtin's id would replace the builtin in `by_id`.
        builtin_ids = {inv.id for inv in self._builtins}
        shared = [inv for inv in community if inv.id not in builtin_ids]
        self.catalog = Catalog((*self._builtins, *shared))
