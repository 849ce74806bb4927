"""What a person does to an incident: acknowledge, dismiss, resolve, ask for a
remediation, accept / reject / mark it applied, act on many at once, add a novelty to the
host's baseline. Each runs on the writer: read the state, ask the state machine, write,
record the audit row, all in one transaction."""

from __future__ import annotations

import functools
import sqlite3
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from kefal_lite.clock import iso
from kefal_lite.detect import state as host_state
from kefal_lite.detect.model import Invariant
from kefal_lite.detect.triage import novelty_value
from kefal_lite.errors import Conflict, InvalidTransition, NotFound
from kefal_lite.store import audit, hosts, incidents
from kefal_lite.store.incidents import Incident, State
from kefal_lite.usecases import incident_states as states
from kefal_lite.usecases.actor import Actor

if TYPE_CHECKING:  # the server's parts; services.py imports this module's neighbours
    from kefal_lite.services import Services

MAX_BULK = 500
BulkAction = Literal["acknowledge", "dismiss", "resolve"]
RemediationMove = Literal["accept", "reject", "applied"]
_PAST = {"acknowledge": "acknowledged", "dismiss": "dismissed", "resolve": "resolved"}


def _state(conn: sqlite3.Connection, actor: Actor, incident_id: str) -> State:
    found = incidents.state(conn, actor.user_id, incident_id)
    if found is None:
        raise NotFound("no such incident")
    return found


def _acknowledge(conn: sqlite3.Connection, actor: Actor, incident_id: str, now: str) -> None:
    st = _state(conn, actor, incident_id)
    states.check("acknowledge", st.status, st.remediation_status)
    incidents.set_acknowledged(conn, actor.user_id, incident_id, actor.trail, now)


def _dismiss(conn: sqlite3.Connection, actor: Actor, incident_id: str, now: str,
             reason: str | None, until: str | None) -> None:  # fmt: skip
    st = _state(conn, actor, incident_id)
    states.check("dismiss", st.status, st.remediation_status)
    incidents.set_dismissed(conn, actor.user_id, incident_id, actor.trail, now, reason, until)


def _resolve(conn: sqlite3.Connection, actor: Actor, incident_id: str, now: str, *,
             action: states.Action = "resolve", by: str = "manual",
             detail: dict[str, Any] | None = None) -> State:  # fmt: skip
    st = _state(conn, actor, incident_id)
    states.check(action, st.status, st.remediation_status)
    incidents.set_resolved(conn, actor.user_id, incident_id, actor.trail, now, by=by,
                           detail=detail)  # fmt: skip
    return st


def acknowledge(conn: sqlite3.Connection, actor: Actor, incident_id: str, now: str) -> None:
    _acknowledge(conn, actor, incident_id, now)
    audit.record(conn, actor.entry(now, "incident_acknowledged", incident_id))


def dismiss(conn: sqlite3.Connection, actor: Actor, incident_id: str, now: str,
            reason: str | None, until: str | None) -> None:  # fmt: skip
    """ "This is fine here": the same key stays quiet until `until` (or for good)."""
    _dismiss(conn, actor, incident_id, now, reason, until)
    audit.record(conn, actor.entry(now, "incident_dismissed", incident_id, until=until))


def resolve(conn: sqlite3.Connection, actor: Actor, incident_id: str, now: str,
            reason: str | None) -> None:  # fmt: skip
    _resolve(conn, actor, incident_id, now, detail={"reason": reason} if reason else None)
    audit.record(conn, actor.entry(now, "incident_resolved", incident_id))


def request_remediation(conn: sqlite3.Connection, actor: Actor, incident_id: str,
                        now: str) -> None:  # fmt: skip
    """Mode 2: (re)generate on demand (remediate() wakes the job runner after the commit)."""
    st = _state(conn, actor, incident_id)
    states.check("remediate", st.status, st.remediation_status)
    incidents.queue_remediation(conn, actor.user_id, incident_id, actor.trail, now)
    audit.record(conn, actor.entry(now, "remediation_requested", incident_id))


def move_remediation(conn: sqlite3.Connection, actor: Actor, incident_id: str,
                     action: RemediationMove, now: str) -> State:  # fmt: skip
    """accept / reject / applied. Returns the state it moved from (move() then has ingest
    verify the key on the host's next snapshot after `applied`)."""
    st = _state(conn, actor, incident_id)
    move = states.check(action, st.status, st.remediation_status)
    assert move.to_remediation is not None
    incidents.set_remediation(conn, actor.user_id, incident_id, move.to_remediation,
                              actor.trail, now)  # fmt: skip
    audit.record(conn, actor.entry(now, f"remediation_{action}", incident_id))
    return st


Refused = Literal["not_found", "conflict"]


class BulkResult(msgspec.Struct, frozen=True):
    id: str
    result: Literal["ok"] | Refused
    detail: str | msgspec.UnsetType = msgspec.UNSET  # why, when it is not ok


def bulk(conn: sqlite3.Connection, actor: Actor, ids: list[str], action: BulkAction,
         reason: str | None, now: str) -> list[BulkResult]:  # fmt: skip
    """One result per distinct id, in order: ok, not_found (also another tenant's) or
    conflict. Each change is its own audit row; a refused one changes nothing."""
    results: list[BulkResult] = []
    for incident_id in dict.fromkeys(ids):
        try:
            if action == "acknowledge":
                _acknowledge(conn, actor, incident_id, now)
            elif action == "dismiss":
                _dismiss(conn, actor, incident_id, now, reason, None)
            else:
                _resolve(conn, actor, incident_id, now,
                         detail={"reason": reason} if reason else None)  # fmt: skip
        except (NotFound, Conflict) as exc:
            refused: Refused = "not_found" if isinstance(exc, NotFound) else "conflict"
            results.append(BulkResult(incident_id, refused, exc.detail))
            continue
        audit.record(conn, actor.entry(now, f"incident_{_PAST[action]}", incident_id, bulk=True))
        results.append(BulkResult(incident_id, "ok"))
    return results


def resolve_by_suppression(conn: sqlite3.Connection, actor: Actor, incident_id: str, now: str,
                           suppression_id: str) -> None:  # fmt: skip
    """A suppression made from an active incident resolves it (the caller audits the
    suppression); from any other state the incident is left as it is."""
    st = _state(conn, actor, incident_id)
    if "suppress" in states.actions(st.status, st.remediation_status, novelty=False):
        _resolve(conn, actor, incident_id, now, action="suppress", by="suppression",
                 detail={"suppression_id": suppression_id})  # fmt: skip


def baseline_value(inc: Incident, inv: Invariant | None) -> tuple[str, str]:
    """(baseline field, value) the incident is about, or why it has none. Checked before
    the state is changed (the host's state is rewritten outside the writer first)."""
    about = novelty_value(inv, inc.subject, inc.evidence) if inv is not None else None
    if about is None:
        raise InvalidTransition(
            f"{inc.invariant_id} is not about a value seen for the first time (no novel_value"
            " predicate), so there is no baseline to add it to; resolve or dismiss it instead"
        )
    states.check("baseline", inc.stored_status, inc.remediation_status)
    return about


def commit_baseline(conn: sqlite3.Connection, state: bytes, *, actor: Actor, now: str,
                    incident_id: str, host_id: str, field: str, value: str) -> None:  # fmt: skip
    """The host's new state and the incident's resolution, together or not at all."""
    st = _state(conn, actor, incident_id)
    if st.host_id != host_id:
        raise NotFound("no such incident")
    _resolve(conn, actor, incident_id, now, action="baseline", by="baseline",
             detail={"field": field, "value": value})  # fmt: skip
    hosts.set_state(conn, actor.user_id, host_id, state)
    audit.record(conn, actor.entry(now, "incident_baselined", incident_id, field=field,
                                   value=value))  # fmt: skip


def actions(inc: Incident, inv: Invariant | None) -> list[states.Action]:
    """What the dashboard offers for this incident."""
    novelty = inv is not None and novelty_value(inv, inc.subject, inc.evidence) is not None
    return states.actions(inc.stored_status, inc.remediation_status, novelty=novelty)


# --- the same actions with the running server's parts -------------------------------
# What must follow the commit (wake the job runner, tell ingest what to verify, rewrite a
# host's resident state) happens here, not in the handler, so any caller gets it.


async def remediate(svc: Services, actor: Actor, incident_id: str) -> None:
    await svc.db.write(request_remediation, actor, incident_id, iso(svc.clock.now()))
    svc.jobs.kick()  # the job was queued in that transaction: generate it now, not at the poll


async def move(svc: Services, actor: Actor, incident_id: str, action: RemediationMove) -> None:
    was = await svc.db.write(move_remediation, actor, incident_id, action, iso(svc.clock.now()))
    if action == "applied":
        svc.ingestor.expect_verification(was.host_id, incident_id, was.invariant_id, was.subject)


async def accept_baseline(svc: Services, actor: Actor, incident_id: str) -> None:
    """A novelty is normal here: the value joins the host's baseline, under the host's lock
    (no snapshot evaluates against the old state meanwhile), and the incident resolves."""
    inc = await svc.db.read(incidents.get, actor.user_id, incident_id)
    if inc is None:
        raise NotFound("no such incident")
    field, value = baseline_value(inc, svc.rules.invariant(inc.invariant_id))
    host = await svc.db.read(hosts.get, actor.user_id, inc.host_id)
    if host is None:
        raise NotFound("no such incident")
    commit = functools.partial(
        commit_baseline, actor=actor, now=iso(svc.clock.now()), incident_id=incident_id,
        host_id=inc.host_id, field=field, value=value,
    )  # fmt: skip
    await svc.ingestor.change_state(
        actor.user_id, host.agent_id, lambda s: host_state.with_baseline(s, field, value), commit
    )
