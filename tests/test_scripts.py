"""scripts/test, the README's one test command: what it does when system tools are missing.

The full path (fresh clone, fresh venv, install, suite) is what `.ci/run` runs on every CI
machine; these tests hide the system tools from PATH to check the part a prepared machine
never exercises: it names what it installs, or what it cannot."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "test"
# What the script itself needs from a bare machine; every tool the tests need is left out.
BASICS = ["bash", "env", "dirname", "id", "cat", "cut", "sha256sum", "printf"]


def _bare_path(tmp_path: Path, extra: dict[str, str] | None = None) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in BASICS:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    for name, body in (extra or {}).items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return str(bin_dir)


def _run(path: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], env={"PATH": path, "HOME": "/tmp", **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_names_the_packages_when_it_cannot_install_them(tmp_path: Path) -> None:
    done = _run(_bare_path(tmp_path))
    assert done.returncode == 1
    assert "missing system packages: chromium nodejs npm openssh-client" in done.stderr
    assert "no apt-get" in done.stderr


def test_installs_what_is_missing_through_apt(tmp_path: Path) -> None:
    log = tmp_path / "apt.log"
    # Stands in for Debian's apt-get: records what it was asked to install.
    apt = f'#!/bin/bash\necho "$*" >> {log}\n'
    sudo = '#!/bin/bash\necho sudo >> "$SUDO_LOG"\nexec "$@"\n'
    done = _run(_bare_path(tmp_path, {"apt-get": apt, "sudo": sudo}), KEFAL_TEST_SYSTEM_ONLY="1",
                SUDO_LOG=str(tmp_path / "sudo.log"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "installing system packages: chromium nodejs npm openssh-client" in done.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "update -qq"
    assert calls[1] == "install -y -qq chromium nodejs npm openssh-client"
    # root needs no sudo; anyone else goes through it
    assert (tmp_path / "sudo.log").exists() == (os.getuid() != 0)


def test_a_prepared_machine_goes_straight_to_the_venv(tmp_path: Path) -> None:
    tools = {t: "#!/bin/bash\nexit 0\n" for t in ("chromium", "node", "npm", "ssh-keygen")}
    done = _run(_bare_path(tmp_path, tools), KEFAL_TEST_SYSTEM_ONLY="1")
    assert done.returncode == 0, done.stderr
    assert "installing" not in done.stderr and "system packages present" in done.stderr


def test_help_is_its_own_usage_before_any_setup(tmp_path: Path) -> None:
    # A bare machine: were --help passed on to pytest, the script would first stop on the
    # missing packages (or install them, and a venv) before printing anything useful.
    path = _bare_path(tmp_path, {"sed": f'#!/bin/bash\nexec {shutil.which("sed")} "$@"\n'})
    for flag in ("--help", "-h"):
        done = subprocess.run(["bash", str(SCRIPT), flag], env={"PATH": path, "HOME": "/tmp"},
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("One command from a fresh clone to a green suite")
        assert "KEFAL_TEST_SETUP_ONLY=1" in done.stdout and "pytest --help" in done.stdout
        assert "missing system packages" not in done.stderr


def _pg_tools(tmp_path: Path, status: str, installed: bool = True) -> dict[str, str]:
    """Stand-ins that record their calls: Debian's cluster tools (a 15/main cluster in
    `status`), apt-get, and sed (the pg_hba.conf edit of a fresh install); awk is real."""
    log = tmp_path / "calls.log"
    rec = f'#!/bin/bash\necho "${{0##*/}} $*" >> {log}\n'
    lsclusters = ("#!/bin/bash\necho '15 main 5432 " + status
                  + " postgres /var/lib/postgresql/15/main /var/log/x.log'\n")  # fmt: skip
    tools = {t: "#!/bin/bash\nexit 0\n" for t in ("chromium", "node", "npm", "ssh-keygen")}
    tools |= {"pg_ctlcluster": rec, "sed": rec, "awk": f'#!/bin/bash\nexec {shutil.which("awk")} "$@"\n'}
    if installed:
        tools["pg_lsclusters"] = lsclusters
    else:  # apt-get's stand-in "installs" it: Debian's cluster tools appear on PATH
        target = tmp_path / "bin" / "pg_lsclusters"
        tools["apt-get"] = rec + f"printf %s {shlex.quote(lsclusters)} > {target}\n{shutil.which('chmod')} +x {target}\n"
    return tools


def test_postgres_is_started_only_when_the_run_asks_for_it(tmp_path: Path) -> None:
    path = _bare_path(tmp_path, _pg_tools(tmp_path, "down"))
    plain = _run(path, KEFAL_TEST_SYSTEM_ONLY="1")
    assert plain.returncode == 0, plain.stderr
    assert not (tmp_path / "calls.log").exists()  # a SQLite run never touches PostgreSQL
    asked = subprocess.run(["bash", str(SCRIPT), "--db", "postgres"], capture_output=True, text=True,
                           env={"PATH": path, "HOME": "/tmp", "KEFAL_TEST_SYSTEM_ONLY": "1"}, timeout=60)  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert "starting PostgreSQL 15/main" in asked.stderr
    assert (tmp_path / "calls.log").read_text().splitlines() == [
        "pg_ctlcluster --skip-systemctl-redirect 15 main start"
    ]


def test_postgres_is_installed_from_debian_when_absent(tmp_path: Path) -> None:
    tools = _pg_tools(tmp_path, "online", installed=False)
    done = _run(_bare_path(tmp_path, tools), KEFAL_TEST_SYSTEM_ONLY="1",
                KEFAL_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres")  # fmt: skip
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls[:2] == ["apt-get update -qq", "apt-get install -y -qq postgresql"]
    # the fresh cluster lets the test URL in, then reloads its configuration
    assert calls[2] == "sed -i 1i host all postgres 127.0.0.1/32 trust /etc/postgresql/15/main/pg_hba.conf"
    assert calls[3] == "pg_ctlcluster --skip-systemctl-redirect 15 main reload"
