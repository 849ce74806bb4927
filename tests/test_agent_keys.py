"""The root agent reads every user's authorized_keys, files those users control: a FIFO,
a symlink to /dev/zero, a huge file, a symlinked .ssh or someone else's file must each be
skipped (or capped) with a note, quickly, and the normal keys still reported."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefal_lite.agent.collect import KEYS_MAX_BYTES, Collector, fingerprint
from tests.conftest import LogLines, log_lines

USER_UID = 4242  # the tests run as root; 4242 stands for the user whose home it is


@pytest.fixture
def notes() -> Iterator[LogLines]:
    with log_lines("kefal_lite.agent.collect") as handler:
        yield handler


@pytest.fixture(scope="module")
def key_line(tmp_path_factory: pytest.TempPathFactory) -> str:
    key = tmp_path_factory.mktemp("key") / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@host", "-f",
                    str(key)], check=True)  # fmt: skip
    return (key.parent / "id.pub").read_text().strip()


def home_with(tmp_path: Path, name: str) -> tuple[Path, Path]:
    home = tmp_path / name
    ssh = home / ".ssh"
    ssh.mkdir(parents=True)
    for p in (home, ssh):
        os.chown(p, USER_UID, USER_UID)
    return home, ssh


def owned(path: Path, uid: int = USER_UID) -> Path:
    os.chown(path, uid, uid, follow_symlinks=False)
    return path


def keys_of(home: Path) -> tuple[list[str], float]:
    started = time.monotonic()
    keys, denied = Collector("a").keys_in_home("mallory", str(home), USER_UID)
    assert denied == 0
    return [k.fingerprint for k in keys], time.monotonic() - started


def test_a_normal_key_file_is_read(tmp_path: Path, key_line: str) -> None:
    home, ssh = home_with(tmp_path, "h")
    (ssh / "authorized_keys").write_text(key_line + "\n")
    owned(ssh / "authorized_keys")
    (ssh / "authorized_keys2").write_text(key_line + "\n")  # root-owned: sshd accepts it too
    found, _ = keys_of(home)
    assert found == [fingerprint(key_line.split()[1])] * 2


def test_a_fifo_does_not_hang_the_agent(tmp_path: Path, key_line: str, notes: LogLines) -> None:
    home, ssh = home_with(tmp_path, "h")
    os.mkfifo(ssh / "authorized_keys")  # no writer: a plain open() blocks forever
    owned(ssh / "authorized_keys")
    (ssh / "authorized_keys2").write_text(key_line + "\n")
    found, took = keys_of(home)
    assert found == [fingerprint(key_line.split()[1])] and took < 2
    assert any("authorized_keys: not a regular file" in n for n in notes.lines)


def test_a_symlink_to_dev_zero_is_not_followed(tmp_path: Path, key_line: str,
                                               notes: LogLines) -> None:  # fmt: skip
    home, ssh = home_with(tmp_path, "h")
    (ssh / "authorized_keys").symlink_to("/dev/zero")
    owned(ssh / "authorized_keys")
    (ssh / "authorized_keys2").write_text(key_line + "\n")
    found, took = keys_of(home)
    assert found == [fingerprint(key_line.split()[1])] and took < 2
    assert any("authorized_keys: a symbolic link; not followed" in n for n in notes.lines)


def test_a_symlinked_ssh_dir_is_not_followed(tmp_path: Path, key_line: str,
                                             notes: LogLines) -> None:  # fmt: skip
    home, ssh = home_with(tmp_path, "h")
    elsewhere = tmp_path / "root-only"
    elsewhere.mkdir()
    (elsewhere / "authorized_keys").write_text(key_line + "\n")
    ssh.rmdir()
    ssh.symlink_to(elsewhere)
    found, _ = keys_of(home)
    assert found == []
    assert any(".ssh: a symbolic link; not followed" in n for n in notes.lines)


def test_another_users_file_is_skipped(tmp_path: Path, key_line: str, notes: LogLines) -> None:
    home, ssh = home_with(tmp_path, "h")
    (ssh / "authorized_keys").write_text(key_line + "\n")
    owned(ssh / "authorized_keys", uid=5151)  # planted by another account
    found, _ = keys_of(home)
    assert found == []
    assert any("owned by uid 5151" in n for n in notes.lines)


def test_a_huge_file_is_read_only_up_to_the_cap(tmp_path: Path, key_line: str,
                                                notes: LogLines) -> None:  # fmt: skip
    home, ssh = home_with(tmp_path, "h")
    path = ssh / "authorized_keys"
    with path.open("w") as fh:
        fh.write(key_line + "\n")
        fh.truncate(64 * 1024**3)  # 64 GiB, sparse: a full read would exhaust memory
    owned(path)
    found, took = keys_of(home)
    assert found == [fingerprint(key_line.split()[1])] and took < 2
    assert any(f"larger than {KEYS_MAX_BYTES} bytes" in n for n in notes.lines)


def test_each_note_is_said_once_per_file(tmp_path: Path, notes: LogLines) -> None:
    home, ssh = home_with(tmp_path, "h")
    os.mkfifo(ssh / "authorized_keys")
    collector = Collector("a")
    for _ in range(3):
        collector.keys_in_home("mallory", str(home), USER_UID)
    assert len([n for n in notes.lines if "not a regular file" in n]) == 1


def test_real_collection_still_reads_roots_keys() -> None:
    snap = Collector("a").collect()  # whatever /root/.ssh holds here, nothing hangs or crashes
    assert all(k.fingerprint.startswith("SHA256:") for k in snap.ssh_authorized_keys)
