"""The incident state machine, as data: which action a person may take in which state and
where it leads. Pure: the use cases read the state, ask here, then tell the store what to
write; the API lists `actions(...)` on every incident so the dashboard shows only those.

An incident has two stored states: its status (open -> acknowledged -> dismissed |
resolved) and its remediation (none -> pending -> proposed -> accepted | rejected;
proposed | accepted -> applied -> verified | failed). "stale" is a display status of an
open or acknowledged incident of a silent host, never stored, so it is not an input here.
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

from kefal_lite.errors import InvalidTransition

Status = Literal["open", "acknowledged", "dismissed", "resolved"]
Remediation = Literal[
    "none", "pending", "proposed", "accepted", "rejected", "applied", "verified", "failed"
]
Action = Literal[
    "acknowledge", "resolve", "baseline", "dismiss", "suppress",
    "remediate", "accept", "reject", "applied",
]  # fmt: skip

STATUSES: tuple[Status, ...] = get_args(Status)
REMEDIATIONS: tuple[Remediation, ...] = get_args(Remediation)
ACTIONS: tuple[Action, ...] = get_args(Action)
ACTIVE: frozenset[str] = frozenset({"open", "acknowledged"})


class Move(msgspec.Struct, frozen=True):
    """One person's action. `status` / `remediation`: the states it may start from (None:
    any); `to_status` / `to_remediation`: where it leads (None: unchanged)."""

    status: frozenset[str] | None
    remediation: frozenset[str] | None
    to_status: Status | None
    to_remediation: Remediation | None


MOVES: dict[Action, Move] = {
    "acknowledge": Move(frozenset({"open"}), None, "acknowledged", None),
    "resolve": Move(ACTIVE, None, "resolved", None),
    # only for an invariant with a novel_value predicate (the `novelty` argument below)
    "baseline": Move(ACTIVE, None, "resolved", None),
    "dismiss": Move(ACTIVE, None, "dismissed", None),
    # a suppression made from the incident resolves it; from any other state it only
    # suppresses future findings, so the dashboard offers it on active incidents
    "suppress": Move(ACTIVE, None, "resolved", None),
    "remediate": Move(
        ACTIVE,
        frozenset(REMEDIATIONS) - {"pending", "applied"},
        None,
        "pending",
    ),
    "accept": Move(None, frozenset({"proposed"}), None, "accepted"),
    "reject": Move(None, frozenset({"proposed"}), None, "rejected"),
    "applied": Move(ACTIVE, frozenset({"proposed", "accepted"}), None, "applied"),
}


def _refusal(action: Action, status: str, remediation: str) -> str | None:
    """Why `action` is refused in this state, in words a person can act on; None if allowed.
    The remediation moves name the remediation first: that is what the person looks at."""
    move = MOVES[action]
    if action in ("accept", "reject", "applied"):
        allowed = move.remediation or frozenset()
        if remediation not in allowed:
            return (
                f"the remediation is {remediation}; {action} needs {' or '.join(sorted(allowed))}"
            )
        if move.status is not None and status not in move.status:
            return f"the incident is {status}; nothing left to verify"
        return None
    if move.status is not None and status not in move.status:
        if action == "acknowledge":
            return f"only an open incident can be acknowledged; this one is {status}"
        if action == "remediate":
            return f"the incident is {status}; only open incidents get remediations"
        if action == "baseline":
            return f"the incident is {status}; only an open one can join the baseline"
        past = {"resolve": "resolved", "dismiss": "dismissed", "suppress": "suppressed"}[action]
        return f"only an open or acknowledged incident can be {past}; this one is {status}"
    if move.remediation is not None and remediation not in move.remediation:
        return f"a remediation is already {remediation}"
    return None


def check(action: Action, status: str, remediation: str) -> Move:
    """The move `action` makes from this state, or InvalidTransition saying why not."""
    why = _refusal(action, status, remediation)
    if why is not None:
        raise InvalidTransition(why)
    return MOVES[action]


def actions(status: str, remediation: str, *, novelty: bool) -> list[Action]:
    """What a person may do now, in the dashboard's order. `novelty`: the invariant has a
    baseline to add the value to (a novel_value predicate)."""
    return [
        a
        for a in ACTIONS
        if (a != "baseline" or novelty) and _refusal(a, status, remediation) is None
    ]
