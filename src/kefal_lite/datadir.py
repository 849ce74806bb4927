"""The data dir holds password hashes, full snapshots and reset links: it is the owner's alone.

0700 for the directory and 0600 for every file in it. SQLite creates its -wal and
-shm with the mode of the database file, so creating that file 0600 before SQLite
first opens it keeps all three private whatever the process umask; `serve` also
sets umask 077 for anything else the process writes.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
# Owner-only is a POSIX notion; on Windows the ACL of the profile directory protects the files.
_POSIX = hasattr(os, "geteuid")
# What kefal-lite writes into a data dir: the database and its companions, backups
# (*.db), the secret, the lock.
_OURS = re.compile(r"^(kefal.*|secret\.key|.*\.db(-wal|-shm|-journal)?)$")


class DataDirUnsafe(PermissionError):
    """Another account can write into the data dir: it could plant secret.key (and forge
    any session) or a -wal file it reads. Refused rather than warned about."""


def secure(data_dir: Path) -> None:
    """Create the data dir 0700, or tighten it and the files in it if we own them; refuse
    a data dir that others can write to and we cannot close (DataDirUnsafe)."""
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if not _POSIX:  # pragma: no cover - exercised on Windows only
        return
    st = os.stat(data_dir)
    # A shared sticky directory such as /tmp is not ours to close, and not a data dir.
    if not st.st_mode & stat.S_ISVTX and _tighten(data_dir, DIR_MODE):
        log.warning("data dir %s was readable by others: now mode 0700", data_dir)
        st = os.stat(data_dir)
    if st.st_mode & (stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH):
        raise DataDirUnsafe(
            f"data dir {data_dir}: others can write to it (mode {stat.S_IMODE(st.st_mode):o});"
            " use a directory only this account can write, e.g. mkdir -m 700 ~/kefal-data"
        )
    loose = []
    with os.scandir(data_dir) as entries:
        for entry in entries:
            # Ours by name only, in case the data dir is a home directory; and never
            # through a symlink, or chmod would change whatever it points at.
            if (_OURS.match(entry.name) and entry.is_file(follow_symlinks=False)
                    and _tighten(Path(entry.path), FILE_MODE)):  # fmt: skip
                loose.append(entry.name)
    if loose:
        log.warning("files in %s were readable by others: now mode 0600: %s",
                    data_dir, ", ".join(sorted(loose)))  # fmt: skip


def prepare_database(db_path: Path) -> None:
    """Before SQLite opens the file: private dir, database file created 0600, and its
    existing -wal/-shm/-journal tightened (a database made by an older release)."""
    secure(db_path.parent)
    try:
        os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass
    if _POSIX:
        for suffix in ("", "-wal", "-shm", "-journal"):
            _tighten(db_path.with_name(db_path.name + suffix), FILE_MODE)


def create_private(path: Path) -> None:
    """Create an empty file only its owner can read; refuse an existing path (or symlink)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def _tighten(path: Path, mode: int) -> bool:
    """chmod to `mode` when the path grants anything to group or others and is ours.
    Someone else's file is left alone (and said): chmod would fail, and it is not ours
    to change."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode) or not stat.S_IMODE(st.st_mode) & 0o077:
        return False
    if st.st_uid != os.geteuid():
        log.warning("%s is readable by others and owned by uid %d, not us: left as is",
                    path, st.st_uid)  # fmt: skip
        return False
    os.chmod(path, mode)
    return True
