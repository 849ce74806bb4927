"""The agent the server ships, end to end: a real `kefal-lite serve`, a token over the API,
the install line it returns run by `sh` (curl, the served install.sh, a venv, pip, the
served wheel) into a temp dir with --no-service, the installed agent enrolling and
delivering a snapshot; refusals a person can read; the same over --tls with the pin,
and an impostor certificate refused before any byte of a request is sent.

The agent runs under Python 3.10 (Ubuntu 22.04's) when this machine has one."""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psutil
import pytest

from kefal_lite import agent_dist, tls
from kefal_lite.config import load
from tests.conftest import PASSWORD, free_port, serving


def _python310() -> str:
    """Ubuntu 22.04's Python if this machine has it, else the one running the tests."""
    for candidate in (os.path.expanduser("~/.pyenv/versions/3.10.13/bin/python3.10"),
                      shutil.which("python3.10")):  # fmt: skip
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        probe = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info[:2])"],
                               capture_output=True, text=True)  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 10)":
            return candidate
    return sys.executable


PYTHON = _python310()


def session(url: str, **client: Any) -> dict[str, str]:
    httpx.post(f"{url}/auth/register", json={"username": "alice", "password": PASSWORD}, **client)
    r = httpx.post(f"{url}/auth/login", json={"username": "alice", "password": PASSWORD}, **client)
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def new_token(url: str, auth: dict[str, str], **client: Any) -> dict[str, Any]:
    r = httpx.post(f"{url}/api/v1/enrollment-tokens", headers=auth, json={}, **client)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def run_line(command: str, prefix: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The install line as the Agents page shows it, with `sudo sh` made a user's sh
    installing into `prefix` without a service."""
    assert command.count("| sudo sh -s --") == 1
    local = command.replace(
        "| sudo sh -s --",
        f"| sh -s -- --prefix {prefix} --no-service --python {PYTHON} {' '.join(extra)}",
    )
    return subprocess.run(["sh", "-c", local], capture_output=True, text=True, timeout=120)


def test_install_line_end_to_end(tmp_path: Path) -> None:
    with serving(tmp_path / "data") as (url, _):
        auth = session(url)
        made = new_token(url, auth)
        host = tmp_path / "host-a"
        done = run_line(made["install_command"], host)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert "enrolled as agent" in out and "first snapshot" in out, out
        assert "run the agent with:" in out and str(host / "venv/bin/python") in out
        config = msgspec.json.decode((host / "agent.json").read_bytes())
        assert oct((host / "agent.json").stat().st_mode & 0o777) == "0o600"
        [agent] = httpx.get(f"{url}/api/v1/agents", headers=auth).json()["items"]
        assert agent["id"] == config["agent_id"] and agent["last_seen_at"]
        version = subprocess.run([str(host / "venv/bin/python"), "-c",
                                  "import sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True).stdout  # fmt: skip
        if PYTHON != sys.executable:
            assert version.strip() == "(3, 10)"

        # the same single-use token on a second host
        again = run_line(made["install_command"], tmp_path / "host-b")
        assert again.returncode != 0
        assert "this enrollment token was already used once" in again.stderr, again.stderr
        assert "nothing was enrolled" in again.stderr

        # an expired one
        late = new_token(url, auth)
        db = sqlite3.connect(tmp_path / "data" / "kefal.db")
        with db:
            db.execute("UPDATE enrollment_tokens SET expires_at = '2020-01-01T00:00:00.000Z'"
                       " WHERE id = ?", (late["id"],))  # fmt: skip
        db.close()
        expired = run_line(late["install_command"], tmp_path / "host-c")
        assert expired.returncode != 0
        assert "this enrollment token expired at 2020-01-01" in expired.stderr, expired.stderr

        # running it again upgrades in place and keeps the enrollment
        rerun = run_line(made["install_command"], host)
        assert rerun.returncode == 0, rerun.stderr
        assert "already enrolled" in rerun.stdout and "first snapshot" in rerun.stdout
        assert msgspec.json.decode((host / "agent.json").read_bytes()) == config
        assert len(httpx.get(f"{url}/api/v1/agents", headers=auth).json()["items"]) == 1

        gone = run_line(made["install_command"], host, "--uninstall")
        assert gone.returncode == 0 and not host.exists(), gone.stdout + gone.stderr


def test_install_script_refuses_bad_arguments(tmp_path: Path) -> None:
    script = tmp_path / "install.sh"
    script.write_text(agent_dist.install_script("http://127.0.0.1:1"))
    cases = {
        ("--server", "ftp://x", "--token", "t", "--no-service"): "http:// or https://",
        ("--server", "http://x", "--pin", "sha256:" + "0" * 64, "--no-service"): "--pin goes with",
        (
            "--server",
            "http://x",
            "--no-service",
            "--prefix",
            str(tmp_path / "p"),
        ): "--token is needed",
        ("--bogus",): "unknown option --bogus",
        ("--prefix", "/tmp/a b"): "--prefix: use a path",
    }
    for args, message in cases.items():
        r = subprocess.run(["sh", str(script), *args], capture_output=True, text=True)
        assert r.returncode == 1 and message in r.stderr, (args, r.stderr)
    # the URL of the request is only a default, quoted: a hostile Host header stays data
    text = agent_dist.install_script("http://x'; rm -rf / #")
    assert "SERVER='http://x'\"'\"'; rm -rf / #'" in text


@contextlib.contextmanager
def serving_tls(data_dir: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "KEFAL_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "kefal_lite", "serve", "--port", str(port),
                             "--tls"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/v1/health", timeout=1, verify=False).status_code == 200:
                    break
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()


class Impostor:
    """A TLS server on 127.0.0.1 with another certificate, recording what it receives."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.received = b""
        self.handshakes = 0
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._sock.accept()
            except OSError:
                return
            try:
                with self._context.wrap_socket(raw, server_side=True) as conn:
                    self.handshakes += 1
                    conn.settimeout(3)
                    while chunk := conn.recv(65536):
                        self.received += chunk
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self._sock.close()


def test_install_over_tls_with_the_pin(tmp_path: Path) -> None:
    with serving_tls(tmp_path / "data") as url:
        auth = session(url, verify=False)
        made = new_token(url, auth, verify=False)
        settings = load({"data_dir": str(tmp_path / "data"), "tls_enabled": True}, environ={})
        pin = tls.served_pin(settings)
        assert pin is not None and made["pin"] == pin.cert
        assert f"--pinnedpubkey {pin.spki}" in made["install_command"]
        assert f"--pin {pin.cert}" in made["install_command"]
        assert oct((tmp_path / "data" / tls.KEY_FILE).stat().st_mode & 0o777) == "0o600"

        host = tmp_path / "host"
        done = run_line(made["install_command"], host)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "first snapshot" in done.stdout
        config = msgspec.json.decode((host / "agent.json").read_bytes())
        assert config["pin"] == pin.cert and config["server"] == url
        [agent] = httpx.get(f"{url}/api/v1/agents", headers=auth, verify=False).json()["items"]
        assert agent["last_seen_at"]

        # Another server at the address: a certificate of its own. The agent stops after
        # the handshake; not a byte of a request (or of the token) reaches it.
        other = load({"data_dir": str(tmp_path / "other"), "tls_enabled": True}, environ={})
        other_files = tls.ensure_certificate(other)
        impostor = Impostor(other_files.cert, other_files.key)
        try:
            fake_url = f"https://127.0.0.1:{impostor.port}"
            token = new_token(url, auth, verify=False)["token"]
            py = str(host / "venv/bin/python")
            r = subprocess.run([py, "-m", "kefal_lite.agent", "enroll", "--server", fake_url,
                                "--token-stdin", "--pin", pin.cert, "--config",
                                str(tmp_path / "stolen.json")], input=token + "\n",
                               capture_output=True, text=True, timeout=60)  # fmt: skip
            assert r.returncode == 1
            assert "the server's certificate is sha256:" in r.stderr
            assert f"not the pinned {pin.cert}; nothing was sent" in r.stderr
            # the installed agent's snapshots are refused the same way
            cfg = {**config, "server": fake_url}
            (tmp_path / "moved.json").write_bytes(msgspec.json.encode(cfg))
            r = subprocess.run([py, "-m", "kefal_lite.agent", "once", "--config",
                                str(tmp_path / "moved.json"), "--spool", str(tmp_path / "sp")],
                               capture_output=True, text=True, timeout=60)  # fmt: skip
            assert r.returncode == 1 and "not the pinned" in r.stderr
            # the install script's own download checks the pin too
            served = tmp_path / "served.sh"
            served.write_text(httpx.get(f"{url}/agent/install.sh", verify=False).text)
            r = subprocess.run(["sh", str(served), "--server", fake_url, "--pin", pin.cert,
                                "--token", token, "--prefix", str(tmp_path / "host-2"),
                                "--no-service", "--python", PYTHON],
                               capture_output=True, text=True, timeout=120)  # fmt: skip
            assert r.returncode != 0 and "not the pinned" in r.stderr, r.stderr
            time.sleep(0.5)
            assert impostor.handshakes >= 3
            assert impostor.received == b"", impostor.received[:200]
        finally:
            impostor.close()


def test_shipped_agent_is_self_contained_python_310(tmp_path: Path) -> None:
    built = agent_dist.wheel()
    assert built.filename == f"kefal_lite_agent-{agent_dist.__version__}-py3-none-any.whl"
    assert agent_dist.wheel().data == built.data  # the same bytes for the same version
    unpacked = tmp_path / "wheel"
    with zipfile.ZipFile(__import__("io").BytesIO(built.data)) as archive:
        archive.extractall(unpacked)
        names = archive.namelist()
    assert "kefal_lite/agent/client.py" in names and "kefal_lite/snapshot.py" in names
    assert not [n for n in names if n.endswith(".py") and n.startswith("kefal_lite/")
                and n not in built.modules]  # fmt: skip
    allowed = set(sys.stdlib_module_names) | {"psutil", "msgspec", "__future__"}
    for name in built.modules:
        source = (unpacked / name).read_text()
        tree = ast.parse(source, feature_version=(3, 10))
        for node in ast.walk(tree):
            roots = []
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                roots = [node.module.split(".")[0]]
            for root in roots:
                assert root in allowed or root == "kefal_lite", (name, root)
    # only the wheel, psutil and msgspec on the path, no site-packages: it imports and runs
    deps = tmp_path / "deps"
    for module in (psutil, msgspec):
        shutil.copytree(Path(module.__file__).parent, deps / module.__name__)  # type: ignore[arg-type]
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]];"
        "import kefal_lite.agent.__main__ as m, kefal_lite.agent.client, kefal_lite.agent.collect;"
        "import kefal_lite.agent.transport;"
        "assert 'platformdirs' not in sys.modules and 'click' not in sys.modules;"
        "sys.exit(m.main(['once', '--config', sys.argv[3]]))"
    )
    r = subprocess.run([sys.executable, "-S", "-I", "-c", code, str(unpacked), str(deps),
                        str(tmp_path / "missing.json")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1 and "no agent config at" in r.stderr, r.stderr


@pytest.mark.parametrize("pin", ["sha256:" + "AB" * 32, "AB:" * 31 + "AB", "sha256:" + "ab" * 32])
def test_pin_forms(pin: str) -> None:
    from kefal_lite.agent.transport import normalise_pin

    assert normalise_pin(pin) == "sha256:" + "ab" * 32


def test_agent_paths_match_platformdirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import platformdirs

    from kefal_lite.agent import client

    for env in ({}, {"XDG_CONFIG_HOME": str(tmp_path / "c"), "XDG_DATA_HOME": str(tmp_path / "d")}):
        for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        assert client.default_config_path() == Path(
            platformdirs.user_config_dir("kefal-lite", appauthor=False)) / "agent.json"  # fmt: skip
        assert client.default_spool_dir() == Path(
            platformdirs.user_data_dir("kefal-lite", appauthor=False)) / "spool"  # fmt: skip


def test_serve_on_the_lan_without_tls_says_tokens_cross_in_clear(tmp_path: Path) -> None:
    env = {**os.environ, "KEFAL_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "kefal_lite", "serve", "--host", "0.0.0.0",
                             "--port", str(free_port())], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        while len(lines) < 20 and not any("in clear" in line for line in lines):
            lines.append(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
    [warning] = [line for line in lines if "in clear" in line]
    assert "--tls" in warning and "reverse proxy" in warning
