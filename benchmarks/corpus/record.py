"""Record this machine with the real agent while it does ordinary work, as a benign scenario.

    python -m benchmarks.corpus.record                      # -> benchmarks/corpus/benign/recorded-ci-runner.json
    python -m benchmarks.corpus.record --interval 2 --idle 5 --id recorded-my-box

`--idle` snapshots of the machine as it is (the learning period), then, one after the
other while the agent keeps collecting: a venv with a real `pip install` (from
Python's bundled wheels, no network), a `git clone` of a local repository, a tar
backup of it, and a test run (pytest on this repository's config tests), then two
quiet snapshots.

Scrubbed before writing: the hostname and agent id are replaced, this machine's
addresses and every public peer are mapped to documentation ranges, authorized-key
fingerprints are replaced by hashes of themselves, command lines go through the
agent's `scrub` again, lose long opaque tokens and URL queries, and are dropped
entirely (name only) for binaries outside the system and project directories.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from kefal_lite import snapshot as wire
from kefal_lite.agent.collect import Collector, scrub

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
KEEP_CMDLINE = ("/usr/", "/bin/", "/sbin/", "/lib/", str(REPO), sys.prefix, sys.base_prefix)
# Opaque tokens: 24+ characters mixing letters and digits (not long-word names).
_TOKEN = re.compile(r"(?<![\w/.-])(?=[^\s/]*\d)(?=[^\s/]*[A-Za-z])[A-Za-z0-9_+=-]{24,}")
_QUERY = re.compile(r"(https?://[^\s?]+)\?\S*")


class Mapper:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.seen: dict[str, str] = {}

    def __call__(self, ip: str) -> str:
        if ip not in self.seen:
            self.seen[ip] = f"{self.prefix}{len(self.seen) + 1}"
        return self.seen[ip]


def _public(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return True
    return not (addr.is_private or addr.is_loopback or addr.is_unspecified or addr.is_link_local)


def scrub_snapshot(snap: wire.Snapshot, own: Mapper, peers: Mapper) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(snap)
    data["agent_id"], data["hostname"] = "recorded-ci-runner", "ci-runner"
    data["ip_addresses"] = [own(ip) for ip in data["ip_addresses"]]
    for proc in data["processes"]:
        exe, cmd = proc.get("exe") or "", proc.get("cmdline")
        if not cmd:
            continue
        if not exe.startswith(KEEP_CMDLINE):
            proc["cmdline"] = proc["name"]
        else:
            proc["cmdline"] = _QUERY.sub(r"\1?***", _TOKEN.sub("***", scrub(cmd)))
    for lp in data["listening_ports"]:
        if lp.get("address") and _public(lp["address"]) and lp["address"] not in ("0.0.0.0", "::"):
            lp["address"] = own(lp["address"])
    for c in data["connections"]:
        if _public(c["remote_address"]):
            c["remote_address"] = peers(c["remote_address"])
    for k in data["ssh_authorized_keys"]:
        k["fingerprint"] = "SHA256:" + hashlib.sha256(k["fingerprint"].encode()).hexdigest()[:43]
        k["comment"] = None
    data.pop("sent_at", None)
    return data


def work(tmp: Path, stop: threading.Event) -> None:
    """Ordinary things, one after another: pip, git, tar, tests."""
    import ensurepip

    bundled = Path(ensurepip.__file__).parent / "_bundled"
    steps = [
        [sys.executable, "-m", "venv", str(tmp / "venv")],
        [str(tmp / "venv" / "bin" / "python"), "-m", "pip", "install", "--no-index",
         "--find-links", str(bundled), "setuptools"],
        ["git", "clone", "--quiet", str(REPO), str(tmp / "clone")],
        ["tar", "-czf", str(tmp / "backup.tgz"), "-C", str(tmp), "clone"],
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_config.py"],
    ]  # fmt: skip
    for argv in steps:
        if stop.is_set():
            return
        subprocess.run(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False, timeout=300)  # fmt: skip
        time.sleep(1)


def record(interval: float, idle: int, tail: int = 2) -> list[dict[str, Any]]:
    collector = Collector("recorded-ci-runner")
    collector.prime()
    own, peers = Mapper("10.99.0."), Mapper("192.0.2.")
    out: list[dict[str, Any]] = []

    def take() -> None:
        time.sleep(interval)
        out.append(scrub_snapshot(collector.collect(), own, peers))

    for _ in range(idle):
        take()
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="kefal-record-") as tmp:
        worker = threading.Thread(target=work, args=(Path(tmp), stop), daemon=True)
        worker.start()
        while worker.is_alive():
            take()
        stop.set()
    for _ in range(tail):
        take()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--idle", type=int, default=5, help="snapshots before the work: learning")
    ap.add_argument("--id", default="recorded-ci-runner")
    args = ap.parse_args()
    snaps = record(args.interval, args.idle)
    scenario = {
        "id": args.id, "label": "benign", "category": "recorded_host",
        "description": "this CI machine recorded by the real agent: idle, then a venv + pip install, "
                       "a git clone, a tar backup and a pytest run (other jobs share the machine)",
        "source": f"python -m benchmarks.corpus.record --interval {args.interval:g} --idle {args.idle}",
        "learn": args.idle, "snapshots": snaps,
    }  # fmt: skip
    path = HERE / "benign" / f"{args.id}.json"
    path.write_text(json.dumps(scenario, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {path}: {len(snaps)} snapshots, {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
