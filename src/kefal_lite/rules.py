"""The invariants in force: the builtins (with the operator's settings), the active packs
(`core`), and verified community invariants. Swapping the catalog applies from the next snapshot."""

from __future__ import annotations

from collections.abc import Sequence

from kefal_lite.config import Settings
from kefal_lite.detect import packs
from kefal_lite.detect.builtins import with_silent_minutes
from kefal_lite.detect.engine import REPLAY, Catalog, Detection
from kefal_lite.detect.model import Invariant


class Rules:
    def __init__(self, silent_minutes: int, detection: Detection = REPLAY,
                 guarded: Sequence[str] = ()) -> None:  # fmt: skip
        self._builtins = (*with_silent_minutes(silent_minutes), *packs.active(guarded=guarded))
        self.detection = detection
        self.catalog = Catalog(self._builtins, detection)

    def invariant(self, invariant_id: str) -> Invariant | None:
        return self.catalog.by_id.get(invariant_id)

    def replace_community(self, community: Sequence[Invariant]) -> None:
        # A community row carrying a builtin's id would replace the builtin in `by_id`.
        builtin_ids = {inv.id for inv in self._builtins}
        shared = [inv for inv in community if inv.id not in builtin_ids]
        self.catalog = Catalog((*self._builtins, *shared), self.detection)


def detection_settings(settings: Settings) -> Detection:
    return Detection(
        learning_minutes=settings.detection_learning_minutes,
        learning_snapshots=settings.detection_learning_snapshots,
        novelty_persistence=settings.detection_novelty_persistence,
        baseline_days=settings.detection_baseline_days,
    )
