"""The first hour of a new user (issue 18): every command, flag and message as the README
promises, each through the real CLI (CliRunner or a real `kefal-lite serve`)."""

from __future__ import annotations

import http.server
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from kefal_lite.agent import client
from kefal_lite.agent.collect import Collector
from kefal_lite.cli import main
from tests.conftest import PASSWORD, free_port, http_server, serving

RULE = {
    "name": "redis exposed on the LAN",
    "invariant_type": "structural",
    "predicate": {"kind": "port_exposed", "params": {"ports": [6379]}},
    "severity": "critical",
    "metadata": {"description": "Redis listens on a non-loopback address."},
}


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(main, list(args), input=stdin)


def _user(data_dir: Path, name: str = "alice") -> None:
    r = cli("user", "add", name, "--admin", "--password-stdin", "--data-dir", str(data_dir),
            stdin=PASSWORD + "\n")  # fmt: skip
    assert r.exit_code == 0, r.output


def _user_error(r: Result) -> str:
    """A user error: non-zero, a message, and no traceback (click's own exit, not a crash)."""
    assert r.exit_code != 0
    assert isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    return r.output


# --- global options --------------------------------------------------------------------


def test_data_dir_and_config_work_before_or_after_the_subcommand(tmp_path: Path) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    _user(here, "alice")
    _user(elsewhere, "zoe")
    for args in (
        ["--data-dir", str(here), "user", "list"],
        ["user", "--data-dir", str(here), "list"],
        ["user", "list", "--data-dir", str(here)],
        # the value nearest the command wins
        ["--data-dir", str(elsewhere), "user", "list", "--data-dir", str(here)],
    ):
        r = cli(*args)
        assert r.exit_code == 0, (args, r.output)
        assert "alice" in r.output and "zoe" not in r.output, args
    # a flag beats the environment, wherever it stands
    r = cli("user", "list", "--data-dir", str(here), env={"KEFAL_DATA_DIR": str(elsewhere)})
    assert "alice" in r.output and "zoe" not in r.output

    toml = tmp_path / "kefal.toml"
    toml.write_text(f'port = 18470\ndata_dir = "{here}"\n')
    for args in (
        ["--config", str(toml), "config", "dump"],
        ["config", "dump", "--config", str(toml)],
    ):
        dumped = json.loads(cli(*args).output)
        assert dumped["port"] == 18470 and dumped["data_dir"] == str(here)
    assert "alice" in cli("user", "list", "--config", str(toml)).output


def test_config_dump_takes_serves_flags_and_shows_what_that_serve_uses(tmp_path: Path) -> None:
    toml = tmp_path / "kefal.toml"
    toml.write_text('host = "127.0.0.1"\nport = 9000\n')
    r = cli("config", "dump", "--config", str(toml), "--port", "18470", "--host", "0.0.0.0",
            "--data-dir", str(tmp_path / "d"))  # fmt: skip
    assert r.exit_code == 0, r.output
    dumped = json.loads(r.output)
    assert (dumped["host"], dumped["port"], dumped["data_dir"]) == (
        "0.0.0.0", 18470, str(tmp_path / "d"),
    )  # fmt: skip
    assert not (tmp_path / "d").exists()  # looking creates nothing


# --- commands on a data dir without a database --------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["user", "list"],
        ["user", "passwd", "alice", "--password-stdin"],
        ["user", "set-role", "alice", "admin"],
        ["user", "disable", "alice"],
        ["outbox"],
        ["backup", "BACKUP"],
        ["invariants", "export"],
        ["invariants", "import", "PACK", "--owner", "alice"],
    ],
)
def test_no_database_is_said_and_nothing_is_created(tmp_path: Path, args: list[str]) -> None:
    data = tmp_path / "typo"
    pack = tmp_path / "pack.json"
    pack.write_text(json.dumps({"format": "kefal-lite/invariants/1", "invariants": [RULE]}))
    args = [str(tmp_path / "b.db") if a == "BACKUP" else str(pack) if a == "PACK" else a
            for a in args]  # fmt: skip
    out = _user_error(cli(*args, "--data-dir", str(data), stdin=PASSWORD + "\n"))
    assert f"no database at {data / 'kefal.db'}: is the server's --data-dir elsewhere?" in out
    assert not data.exists() and not (tmp_path / "b.db").exists()


def test_backup_into_a_missing_directory_names_it(tmp_path: Path) -> None:
    d = tmp_path / "d"
    _user(d)
    target = tmp_path / "no" / "such" / "copy.db"
    out = _user_error(cli("backup", str(target), "--data-dir", str(d)))
    assert f"directory {target.parent} does not exist" in out and "mkdir -p" in out


@pytest.mark.parametrize(
    "env, toml, expected",
    [
        ({"KEFAL_PORT": "abc"}, "", "KEFAL_PORT=abc: expected a whole number"),
        ({}, "port = [\n", "is not valid TOML"),
        ({}, "[smtp]\nport = 0\n", "key `port` in [smtp]: must be at least 1"),
        ({}, None, "config file"),  # --config naming a file that does not exist
    ],
)
def test_configuration_errors_are_one_line_naming_what_to_change(
    tmp_path: Path, env: dict[str, str], toml: str | None, expected: str
) -> None:
    path = tmp_path / "kefal.toml"
    if toml is not None:
        path.write_text(toml)
    out = _user_error(cli("config", "dump", "--config", str(path), env=env))
    assert expected in out and "$.port" not in out


# --- serve: a taken port ------------------------------------------------------------------


def test_taken_port_is_said_before_any_banner(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        toml = tmp_path / "kefal.toml"
        toml.write_text(f"port = {port}\n")
        env = {**os.environ, "KEFAL_DATA_DIR": str(tmp_path / "d")}
        # `serve --config f` is accepted, and the port comes from that file
        done = subprocess.run([sys.executable, "-m", "kefal_lite", "serve", "--config", str(toml)],
                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    assert "listening on" not in done.stdout and "Traceback" not in done.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "--port" in done.stderr and "KEFAL_PORT" in done.stderr


# --- API messages for people -------------------------------------------------------------


def test_first_admin_password_error_says_at_least_10_characters(tmp_path: Path) -> None:
    from litestar.testing import TestClient

    from kefal_lite.app import create_app
    from tests.conftest import make_settings

    with TestClient(create_app(make_settings(tmp_path / "d"))) as c:
        r = c.post("/auth/register", json={"username": "alice", "password": "short"})
        assert r.status_code == 400
        assert r.json()["detail"] == [
            {"loc": ["body", "password"], "msg": "at least 10 characters",
             "type": "validation_error"},
        ]  # fmt: skip
        r = c.post("/auth/register", json={"password": PASSWORD})
        assert r.json()["detail"][0]["loc"] == ["body", "username"]
        assert r.json()["detail"][0]["msg"] == "required"


# --- agent -------------------------------------------------------------------------------


def test_agent_as_root_is_not_told_to_run_as_root(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    Collector("a", euid=0)._warn_once("sockets", "other namespaces")
    assert "cannot read sockets" in caplog.text and "run the agent as root" not in caplog.text
    caplog.clear()
    Collector("a", euid=1000)._warn_once("sockets", "access denied")
    assert "run the agent as root" in caplog.text


class _Ingest(http.server.BaseHTTPRequestHandler):
    """A server that takes snapshots (200) or answers 405 to everything at a wrong path."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ok = self.path in ("/api/v1/ingest", "/api/v1/enroll")
        body = b'{"agent_id": "a1", "token": "t1"}' if self.path == "/api/v1/enroll" else b"{}"
        self.send_response(200 if ok else 405)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ingest_peer() -> Iterator[str]:
    with http_server(_Ingest) as where:
        yield where


def test_agent_logs_sent_and_back_online(
    tmp_path: Path, ingest_peer: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    down = client.Agent(client.AgentConfig(f"http://127.0.0.1:{free_port()}", "a1", "t"),
                        client.Spool(tmp_path / "spool"))  # fmt: skip
    down.collect_to_spool()
    down.collect_to_spool()
    assert down.drain() == 0
    # the same agent, its server back
    up = client.Agent(client.AgentConfig(f"http://{ingest_peer}", "a1", "t"), down.spool,
                      down.collector)  # fmt: skip
    up._failures = down._failures
    assert up.drain() == 2
    assert "back online: replayed 2 spooled snapshot(s)" in caplog.text
    caplog.clear()
    up.collect_to_spool()
    assert up.drain() == 1
    assert f"sent 1 snapshot(s) to http://{ingest_peer}" in caplog.text


def test_agent_once_creates_no_spool(tmp_path: Path, ingest_peer: str) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    config = tmp_path / "agent.json"
    client.save_config(config, client.AgentConfig(f"http://127.0.0.1:{free_port()}", "a1", "t"))
    out = _user_error(cli("agent", "once", "--config", str(config), env=env))
    assert "not accepted" in out and "nothing was kept" in out
    client.save_config(config, client.AgentConfig(f"http://{ingest_peer}", "a1", "t"))
    r = cli("agent", "once", "--config", str(config), env=env)
    assert r.exit_code == 0 and "sent 1 snapshot" in r.output
    assert not (tmp_path / "xdg").exists()
    assert "agent enroll" in _user_error(
        cli("agent", "once", "--config", str(tmp_path / "none.json"), env=env)
    )


def test_enroll_takes_host_port_and_explains_a_wrong_path(tmp_path: Path, ingest_peer: str) -> None:
    config = tmp_path / "agent.json"
    r = cli("agent", "enroll", "--server", ingest_peer, "--username", "alice",
            "--password-stdin", "--config", str(config), stdin=PASSWORD + "\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert f"using http://{ingest_peer}" in r.output
    assert client.load_config(config).server == f"http://{ingest_peer}"
    # a path that is not the server's: the 405 becomes what to type instead
    out = _user_error(cli("agent", "enroll", "--server", f"http://{ingest_peer}/kefal",
                          "--username", "alice", "--password-stdin", "--config", str(config),
                          stdin=PASSWORD + "\n"))  # fmt: skip
    assert "405" in out and "no kefal-lite server there" in out and "with no path" in out
    out = _user_error(cli("agent", "enroll", "--server", "ftp://host", "--username", "alice",
                          "--password-stdin", stdin=PASSWORD + "\n"))  # fmt: skip
    assert "use an http:// or https:// URL" in out
    assert client.normalise_server(f"http://{ingest_peer}/api/v1/enroll")[0] == (
        f"http://{ingest_peer}"
    )


def test_install_service_prints_the_systemctl_line_for_its_unit_path(tmp_path: Path) -> None:
    config = tmp_path / "agent.json"
    client.save_config(config, client.AgentConfig("http://10.0.0.1:8470", "a", "t"))
    unit = tmp_path / "units" / "kefal-agent.service"
    out = _user_error(cli("agent", "install-service", "--config", str(config),
                          "--unit-path", str(unit)))  # fmt: skip
    assert f"directory {unit.parent} does not exist" in out
    unit.parent.mkdir()
    r = cli("agent", "install-service", "--config", str(config), "--unit-path", str(unit))
    assert r.exit_code == 0, r.output
    assert f"systemctl link {unit} && systemctl enable --now kefal-agent.service" in r.output
    from kefal_lite.cli import systemctl_line

    assert systemctl_line(Path("/etc/systemd/system/k.service")) == (
        "systemctl daemon-reload && systemctl enable --now k.service"
    )


# --- invariants ----------------------------------------------------------------------------


def test_invariants_test_verify_exits_non_zero_on_a_failing_rule(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(RULE))
    noisy = {**RULE, "name": "sshd runs",
             "predicate": {"kind": "process_name_in", "params": {"names": ["sshd"]}}}  # fmt: skip
    bad.write_text(json.dumps(noisy))
    from kefal_lite.detect import corpus

    real = sum(len(snaps) for snaps in corpus.load().values())
    r = cli("invariants", "test", str(good), "--verify")
    assert r.exit_code == 0, r.output
    assert f"verification passed ({real} benign corpus snapshots checked)" in r.output
    out = _user_error(cli("invariants", "test", str(bad), "--verify"))
    assert "verification failed" in out
    # the count is of snapshots, never more than the corpus holds
    fired = next(line for line in out.splitlines() if "benign corpus snapshots, first" in line)
    hit = int(fired.split("it fired on ")[1].split(" of the ")[0])
    assert 0 < hit <= real and f"of the {real} benign" in fired


def test_docs_rules_example_is_a_valid_rule(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "docs" / "rules.md").read_text()
    example = text.split("```json\n", 1)[1].split("```", 1)[0]
    rule = tmp_path / "rule.json"
    rule.write_text(example)
    r = cli("invariants", "test", str(rule), "--verify")
    assert r.exit_code == 0, r.output


def test_invariants_import_takes_effect_in_a_running_server(tmp_path: Path) -> None:
    data = tmp_path / "d"
    _user(data)
    pack = tmp_path / "pack.json"
    pack.write_text(json.dumps({"format": "kefal-lite/invariants/1", "invariants": [RULE]}))
    with serving(data) as (url, _):
        token = httpx.post(f"{url}/auth/login",
                           json={"username": "alice", "password": PASSWORD}).json()  # fmt: skip
        headers = {"Authorization": f"Bearer {token['access_token']}"}

        def names() -> set[str]:
            items = httpx.get(f"{url}/api/v1/invariants", headers=headers).json()["items"]
            return {i["name"] for i in items}

        assert RULE["name"] not in names()
        r = cli("invariants", "import", str(pack), "--owner", "alice", "--data-dir", str(data))
        assert r.exit_code == 0 and "active: redis exposed" in r.output, r.output
        deadline = time.monotonic() + 15
        while RULE["name"] not in names():
            assert time.monotonic() < deadline, "the import never took effect"
            time.sleep(0.25)
