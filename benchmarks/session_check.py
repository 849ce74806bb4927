"""The read every authenticated request makes: the user alone (before sessions had rows)
vs the session joined to its user (now), on one database of 2,000 users x 10 sessions.

    PYTHONPATH=src python benchmarks/session_check.py [--calls 20000]

Only the difference within one run means anything on a shared machine.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from kefal_lite.store import migrations, sessions, users

NOW = "2026-11-24T00:00:00.000Z"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "k.db", isolation_level=None)
        conn.row_factory = sqlite3.Row
        migrations.migrate(conn)
        user_id = session_id = ""
        conn.execute("BEGIN")
        for i in range(2000):
            user_id = str(uuid.uuid4())
            users.create(conn, user_id=user_id, username=f"u{i}", password_hash="x",
                         role="user", now=NOW)  # fmt: skip
            for _ in range(10):
                session_id = str(uuid.uuid4())
                sessions.create(conn, session_id=session_id, user_id=user_id, token_version=0,
                                now=NOW, client="192.0.2.1", user_agent="bench")  # fmt: skip
        conn.execute("COMMIT")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(args.calls):
                users.get(conn, user_id)
            before = (time.perf_counter() - start) / args.calls * 1e6
            start = time.perf_counter()
            for _ in range(args.calls):
                sessions.check(conn, user_id, session_id)
            after = (time.perf_counter() - start) / args.calls * 1e6
            print(f"users.get {before:5.1f} us   sessions.check {after:5.1f} us per call")
        conn.close()


if __name__ == "__main__":
    main()
