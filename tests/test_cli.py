from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner
from litestar.testing import TestClient

from kefal_lite.app import create_app
from kefal_lite.cli import main
from kefal_lite.clock import FrozenClock
from tests.conftest import PASSWORD, enroll, login, make_settings, query, register


def _run(data_dir: Path, *args: str, stdin: str | None = None) -> Any:
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), *args], input=stdin)
    return result


def test_user_commands(tmp_path: Path, clock: FrozenClock) -> None:
    d = tmp_path / "d"
    r = _run(
        d,
        "user",
        "add",
        "alice",
        "--admin",
        "--email",
        "a@example.org",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert r.exit_code == 0, r.output
    assert "created admin alice" in r.output
    r = _run(d, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.exit_code != 0 and "already taken" in r.output
    r = _run(d, "user", "add", "bob", "--password-stdin", stdin="short\n")
    assert r.exit_code != 0 and "password" in r.output
    # the prompt path, with confirmation
    r = _run(d, "user", "add", "bob", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert r.exit_code == 0, r.output
    listing = _run(d, "user", "list").output
    assert "alice" in listing and "admin" in listing and "bob" in listing

    settings = make_settings(d)
    with TestClient(create_app(settings, clock=clock)) as client:
        headers = login(client, "bob")
        assert client.get("/api/v1/auth/me", headers=headers).json()["role"] == "user"
        # registration is closed now that users exist
        r = client.post("/auth/register", json={"username": "carol", "password": PASSWORD})
        assert r.status_code == 403

        assert _run(d, "user", "set-role", "bob", "admin").exit_code == 0
        assert (
            client.get("/api/v1/auth/me", headers=headers).status_code == 401
        )  # role change: new session
        assert client.get("/api/v1/auth/me", headers=login(client, "bob")).json()["role"] == "admin"

        assert (
            _run(
                d, "user", "passwd", "bob", "--password-stdin", stdin="another password\n"
            ).exit_code
            == 0
        )
        login(client, "bob", "another password")

        assert _run(d, "user", "disable", "bob").exit_code == 0
        assert (
            client.post(
                "/auth/login", json={"username": "bob", "password": "another password"}
            ).status_code
            == 401
        )
        assert _run(d, "user", "disable", "bob", "--enable").exit_code == 0
        login(client, "bob", "another password")
    assert (
        "no user named"
        in _run(d, "user", "passwd", "zed", "--password-stdin", stdin="x" * 12).output
    )
    # the same use cases as the admin API, the operator's rows in each account's own trail
    rows = query(
        settings,
        "SELECT u.username, a.actor, a.action, a.target, a.detail FROM audit a"
        " JOIN users u ON u.id = a.user_id WHERE a.actor = 'cli' ORDER BY a.id",
    )
    assert rows == [
        ("alice", "cli", "cli_user_created", "alice", '{"role":"admin"}'),
        ("bob", "cli", "cli_user_created", "bob", '{"role":"user"}'),
        ("bob", "cli", "cli_role_set", "bob", '{"role":"admin"}'),
        ("bob", "cli", "cli_password_set", "bob", None),
        ("bob", "cli", "cli_user_disabled", "bob", None),
        ("bob", "cli", "cli_user_enabled", "bob", None),
    ]


def test_config_dump_redacts_secrets(tmp_path: Path) -> None:
    env = {"KEFAL_SMTP_PASSWORD": "hunter2hunter2", "KEFAL_SECRET": "topsecretvalue"}
    result = CliRunner(env=env).invoke(main, ["--data-dir", str(tmp_path), "config", "dump"])
    assert result.exit_code == 0
    dumped = json.loads(result.output)
    assert dumped["smtp_password"] == "***" and dumped["secret"] == "***"
    assert "hunter2" not in result.output and "topsecret" not in result.output
    assert dumped["port"] == 8470 and dumped["data_dir"] == str(tmp_path)


def test_backup_is_a_consistent_copy(tmp_path: Path) -> None:
    d = tmp_path / "d"
    _run(d, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    target = tmp_path / "backup.db"
    r = _run(d, "backup", str(target))
    assert r.exit_code == 0, r.output
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT username FROM users").fetchall() == [("alice",)]
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    assert _run(d, "backup", str(target)).exit_code != 0  # never overwrites


def test_restart_keeps_users_tokens_and_the_jwt_secret(tmp_path: Path, clock: FrozenClock) -> None:
    settings = make_settings(tmp_path / "d")
    with TestClient(create_app(settings, clock=clock)) as client:
        register(client, "alice")
        headers = login(client, "alice")
        agent = enroll(client, "alice")
    with TestClient(create_app(settings, clock=clock)) as client:
        me = client.get("/api/v1/auth/me", headers=headers)  # a JWT from before the restart
        assert me.status_code == 200 and me.json()["username"] == "alice"
        [listed] = client.get("/api/v1/agents", headers=headers).json()["items"]
        assert listed["id"] == agent["agent_id"] and listed["status"] == "active"
    assert (tmp_path / "d" / "secret.key").read_text().strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_second_server_on_the_same_data_dir_refuses_to_start(tmp_path: Path) -> None:
    d = tmp_path / "d"
    port = _free_port()
    env = {**os.environ, "KEFAL_DATA_DIR": str(d)}
    cmd = [sys.executable, "-m", "kefal_lite", "serve", "--port"]
    first = subprocess.Popen(
        [*cmd, str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).json() == {
                    "status": "ok"
                }:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and first.poll() is None, (
                "first server did not start"
            )
            time.sleep(0.1)
        second = subprocess.run(
            [*cmd, str(_free_port())], env=env, capture_output=True, text=True, timeout=30
        )
        assert second.returncode != 0
        assert "already using the data dir" in second.stderr
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200
    finally:
        first.terminate()
        out, _ = first.communicate(timeout=20)
    text = out.decode()
    assert "No users yet" in text and f"kefal-lite --data-dir {d} user add NAME --admin" in text
    assert f"http://127.0.0.1:{port}/" in text and "0.0.0.0" in text


def test_empty_outbox_and_user_list_say_what_they_show(tmp_path: Path) -> None:
    d = tmp_path / "d"
    r = _run(d, "user", "add", "alice", "--admin", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert r.exit_code == 0, r.output
    r = _run(d, "outbox")
    # an empty answer read as a failure
    assert r.exit_code == 0 and r.output.startswith("no mails yet"), r.output
    lines = _run(d, "user", "list").output.splitlines()
    assert lines[0].split() == ["USERNAME", "ROLE", "EMAIL", "CREATED"]
    assert lines[1].split()[:3] == ["alice", "admin", "-"]


def _banner(script: Path, data_dir: Path, path: str) -> str:
    env = {**os.environ, "KEFAL_DATA_DIR": str(data_dir), "PATH": path}
    proc = subprocess.Popen([str(script), "serve", "--port", str(_free_port())], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        text = ""
        deadline = time.monotonic() + 30
        while "register; the first account" not in text and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            text += line
        return text
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_first_admin_hint_names_a_program_the_shell_finds(tmp_path: Path) -> None:
    # The README's venv route runs ~/.kefal/bin/kefal-lite, which is not on PATH: the
    # hint printed by serve must be a command that works when pasted.
    script = Path(sys.executable).parent / "kefal-lite"
    assert script.exists(), "the dev install puts the console script beside python"
    d = tmp_path / "d"
    system = "/usr/local/bin:/usr/bin:/bin"
    text = _banner(script, d, system)
    assert f"    {script} --data-dir {d} user add NAME --admin" in text, text
    text = _banner(script, d, f"{script.parent}:{system}")
    assert f"    kefal-lite --data-dir {d} user add NAME --admin" in text, text
