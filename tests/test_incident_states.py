"""The incident state machine: every (status, remediation) pair against every action, as a
table written out by hand; and the `actions` the API lists on each incident."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from kefal_lite.app import create_app
from kefal_lite.clock import FrozenClock
from kefal_lite.errors import InvalidTransition
from kefal_lite.usecases import incident_states as states
from tests.builders import T0
from tests.conftest import EXPOSED_PG, enroll, in_app, login, make_settings, register, send

# What a person may do, per stored state. "baseline" is left out: it also needs a novelty
# invariant (tested below).
ALLOWED = {
    ("open", "none"): "acknowledge resolve dismiss suppress remediate",
    ("open", "pending"): "acknowledge resolve dismiss suppress",
    ("open", "proposed"): "acknowledge resolve dismiss suppress remediate accept reject applied",
    ("open", "accepted"): "acknowledge resolve dismiss suppress remediate applied",
    ("open", "rejected"): "acknowledge resolve dismiss suppress remediate",
    ("open", "applied"): "acknowledge resolve dismiss suppress",
    ("open", "verified"): "acknowledge resolve dismiss suppress remediate",
    ("open", "failed"): "acknowledge resolve dismiss suppress remediate",
    ("acknowledged", "none"): "resolve dismiss suppress remediate",
    ("acknowledged", "pending"): "resolve dismiss suppress",
    ("acknowledged", "proposed"): "resolve dismiss suppress remediate accept reject applied",
    ("acknowledged", "accepted"): "resolve dismiss suppress remediate applied",
    ("acknowledged", "rejected"): "resolve dismiss suppress remediate",
    ("acknowledged", "applied"): "resolve dismiss suppress",
    ("acknowledged", "verified"): "resolve dismiss suppress remediate",
    ("acknowledged", "failed"): "resolve dismiss suppress remediate",
    ("dismissed", "none"): "",
    ("dismissed", "pending"): "",
    ("dismissed", "proposed"): "accept reject",  # advisory: the plan can still be recorded
    ("dismissed", "accepted"): "",
    ("dismissed", "rejected"): "",
    ("dismissed", "applied"): "",
    ("dismissed", "verified"): "",
    ("dismissed", "failed"): "",
    ("resolved", "none"): "",
    ("resolved", "pending"): "",
    ("resolved", "proposed"): "accept reject",
    ("resolved", "accepted"): "",
    ("resolved", "rejected"): "",
    ("resolved", "applied"): "",
    ("resolved", "verified"): "",
    ("resolved", "failed"): "",
}

LEADS_TO = {
    "acknowledge": ("acknowledged", None),
    "resolve": ("resolved", None),
    "baseline": ("resolved", None),
    "dismiss": ("dismissed", None),
    "suppress": ("resolved", None),
    "remediate": (None, "pending"),
    "accept": (None, "accepted"),
    "reject": (None, "rejected"),
    "applied": (None, "applied"),
}


def test_the_table_covers_every_stored_state_and_action() -> None:
    assert set(ALLOWED) == {(s, r) for s in states.STATUSES for r in states.REMEDIATIONS}
    assert set(LEADS_TO) == set(states.ACTIONS) == set(states.MOVES)


@pytest.mark.parametrize(("status", "remediation"), sorted(ALLOWED))
@pytest.mark.parametrize("action", states.ACTIONS)
def test_every_transition(status: str, remediation: str, action: states.Action) -> None:
    allowed = set(ALLOWED[(status, remediation)].split())
    if action == "baseline":  # resolve's rule, for a novelty
        allowed = {"baseline"} if "resolve" in allowed else set()
    if action in allowed:
        move = states.check(action, status, remediation)
        assert (move.to_status, move.to_remediation) == LEADS_TO[action]
    else:
        with pytest.raises(InvalidTransition) as refused:
            states.check(action, status, remediation)
        # the refusal names the state the person sees
        assert status in refused.value.detail or remediation in refused.value.detail
    listed = states.actions(status, remediation, novelty=True)
    assert (action in listed) == (action in allowed)
    assert "baseline" not in states.actions(status, remediation, novelty=False)


def test_refusals_say_what_is_needed() -> None:
    with pytest.raises(InvalidTransition, match="only an open incident can be acknowledged; "
                       "this one is acknowledged"):  # fmt: skip
        states.check("acknowledge", "acknowledged", "none")
    with pytest.raises(InvalidTransition, match="the remediation is none; applied needs "
                       "accepted or proposed"):  # fmt: skip
        states.check("applied", "open", "none")
    with pytest.raises(InvalidTransition, match="the incident is resolved; nothing left"):
        states.check("applied", "resolved", "accepted")
    with pytest.raises(InvalidTransition, match="a remediation is already pending"):
        states.check("remediate", "open", "pending")


def test_each_incident_lists_its_actions_and_they_follow_the_state(
    tmp_path: Path, clock: FrozenClock
) -> None:
    settings = make_settings(tmp_path / "data", auth_signup=True, remediation_auto=False)
    with TestClient(create_app(settings, clock=clock)) as c:
        _actions_follow_the_state(c, clock)


def _actions_follow_the_state(c: TestClient[Any], clock: FrozenClock) -> None:
    register(c, "alice")
    alice = login(c, "alice")
    clock.set(T0 + timedelta(seconds=5))
    agent = enroll(c, "alice")
    send(c, agent, 0, add_ports=EXPOSED_PG)
    [inc] = c.get("/api/v1/incidents", headers=alice).json()["items"]
    assert inc["actions"] == ["acknowledge", "resolve", "dismiss", "suppress", "remediate"]
    url = f"/api/v1/incidents/{inc['id']}"
    acked = c.post(f"{url}/acknowledge", headers=alice).json()
    assert acked["actions"] == ["resolve", "dismiss", "suppress", "remediate"]
    assert c.get(url, headers=alice).json()["actions"] == acked["actions"]

    # stale (the host went silent) is shown, but the stored state decides: an acknowledged
    # stale incident offers no second acknowledge (which the API would refuse with 409)
    svc = c.app.state.kefal
    clock.advance(minutes=11)
    assert in_app(c, svc.monitor.check_silent) == 1
    stale = c.get(url, headers=alice).json()
    assert stale["status"] == "stale" and stale["actions"] == acked["actions"]
    host = c.get(f"/api/v1/hosts/{inc['host_id']}", headers=alice).json()
    assert [i["actions"] for i in host["open_incidents"] if i["id"] == inc["id"]] == [
        acked["actions"]
    ]

    assert c.post(f"{url}/dismiss", headers=alice).json()["actions"] == []
    listed = c.get("/api/v1/incidents?status=dismissed", headers=alice).json()["items"]
    assert [i["actions"] for i in listed] == [[]]
