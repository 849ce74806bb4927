"""Ingest load: N enrolled agents post realistic, changing snapshots over real HTTP.

    python benchmarks/ingest_load.py [--agents 64] [--seconds 15] [--concurrency 64]

Starts `kefal-lite serve` (uvicorn; uvloop and httptools when installed) on
127.0.0.1 with a fresh data dir, enrolls the agents, then measures in one run:
  1. GET /api/v1/health requests/s at the same concurrency (the baseline),
  2. POST /api/v1/ingest snapshots/s, p50/p99 latency, and server RSS.
Snapshots come from the benign corpus (about 12 KB, 60-75 processes) with a
fresh timestamp, jittered CPU and, for one in ten, a violation (an exposed
database or a miner), so the full pipeline runs: token lookup, decode, 32
invariants, group commit of host, snapshot and incidents.

The client is a minimal keep-alive HTTP/1.1 client on asyncio streams, so the
load generator costs as little CPU as possible on this 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from kefal_lite import snapshot
from kefal_lite.detect import corpus

PASSWORD = "benchmark password"


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_bodies(agent_id: str, n: int, rnd: random.Random) -> list[bytes]:
    hosts = list(corpus.load().values())
    base = hosts[rnd.randrange(len(hosts))]
    out = []
    for i in range(n):
        s = base[i % len(base)]
        procs = [
            snapshot.Process(
                pid=p.pid,
                name=p.name,
                user=p.user,
                cpu_percent=round(rnd.random() * 5, 1),
                exe=p.exe,
                cmdline=p.cmdline,
                ppid=p.ppid,
            )
            for p in s.processes
        ]
        ports = list(s.listening_ports)
        if i % 10 == 9:
            if rnd.random() < 0.5:
                ports.append(
                    snapshot.ListeningPort(port=5432, process="postgres", address="0.0.0.0")
                )
            else:
                procs.append(
                    snapshot.Process(
                        pid=31337, name="xmrig", user="www-data", cpu_percent=99.0, exe="/tmp/xmrig"
                    )
                )
        out.append(
            snapshot.encode(
                snapshot.Snapshot(
                    agent_id=agent_id,
                    timestamp=datetime(2026, 1, 1, tzinfo=UTC),
                    hostname=f"{s.hostname}-{agent_id[:6]}",
                    os=s.os,
                    kernel=s.kernel,
                    uptime_seconds=s.uptime_seconds + i * 60,
                    ip_addresses=s.ip_addresses,
                    processes=procs,
                    listening_ports=ports,
                    logged_in_users=s.logged_in_users,
                    connections=s.connections,
                    users=s.users,
                    ssh_authorized_keys=s.ssh_authorized_keys,
                    agent_version="bench",
                )
            )
        )
    return out


def with_now(body: bytes) -> bytes:
    # the timestamp must move forward, as a real agent's does
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
    return body.replace(b'"2026-01-01T00:00:00Z"', b'"' + now + b'"', 1)


async def hammer(
    port: int, seconds: float, concurrency: int, make: object
) -> tuple[int, list[float], dict[int, int]]:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    codes: dict[int, int] = {}

    async def worker(w: int) -> None:
        conn = await Conn.open(port)
        try:
            while time.perf_counter() < deadline:
                method, path, body, headers = make(w)  # type: ignore[operator]
                t = time.perf_counter()
                status, _ = await conn.request(method, path, body, headers)
                latencies.append(time.perf_counter() - t)
                codes[status] = codes.get(status, 0) + 1
        finally:
            conn.close()

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return len(latencies), latencies, codes


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "KEFAL_DATA_DIR": data}
        subprocess.run(
            [sys.executable, "-m", "kefal_lite", "user", "add", "bench", "--password-stdin"],
            input=PASSWORD + "\n",
            text=True,
            env=env,
            check=True,
            capture_output=True,
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "kefal_lite", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    conn = await Conn.open(port)
                    conn.close()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            proc = psutil.Process(server.pid)
            conn = await Conn.open(port)
            agents = []
            for i in range(args.agents):
                status, body = await conn.request(
                    "POST",
                    "/api/v1/enroll",
                    json.dumps(
                        {"username": "bench", "password": PASSWORD, "name": f"a{i}"}
                    ).encode(),
                    {"Content-Type": "application/json"},
                )
                assert status == 200, body
                agents.append(json.loads(body))
            conn.close()
            rnd = random.Random(7)
            bodies = {a["agent_id"]: make_bodies(a["agent_id"], 10, rnd) for a in agents}
            counters = [0] * args.concurrency

            def health(w: int) -> tuple[str, str, bytes, dict[str, str]]:
                return "GET", "/api/v1/health", b"", {}

            def ingest(w: int) -> tuple[str, str, bytes, dict[str, str]]:
                agent = agents[w % len(agents)]
                counters[w] += 1
                body = with_now(bodies[agent["agent_id"]][counters[w] % 10])
                return (
                    "POST",
                    "/api/v1/ingest",
                    body,
                    {
                        "Authorization": f"Bearer {agent['token']}",
                        "Content-Type": "application/json",
                    },
                )

            await hammer(port, 2, args.concurrency, health)  # warm-up
            n_h, lat_h, codes_h = await hammer(port, args.seconds, args.concurrency, health)
            await hammer(port, 2, args.concurrency, ingest)  # warm-up (also ends learning)
            rss_before = proc.memory_info().rss
            spy = None
            if args.profile:  # py-spy (pip install py-spy) samples the server during the ingest run
                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--pid",
                        str(server.pid),
                        "--duration",
                        str(int(args.seconds)),
                        "--format",
                        "raw",
                        "--threads",
                        "-o",
                        args.profile,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            n_i, lat_i, codes_i = await hammer(port, args.seconds, args.concurrency, ingest)
            if spy is not None:
                spy.wait(timeout=60)
            rss_after = proc.memory_info().rss
        finally:
            server.terminate()
            server.wait(timeout=30)
        db_size = sum(f.stat().st_size for f in Path(data).glob("kefal.db*"))
    health_rate = n_h / args.seconds
    ingest_rate = n_i / args.seconds
    lat_i.sort()
    print(f"agents={args.agents} concurrency={args.concurrency} seconds={args.seconds}")
    print(f"health: {health_rate:,.0f} req/s  codes={codes_h}")
    print(f"ingest: {ingest_rate:,.0f} snapshots/s  codes={codes_i}")
    print(
        f"ingest latency: p50 {statistics.median(lat_i) * 1000:.1f} ms, p99 {lat_i[int(len(lat_i) * 0.99)] * 1000:.1f} ms"
    )
    print(f"ratio ingest/health: {ingest_rate / health_rate:.3f}")
    print(
        f"server RSS: {rss_before / 2**20:.0f} MiB before, {rss_after / 2**20:.0f} MiB after; database {db_size / 2**20:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--profile", help="write py-spy collapsed stacks of the server here")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
