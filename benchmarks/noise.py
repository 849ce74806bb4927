"""Noise on a real machine: how many medium+ incidents ordinary work opens, and whether a
real novelty is still caught.

    python benchmarks/noise.py                                   # 5 min of churn, 5 s interval
    python benchmarks/noise.py --minutes 15 --interval-seconds 10
    python benchmarks/noise.py --minutes 0.3 --interval-seconds 1 --json   # what the test runs

What it does, in order, all on the machine running it:

1. starts a real `kefal-lite serve` on 127.0.0.1 with a fresh data dir, registers
   the first user and enrolls an agent over HTTP (`kefal_lite.agent.client.enroll`);
2. runs the real agent in this process (`Collector.collect`, the spool, `Agent.drain`,
   exactly what `kefal-lite agent run` does, but on a 1-10 s interval, which the CLI's
   5 s minimum would not allow) through a learning window of `--learning-snapshots`
   snapshots of the machine as it is;
3. scripted benign churn for `--minutes`, in cycles, with real system binaries only
   (nothing is copied to a temporary directory: a binary run from /tmp is itself a
   finding): a tar backup, gzip, find, sha256sum over /usr/bin, `python3 -c print`, a
   loopback HTTP server on a fresh ephemeral port each cycle (a dev server) with curl
   clients holding connections to it, and a package-manager-style burst (one `sh`
   parent running dpkg-query/dpkg -L/apt-cache/apt-config/run-parts --test children,
   all read-only);
4. plants one real novelty: `python3 -m http.server` on 0.0.0.0:`--planted-port`,
   kept for `--planted-snapshots` snapshots (>= 3: novelty must persist 2 snapshots).

Learning: today's server learns by count only (3 snapshots, fixed in the builtins). A
server with `[detection] learning_minutes` / `learning_snapshots` gets
KEFAL_DETECTION_LEARNING_MINUTES=`--learning-minutes` (default 0: count only, what
replays and tests use) and KEFAL_DETECTION_LEARNING_SNAPSHOTS=`--learning-snapshots`;
the learning window then lasts at least that many minutes too. Whether they were
supported is printed.

Reported: medium+ incidents opened during the churn (the noise, target 0) with their
titles, split by a heuristic into "churn" (about one of the scripted commands or
loopback ports) and "ambient" (the rest of the machine: on a shared CI box other jobs
run too, and a person would count those as noise just the same); medium+ incidents
already open after learning (the machine's standing state); low notices; and whether
the planted listener was caught: a medium+ incident opened after it started whose
subject, title or evidence names its port or pid (target yes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kefal_lite import config as kconfig
from kefal_lite import snapshot as wire
from kefal_lite.agent import client
from kefal_lite.agent.collect import Collector

USERNAME = "noise"
PASSWORD = "noise benchmark password"
PLANTED_PORT = 19474  # fixed, below the ephemeral range, no well-known service
MEDIUM_UP = ("medium", "high", "critical")
# The real binaries, never copies: /usr/bin/python3 and not a pyenv shim.
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
CHURN_NAMES = frozenset({"tar", "gzip", "find", "sha256sum", "python3", "curl", "sh", "dpkg",
                         "dpkg-query", "apt-cache", "apt-config", "run-parts", "ls", "head",
                         "cut", "sort", "wc", "md5sum"})  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Report:
    interval_seconds: float
    churn_minutes: float
    learning: str
    running_as_root: bool
    snapshots: dict[str, int]
    standing: list[dict[str, Any]]  # medium+ opened during learning
    noise: list[dict[str, Any]]  # medium+ opened after learning, not about the planted listener
    low_notices: int
    planted: dict[str, Any]
    churn_seen: dict[str, int]  # churn process name -> snapshots that showed it
    loopback_listeners_seen: int  # distinct ephemeral loopback ports of the churn server
    churn_cycles: int
    errors: list[str] = field(default_factory=list)

    @property
    def noise_count(self) -> int:
        return len(self.noise)

    def text(self) -> str:
        by_rule = Counter(i["invariant_id"] for i in self.noise)
        lines = [
            f"learning: {self.learning}; interval {self.interval_seconds:g} s; "
            f"churn {self.churn_minutes:g} min in {self.churn_cycles} cycles; "
            f"as root: {self.running_as_root}",
            "snapshots: " + ", ".join(f"{k} {v}" for k, v in self.snapshots.items()),
            f"churn seen by the agent: {dict(sorted(self.churn_seen.items()))}; "
            f"loopback listeners on ephemeral ports: {self.loopback_listeners_seen}",
            f"standing medium+ after learning: {len(self.standing)}",
            *[f"  - [{i['severity']}] {i['title']}" for i in self.standing],
            f"NOISE medium+ during churn and after (target 0): {self.noise_count} "
            f"(churn {sum(i['source'] == 'churn' for i in self.noise)}, "
            f"ambient {sum(i['source'] == 'ambient' for i in self.noise)})",
            *[f"  {n:3d} {rule}" for rule, n in by_rule.most_common()],
            *[f"  - [{i['severity']}] {i['title']} ({i['source']})" for i in self.noise],
            f"low notices after learning: {self.low_notices}",
            f"PLANTED listener 0.0.0.0:{self.planted['port']} caught (target yes): "
            f"{'yes' if self.planted['caught'] else 'NO'}"
            + (
                f" - [{self.planted['severity']}] {self.planted['title']}"
                if self.planted["caught"]
                else ""
            ),
        ]
        if self.planted.get("evidence") is not None:
            lines.append(f"  evidence: {json.dumps(self.planted['evidence'])[:400]}")
        lines += [f"error: {e}" for e in self.errors]
        return "\n".join(lines)


# --- server ---------------------------------------------------------------------------


def _detection_env(learning_minutes: float, learning_snapshots: int) -> tuple[dict[str, str], str]:
    """Learning settings for a server that knows them; today's does not (count only, 3)."""
    env: dict[str, str] = {}
    known = []
    if "detection_learning_minutes" in kconfig.FIELDS:
        env["KEFAL_DETECTION_LEARNING_MINUTES"] = str(
            int(learning_minutes) if float(learning_minutes).is_integer() else learning_minutes
        )
        known.append(f"learning_minutes={learning_minutes:g}")
    if "detection_learning_snapshots" in kconfig.FIELDS:
        env["KEFAL_DETECTION_LEARNING_SNAPSHOTS"] = str(learning_snapshots)
        known.append(f"learning_snapshots={learning_snapshots}")
    if not known:
        return env, "server has no [detection] learning settings: builtin count of 3 snapshots"
    return env, "[detection] " + ", ".join(known)


@contextlib.contextmanager
def serving(data_dir: Path, env_extra: dict[str, str]) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "KEFAL_DATA_DIR": str(data_dir), "KEFAL_REMEDIATION_AUTO": "false",
           **env_extra}  # fmt: skip
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / "server.log", "wb")  # closed in the finally below
    proc = subprocess.Popen([sys.executable, "-m", "kefal_lite", "serve", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "server did not start: " + (data_dir / "server.log").read_text()[-2000:]
                )
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _incidents(url: str, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        r = httpx.get(f"{url}/api/v1/incidents", params={"limit": 500, "offset": offset},
                      headers=headers, timeout=30)  # fmt: skip
        r.raise_for_status()
        items = r.json()["items"]
        for inc in items:
            out[inc["id"]] = inc
        if len(items) < 500:
            return out
        offset += 500


# --- churn ----------------------------------------------------------------------------


class Churn:
    """Benign work in cycles on a background thread, until stopped."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.stop = threading.Event()
        self.cycles = 0
        self.loopback_ports: set[int] = set()
        self.errors: list[str] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._thread = threading.Thread(target=self._loop, name="churn", daemon=True)
        self.data = work / "data.bin"
        with open(self.data, "wb") as fh:
            fh.write(os.urandom(2 * 1024 * 1024))

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self.stop.set()
        self._thread.join(timeout=120)
        for proc in self._procs:
            _end(proc)

    def _run(self, *argv: str, shell: str | None = None) -> None:
        if self.stop.is_set():
            return
        cmd = ["/bin/sh", "-c", shell] if shell is not None else list(argv)
        if shell is None and shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
            return
        try:
            subprocess.run(cmd, cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=120, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            self.errors.append(f"churn step timed out: {cmd[:3]}")

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv, cwd=self.work, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._procs.append(proc)
        return proc

    def _loopback_server(self) -> tuple[subprocess.Popen[bytes], int]:
        # A dev server: a new ephemeral port every time it restarts.
        proc = self._spawn([PYTHON, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                            "--directory", str(self.work)])  # fmt: skip
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        match = re.search(r"port (\d+)", line)
        if not match:
            raise RuntimeError(f"loopback server did not start: {line!r}")
        port = int(match.group(1))
        self.loopback_ports.add(port)
        return proc, port

    def _cycle(self) -> None:
        n = self.cycles
        server, port = self._loopback_server()
        clients = [
            self._spawn(
                [
                    "curl",
                    "-s",
                    "--limit-rate",
                    "400k",
                    "-o",
                    "/dev/null",
                    f"http://127.0.0.1:{port}/data.bin",
                ]
            )  # fmt: skip
            for _ in range(3)
            if shutil.which("curl")
        ]
        try:
            self._run("tar", "-czf", str(self.work / f"backup-{n}.tgz"), "-C", "/usr/share", "doc")
            self._run("gzip", "-kf", str(self.data))
            self._run("gzip", "-t", str(self.data) + ".gz")
            self._run("find", "/usr/lib", "-name", "*.so*", "-newer", "/etc/hostname")
            self._run(shell="sha256sum /usr/bin/* >/dev/null 2>&1")
            self._run(PYTHON, "-c", "print(sum(range(10**6)))")
            # A package manager's shape: one parent, many short children, all read-only.
            self._run(
                shell=(
                    "dpkg-query -W -f='${Package}\\n' > pkgs.txt 2>/dev/null || ls /usr/share/doc > pkgs.txt; "
                    'for p in $(head -n 80 pkgs.txt); do dpkg -L "$p" >/dev/null 2>&1; '
                    'ls /usr/share/doc/"$p" >/dev/null 2>&1; done; '
                    "apt-cache policy >/dev/null 2>&1; apt-config dump >/dev/null 2>&1; "
                    "run-parts --test /etc/cron.daily >/dev/null 2>&1; "
                    "sort pkgs.txt | md5sum >/dev/null; wc -l pkgs.txt >/dev/null"
                )
            )
            for _ in range(3):  # loopback clients, short ones this time
                self._run("curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/")
        finally:
            for proc in [*clients, server]:
                _end(proc)
                self._procs.remove(proc)
            (self.work / f"backup-{n}.tgz").unlink(missing_ok=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                self._cycle()
            except Exception as exc:  # reported; the run goes on
                self.errors.append(f"churn cycle failed: {exc!r}")
                self.stop.wait(1)
            self.cycles += 1


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout:
        proc.stdout.close()


# --- the run --------------------------------------------------------------------------


class Ticker:
    """The real agent, one snapshot per tick: collect, spool, send."""

    def __init__(self, agent: client.Agent, interval: float) -> None:
        self.agent = agent
        self.interval = interval
        self.sent = 0
        self.next = time.monotonic() + max(1.0, interval)  # CPU measured over >= 1 s
        self.churn_seen: Counter[str] = Counter()
        self.own_pids: set[int] = set()
        self.planted_seen = 0
        self.planted_port = 0
        self.loopback_ports: set[int] = set()

    def tick(self) -> wire.Snapshot:
        time.sleep(max(0.0, self.next - time.monotonic()))
        self.next = time.monotonic() + self.interval
        snap = self.agent.collector.collect()
        self.agent.spool.put(wire.encode(snap))
        if self.agent.drain() < 1 or self.agent.spool.items():
            raise RuntimeError("the server did not accept a snapshot (see server.log)")
        self.sent += 1
        names = {p.name for p in snap.processes if p.pid not in self.own_pids}
        for name in names & CHURN_NAMES:
            self.churn_seen[name] += 1
        self.loopback_ports |= {lp.port for lp in snap.listening_ports
                                if lp.address == "127.0.0.1" and lp.port >= 32768}  # fmt: skip
        if any(
            lp.port == self.planted_port and lp.address == "0.0.0.0" for lp in snap.listening_ports
        ):
            self.planted_seen += 1
        return snap


def _mentions(inc: dict[str, Any], needles: list[str]) -> bool:
    text = json.dumps([inc["subject"], inc["title"], inc["evidence"]])
    return any(re.search(rf"(?<![\w.-]){re.escape(n)}(?![\w.-])", text) for n in needles)


def _brief(inc: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    out = {k: inc[k] for k in ("invariant_id", "severity", "subject", "title")}
    if source is not None:
        out["source"] = source
    return out


def run(minutes: float = 5.0, interval: float = 5.0, learning_snapshots: int = 3,
        learning_minutes: float = 0.0, planted_snapshots: int = 4,
        planted_port: int = PLANTED_PORT, workdir: Path | None = None) -> Report:  # fmt: skip
    if planted_snapshots < 3:
        raise ValueError("the planted listener must stay for at least 3 snapshots")
    env, learning = _detection_env(learning_minutes, learning_snapshots)
    with contextlib.ExitStack() as stack:
        root = workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="kefal-noise-"))
        )
        work = root / "churn"
        work.mkdir(parents=True, exist_ok=True)
        url = stack.enter_context(serving(root / "data", env))
        r = httpx.post(f"{url}/auth/register", json={"username": USERNAME, "password": PASSWORD})
        r.raise_for_status()
        r = httpx.post(f"{url}/auth/login", json={"username": USERNAME, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        cfg = client.enroll(url, USERNAME, PASSWORD, socket.gethostname())
        agent = client.Agent(cfg, client.Spool(root / "spool"), Collector(cfg.agent_id))
        agent.collector.prime()
        ticker = Ticker(agent, interval)
        ticker.planted_port = planted_port
        ticker.own_pids = {os.getpid()}

        # 1. learning: the machine as it is
        learn_n = max(learning_snapshots, math.ceil(learning_minutes * 60 / interval) + 1)
        for _ in range(learn_n):
            ticker.tick()
        after_learning = _incidents(url, headers)

        # 2. benign churn
        churn = Churn(work)
        churn.start()
        deadline = time.monotonic() + minutes * 60
        churn_n = 0
        try:
            while time.monotonic() < deadline:
                ticker.tick()
                churn_n += 1
        finally:
            churn.join()
        ticker.tick()  # the machine once the churn is over
        churn_n += 1
        after_churn = _incidents(url, headers)

        # 3. one real novelty: a listener on every address, kept
        if _port_busy(planted_port):
            raise RuntimeError(f"port {planted_port} is already in use here; pass --planted-port")
        if ticker.planted_seen:
            # Another job on this machine listened there during learning or churn: the port
            # is no longer new to the host, so whether the plant is caught says nothing.
            churn.errors.append(f"port {planted_port} was listening before the plant "
                                f"({ticker.planted_seen} snapshots): pass --planted-port")  # fmt: skip
        planted = subprocess.Popen([PYTHON, "-m", "http.server", str(planted_port), "--bind", "0.0.0.0",
                                    "--directory", str(work)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            _wait_listening(planted_port)
            for _ in range(planted_snapshots):
                ticker.tick()
        finally:
            _end(planted)
        final = _incidents(url, headers)

    needles = [str(planted_port), str(planted.pid)]
    standing = [_brief(i) for i in after_learning.values() if i["severity"] in MEDIUM_UP]
    churn_needles = sorted(CHURN_NAMES) + [str(p) for p in churn.loopback_ports]
    noise = []
    caught: dict[str, Any] | None = None
    for iid, inc in final.items():
        if iid in after_learning:
            continue
        about_planted = iid not in after_churn and _mentions(inc, needles)
        if about_planted:
            if inc["severity"] in MEDIUM_UP and (caught is None or _rank(inc) > _rank(caught)):
                caught = inc
            continue
        if inc["severity"] in MEDIUM_UP:
            noise.append(_brief(inc, "churn" if _mentions(inc, churn_needles) else "ambient"))
    low = sum(
        1 for iid, inc in final.items() if iid not in after_learning and inc["severity"] == "low"
    )
    return Report(
        interval_seconds=interval,
        churn_minutes=minutes,
        learning=learning,
        running_as_root=os.geteuid() == 0,
        snapshots={
            "learning": learn_n,
            "churn": churn_n,
            "planted": planted_snapshots,
            "planted listener seen": ticker.planted_seen,
        },  # fmt: skip
        standing=standing,
        noise=noise,
        low_notices=low,
        planted={
            "port": planted_port,
            "caught": caught is not None,
            "title": caught["title"] if caught else None,
            "severity": caught["severity"] if caught else None,
            "invariant_id": caught["invariant_id"] if caught else None,
            "evidence": caught["evidence"] if caught else None,
        },  # fmt: skip
        churn_seen=dict(ticker.churn_seen),
        loopback_listeners_seen=len(ticker.loopback_ports & churn.loopback_ports),
        churn_cycles=churn.cycles,
        errors=churn.errors,
    )


def _rank(inc: dict[str, Any]) -> int:
    return ("low", *MEDIUM_UP).index(inc["severity"])


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the planted listener on {port} did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="benign churn duration")
    ap.add_argument("--interval-seconds", type=float, default=5.0, help="agent snapshot interval")
    ap.add_argument("--learning-snapshots", type=int, default=3)
    ap.add_argument(
        "--learning-minutes",
        type=float,
        default=0.0,
        help="[detection] learning_minutes for a server that has it (0: count only)",
    )
    ap.add_argument("--planted-snapshots", type=int, default=4)
    ap.add_argument("--planted-port", type=int, default=PLANTED_PORT)
    ap.add_argument("--json", action="store_true", help="the report as JSON")
    args = ap.parse_args()
    report = run(args.minutes, args.interval_seconds, args.learning_snapshots, args.learning_minutes,
                 args.planted_snapshots, args.planted_port)  # fmt: skip
    print(json.dumps(asdict(report), indent=1) if args.json else report.text())


if __name__ == "__main__":
    main()
