"""Files on disk are their owner's alone: the data dir 0700, the database, its WAL and
SHM, the secret, the lock and backups 0600, and the agent's spooled snapshots too."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from kefal_lite.agent import client as agent_client
from kefal_lite.app import create_app
from kefal_lite.cli import main
from kefal_lite.clock import FrozenClock
from kefal_lite.datadir import DataDirUnsafe, secure
from tests.builders import base
from tests.conftest import PASSWORD, LogLines, log_lines, make_settings, serving


@pytest.fixture
def notices() -> Iterator[LogLines]:
    with log_lines("kefal_lite.datadir") as handler:
        yield handler


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _add_alice(data: Path) -> None:
    r = CliRunner().invoke(main, ["--data-dir", str(data), "user", "add", "alice", "--admin",
                                  "--password-stdin"], input=PASSWORD + "\n")  # fmt: skip
    assert r.exit_code == 0, r.output


def _now_snapshot(agent_id: str) -> dict[str, Any]:
    snap = base(0, agent_id)
    snap["timestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return snap


def test_server_data_dir_and_every_file_in_it_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = os.umask(0o022)  # the usual login umask: the server must not depend on ours
    try:
        _add_alice(data)
        with serving(data) as (url, _):
            r = httpx.post(f"{url}/api/v1/enroll",
                           json={"username": "alice", "password": PASSWORD})  # fmt: skip
            agent = r.json()
            r = httpx.post(f"{url}/api/v1/ingest", json=_now_snapshot(agent["agent_id"]),
                           headers={"Authorization": f"Bearer {agent['token']}"})  # fmt: skip
            assert r.status_code == 200, r.text
            # while serving, WAL and SHM exist beside the database
            names = sorted(p.name for p in data.iterdir())
            assert {"kefal.db", "kefal.db-wal", "kefal.db-shm", "secret.key",
                    "kefal.lock"} <= set(names)  # fmt: skip
            assert mode(data) == 0o700
            assert {n: mode(data / n) for n in names} == dict.fromkeys(names, 0o600)
            backup = tmp_path / "copy.db"
            r2 = CliRunner().invoke(main, ["--data-dir", str(data), "backup", str(backup)])
            assert r2.exit_code == 0, r2.output
            assert mode(backup) == 0o600
            conn = sqlite3.connect(backup)
            assert conn.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0] == 1
            conn.close()
    finally:
        os.umask(old)


def test_backup_refuses_an_existing_path_or_a_planted_symlink(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _add_alice(data)
    target = tmp_path / "victim"
    target.write_text("keep me")
    link = tmp_path / "link.db"
    link.symlink_to(target)
    for path in (target, link):
        r = CliRunner().invoke(main, ["--data-dir", str(data), "backup", str(path)])
        assert r.exit_code != 0 and "exists" in r.output
    assert target.read_text() == "keep me"


def test_a_loose_data_dir_from_an_older_release_is_tightened_once(
    tmp_path: Path, notices: LogLines
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    old = os.umask(0o022)
    try:  # what today's release left behind: SQLite's default 0644 files
        conn = sqlite3.connect(data / "kefal.db")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.close()
        (data / "secret.key").write_text("s" * 64 + "\n")
        (data / "notes.txt").write_text("the operator's own file")
    finally:
        os.umask(old)
    os.chmod(data / "secret.key", 0o644)
    assert mode(data / "kefal.db") == 0o644
    settings = make_settings(data)
    with TestClient(create_app(settings, clock=FrozenClock(datetime.now(UTC)))) as c:
        assert c.get("/api/v1/health").status_code == 200
        assert mode(data) == 0o700
        for name in ("kefal.db", "kefal.db-wal", "kefal.db-shm", "secret.key", "kefal.lock"):
            assert mode(data / name) == 0o600, name
    assert mode(data / "notes.txt") == 0o644  # not ours by name: left alone
    assert any("now mode 0700" in n for n in notices.lines)
    assert any("now mode 0600" in n and "secret.key" in n for n in notices.lines)
    notices.lines.clear()
    with TestClient(create_app(settings, clock=FrozenClock(datetime.now(UTC)))):
        pass
    assert notices.lines == []  # once


def test_someone_elses_loose_data_dir_is_left_alone_and_said(
    tmp_path: Path, notices: LogLines
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o755)
    os.chown(data, 4242, 4242)  # the tests run as root; 4242 stands for another account
    secure(data)
    assert mode(data) == 0o755
    assert any("uid 4242" in line for line in notices.lines)


def test_agent_spool_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        spool = agent_client.Spool(tmp_path / "spool")
        path = spool.put(b"{}")
    finally:
        os.umask(old)
    assert mode(tmp_path / "spool") == 0o700 and mode(path) == 0o600


def test_a_data_dir_others_can_write_is_refused(tmp_path: Path) -> None:
    """Review: a shared sticky dir (/tmp itself) or someone else's 0777 dir was only
    warned about; another account could plant secret.key there first (then forge any
    session, admin included) or a -wal file it can read (password hashes, snapshots)."""
    for name, owner, dir_mode in (("sticky", 0, 0o1777), ("theirs", 4242, 0o777)):
        data = tmp_path / name
        data.mkdir()
        os.chown(data, owner, owner)
        os.chmod(data, dir_mode)
        planted = data / "secret.key"
        planted.write_text("k" * 64 + "\n")
        os.chown(planted, 4242, 4242)
        with pytest.raises(DataDirUnsafe, match="others can write"):
            secure(data)
        with pytest.raises(DataDirUnsafe):
            create_app(make_settings(data), clock=FrozenClock(datetime.now(UTC)))
        r = CliRunner().invoke(main, ["--data-dir", str(data), "user", "add", "alice",
                                      "--password-stdin"], input=PASSWORD + "\n")  # fmt: skip
        assert r.exit_code != 0 and "others can write" in r.output, r.output
        assert not (data / "kefal.db").exists()
