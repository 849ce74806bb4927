"""The agent: real collection on this machine, fingerprints, scrubbing, enroll/run against a
real server, the spool through a server outage, and how it reacts to 401 and 402."""

from __future__ import annotations

import http.server
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from click.testing import CliRunner

from kefal_lite import snapshot
from kefal_lite.agent import client
from kefal_lite.agent.collect import Collector, fingerprint, parse_authorized_keys, scrub
from kefal_lite.cli import main
from tests.conftest import PASSWORD, free_port, http_server, query, serving
from tests.conftest import make_settings as settings_for
from tests.tools import require


def test_real_collection_validates_and_sees_this_process() -> None:
    collector = Collector("agent-x")
    collector.prime()
    snap = collector.collect()
    # what the server decodes is what the agent sends
    again = snapshot.DECODER.decode(snapshot.encode(snap))
    assert again == snap
    me = [p for p in snap.processes if p.pid == os.getpid()]
    assert len(me) == 1
    assert me[0].exe == os.path.realpath(sys.executable) or me[0].exe == os.readlink(
        "/proc/self/exe"
    )
    assert me[0].cmdline and "pytest" in me[0].cmdline
    assert me[0].user and me[0].ppid == os.getppid()
    assert snap.hostname == socket.gethostname() and snap.os == "linux" and snap.uptime_seconds > 0
    assert any(u.name == "root" and u.uid == 0 for u in snap.users)
    assert snap.agent_version


def test_listening_socket_is_seen_with_its_address_and_owner() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        snap = Collector("a").collect()
    [lp] = [lp for lp in snap.listening_ports if lp.port == port]
    assert lp.address == "127.0.0.1" and lp.protocol == "tcp" and lp.pid == os.getpid()


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "ecdsa"])
def test_fingerprints_match_ssh_keygen(tmp_path: Path, kind: str) -> None:
    key = tmp_path / f"id_{kind}"
    ssh_keygen = require("ssh-keygen")
    subprocess.run(
        [ssh_keygen, "-q", "-t", kind, "-N", "", "-C", f"me@{kind}", "-f", str(key)], check=True
    )
    expected = subprocess.run([ssh_keygen, "-lf", str(key) + ".pub"], check=True, capture_output=True,
                              text=True).stdout.split()[1]  # fmt: skip
    line = (tmp_path / f"id_{kind}.pub").read_text().strip()
    text = f'# comment line\n\nfrom="10.0.0.0/8",no-pty {line}\n{line}\nnot a key\n'
    keys = parse_authorized_keys(text, "alice")
    assert [k.fingerprint for k in keys] == [expected, expected]
    assert keys[0].user == "alice" and keys[0].comment == f"me@{kind}"
    assert fingerprint(line.split()[1]) == expected


@pytest.mark.parametrize("raw, masked, kept", [
    ("mysqld --password=hunter2 --user=db", "--password=***", "--user=db"),
    ("app --api-key abc123 --port 80", "--api-key ***", "--port 80"),
    ("curl https://bob:s3cret@example.org/x", "https://bob:***@example.org/x", "curl"),
    ("env PGPASSWORD=xyz psql", "PGPASSWORD=***", "psql"),
    ("run token:abcdef", "token:***", "run"),
    ("nginx: worker process", "nginx: worker process", "nginx"),
])  # fmt: skip
def test_scrub(raw: str, masked: str, kept: str) -> None:
    out = scrub(raw)
    assert masked in out and kept in out
    for secret in ("hunter2", "abc123", "s3cret", "xyz", "abcdef"):
        assert secret not in out


def _enroll(url: str, config: Path) -> dict[str, Any]:
    r = CliRunner().invoke(main, ["agent", "enroll", "--server", url, "--username", "alice",
                                  "--password-stdin", "--name", "this-box", "--config", str(config)],
                           input=PASSWORD + "\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    data: dict[str, Any] = msgspec.json.decode(config.read_bytes())
    return data


def _session(url: str) -> dict[str, str]:
    r = httpx.post(f"{url}/auth/login", json={"username": "alice", "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _add_alice(data_dir: Path) -> None:
    r = CliRunner().invoke(main, ["--data-dir", str(data_dir), "user", "add", "alice", "--admin",
                                  "--password-stdin"], input=PASSWORD + "\n")  # fmt: skip
    assert r.exit_code == 0, r.output


def test_enroll_and_run_against_a_real_server(tmp_path: Path) -> None:
    data, config = tmp_path / "data", tmp_path / "agent.json"
    _add_alice(data)
    with serving(data) as (url, _):
        assert CliRunner().invoke(main, ["agent", "enroll", "--server", url, "--username", "alice",
                                         "--password-stdin", "--config", str(config)],
                                  input="wrong password\n").exit_code != 0  # fmt: skip
        cfg = _enroll(url, config)
        agent = client.Agent(client.load_config(config), client.Spool(tmp_path / "spool"))
        agent.run(interval=1, iterations=2)
        session = _session(url)
        topo = httpx.get(f"{url}/api/v1/topology", headers=session).json()["hosts"]
        assert [h["hostname"] for h in topo] == [socket.gethostname()]
        assert topo[0]["agent_version"] and topo[0]["status"] == "online"
        [row] = httpx.get(f"{url}/api/v1/agents", headers=session).json()["items"]
        assert row["id"] == cfg["agent_id"] and row["name"] == "this-box" and row["last_seen_at"]
    assert query(settings_for(data), "SELECT COUNT(*) FROM snapshots")[0][0] == 2
    assert agent.spool.items() == []


def test_spool_survives_an_outage_in_order(tmp_path: Path) -> None:
    data, config = tmp_path / "data", tmp_path / "agent.json"
    _add_alice(data)
    port = free_port()
    with serving(data, port) as (url, _):
        _enroll(url, config)
    agent = client.Agent(client.load_config(config), client.Spool(tmp_path / "spool"))
    spooled = []
    for _ in range(3):  # the server is down: collected, kept, not lost
        spooled.append(agent.collect_to_spool())
        assert agent.drain() == 0
    assert agent.spool.items() == spooled and agent.backoff(60) < 60
    order = [snapshot.decode(p.read_bytes()).timestamp for p in spooled]
    with serving(data, port):
        assert agent.drain() == 3
    assert agent.spool.items() == []
    rows = query(settings_for(data), "SELECT taken_at FROM snapshots ORDER BY received_at, id")
    assert len(rows) == 3 and len(set(rows)) == 3  # none lost, none twice
    assert [r[0] for r in rows] == [
        t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z" for t in order
    ]
    # the replayed snapshots were hours late in principle; sent_at keeps clock skew quiet
    skew = query(
        settings_for(data), "SELECT COUNT(*) FROM incidents WHERE invariant_id = 'clock_skew'"
    )
    assert skew == [(0,)]


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 402

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"detail": "the trial or subscription has expired"}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[tuple[str, type[_Answer]]]:
    handler = type("Handler", (_Answer,), {})
    with http_server(handler) as where:
        yield f"http://{where}", handler


def test_402_keeps_snapshots_and_401_stops(tmp_path: Path, answering: tuple[str, type[_Answer]],
                                           caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    url, handler = answering
    agent = client.Agent(client.AgentConfig(server=url, agent_id="a", token="t"),
                         client.Spool(tmp_path / "spool"))  # fmt: skip
    agent.collect_to_spool()
    assert agent.drain() == 0 and len(agent.spool.items()) == 1
    assert "expired" in caplog.text
    handler.status = 401
    with pytest.raises(client.AgentError, match="enroll again"):
        agent.drain()
    assert len(agent.spool.items()) == 1


def test_once_print_and_install_service(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main, ["agent", "once", "--print", "--config", str(tmp_path / "none.json")]
    )
    assert r.exit_code == 0, r.output
    printed = msgspec.json.decode(r.output.encode())
    assert printed["agent_id"] == "not-enrolled" and printed["processes"]
    config = tmp_path / "agent.json"
    client.save_config(
        config, client.AgentConfig(server="http://10.0.0.1:8470", agent_id="a", token="t")
    )
    r = CliRunner().invoke(main, ["agent", "install-service", "--print", "--config", str(config),
                                  "--interval", "30"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (
        f"ExecStart={sys.executable} -m kefal_lite agent run --config {config} --interval 30"
        in r.output
    )
    unit = tmp_path / "kefal-lite-agent.service"
    r = CliRunner().invoke(
        main, ["agent", "install-service", "--config", str(config), "--unit-path", str(unit)]
    )
    assert r.exit_code == 0 and "[Service]" in unit.read_text() and "enable --now" in r.output
