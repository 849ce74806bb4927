"""Graph (the estate view, the full view, attack paths) and topology for a 1,000-host estate, next to /api/v1/health in the same run.

    python benchmarks/graph_load.py [--hosts 1000] [--requests 20]

Agents are created straight in a fresh database (enrolling 1,000 agents over
HTTP would measure argon2, not the graph); then a real `kefal-lite serve` on
127.0.0.1 receives one snapshot per host over HTTP (80 processes, 15 listening
ports, a connection to a neighbour's database), and the benchmark times
sequential GET /api/v1/graph, /api/v1/topology and /api/v1/health requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from benchmarks.ingest_load import PASSWORD, Conn, free_port
from kefal_lite import security, snapshot
from kefal_lite.detect import corpus
from kefal_lite.store import agents, users
from kefal_lite.store.db import open_sync, transaction


def host_snapshot(agent_id: str, n: int, hosts: int) -> bytes:
    base = corpus.load()["ubuntu-web"][0]
    procs = list(base.processes) + [
        snapshot.Process(pid=5000 + i, name=f"worker{i}", user="www-data")
        for i in range(80 - len(base.processes))
    ]
    peer = (n + 1) % hosts
    conn = snapshot.Connection(
        remote_address=f"10.{peer // 250}.{peer % 250}.2",
        remote_port=5432,
        local_port=40000,
        process="gunicorn",
    )
    ports = list(base.listening_ports)[:14] + [
        snapshot.ListeningPort(port=5432, process="postgres", address=f"10.{n // 250}.{n % 250}.2")
    ]
    return snapshot.encode(
        msgspec.structs.replace(
            base,
            agent_id=agent_id,
            hostname=f"host-{n:04d}",
            timestamp=datetime.now(UTC),
            ip_addresses=[f"10.{n // 250}.{n % 250}.2"],
            processes=procs,
            listening_ports=ports,
            connections=[conn],
        )
    )


async def timed(conn: Conn, path: str, headers: dict[str, str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status, body = await conn.request("GET", path, b"", headers)
        out.append(time.perf_counter() - t)
        assert status == 200, body[:200]
    return out


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data_dir or tmp
        db = open_sync(Path(data) / "kefal.db")
        tokens = []
        with transaction(db):
            user = users.create(
                db,
                user_id=str(uuid.uuid4()),
                username="bench",
                password_hash=security.hash_password(PASSWORD),
                role="admin",
                now="2026-01-01T00:00:00.000Z",
            )
            for i in range(args.hosts):
                token, agent_id = security.new_token("kfa_"), str(uuid.uuid4())
                agents.create(
                    db,
                    org_id=user.id,  # the personal organization
                    agent_id=agent_id,
                    name=f"a{i}",
                    token_hash=security.token_hash(token),
                    now="2026-01-01T00:00:00.000Z",
                )
                tokens.append((agent_id, token))
        db.close()
        env = {**os.environ, "KEFAL_DATA_DIR": data}
        server = subprocess.Popen(
            [sys.executable, "-m", "kefal_lite", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    (await Conn.open(port)).close()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            conns = [await Conn.open(port) for _ in range(8)]

            async def post(worker: int) -> None:
                for n in range(worker, args.hosts, len(conns)):
                    agent_id, token = tokens[n]
                    status, body = await conns[worker].request(
                        "POST",
                        "/api/v1/ingest",
                        host_snapshot(agent_id, n, args.hosts),
                        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                    )
                    assert status == 200, body

            await asyncio.gather(*(post(w) for w in range(len(conns))))
            c = conns[0]
            status, body = await c.request(
                "POST",
                "/auth/login",
                json.dumps({"username": "bench", "password": PASSWORD}).encode(),
                {"Content-Type": "application/json"},
            )
            auth = {"Authorization": f"Bearer {json.loads(body)['access_token']}"}
            t = time.perf_counter()
            _, graph_body = await c.request("GET", "/api/v1/graph", b"", auth)
            cold = time.perf_counter() - t  # nothing cached yet: every host decoded and drawn
            g = json.loads(graph_body)
            await timed(c, "/api/v1/health", {}, 200)  # warm-up
            health = await timed(c, "/api/v1/health", {}, 2000)
            graph = await timed(c, "/api/v1/graph", auth, args.requests)
            topo = await timed(c, "/api/v1/topology", auth, args.requests)
            first_host = next(n for n in g["nodes"] if n["data"]["type"] == "host")
            one = await timed(
                c, f"/api/v1/graph?host_id={first_host['data']['host_id']}", auth, args.requests
            )
            full = await timed(c, "/api/v1/graph?view=full", auth, args.requests)
            blast = await timed(
                c, f"/api/v1/graph/paths?from={first_host['data']['host_id']}", auth, args.requests
            )
            # a quarter of the estate reports between two refreshes (1,000 hosts at one
            # snapshot a minute, a dashboard refreshing every 15 s)
            churn = []
            for x in conns[1:]:  # idle past the server's keep-alive by now
                x.close()
            conns[1:] = [await Conn.open(port) for _ in range(len(conns) - 1)]
            for r in range(5):
                sent = list(range(r, args.hosts, 4))

                async def repost(worker: int, sent: list[int] = sent) -> None:
                    for n in sent[worker :: len(conns)]:
                        agent_id, token = tokens[n]
                        await conns[worker].request(
                            "POST",
                            "/api/v1/ingest",
                            host_snapshot(agent_id, n, args.hosts),
                            {
                                "Authorization": f"Bearer {token}",
                                "Content-Type": "application/json",
                            },
                        )

                await asyncio.gather(*(repost(w) for w in range(len(conns))))
                churn += await timed(c, "/api/v1/graph", auth, 1)
            for x in conns:
                x.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
        # a restart: the first estate request after it, then the p50 of it and 19 more
        server = subprocess.Popen(
            [sys.executable, "-m", "kefal_lite", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(400):
                try:
                    c = await Conn.open(port)
                    status, _ = await c.request("GET", "/api/v1/health", b"", {})
                    if status == 200:
                        break
                    c.close()
                except (OSError, IndexError):
                    await asyncio.sleep(0.05)
            t = time.perf_counter()
            status, _ = await c.request("GET", "/api/v1/graph", b"", auth)
            restart_first = time.perf_counter() - t
            assert status == 200
            after_restart = [restart_first] + await timed(c, "/api/v1/graph", auth, 19)
            c.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    p50 = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    print(
        f"hosts={args.hosts}: graph has {len(g['nodes']):,} nodes, {len(g['edges']):,} edges, {len(graph_body) / 2**20:.1f} MiB"
    )
    print(f"health p50 {p50(health):.2f} ms ({len(health) / sum(health):,.0f} sequential req/s)")
    print(
        f"graph cold (first request) {cold * 1000:.1f} ms = {cold * 1000 / p50(health):.0f} x health"
    )
    print(
        f"graph first request after a restart {restart_first * 1000:.1f} ms;"
        f" p50 of it and 19 more {p50(after_restart):.1f} ms"
    )
    print(
        f"graph after 25% of hosts reported, p50 of 5: {p50(churn):.1f} ms = {p50(churn) / p50(health):.0f} x health"
    )
    print(
        f"graph unchanged estate p50 {p50(graph):.1f} ms = {p50(graph) / p50(health):.0f} x health"
    )
    print(f"graph?view=full p50 {p50(full):.1f} ms = {p50(full) / p50(health):.0f} x health")
    print(f"graph/paths p50 {p50(blast):.1f} ms = {p50(blast) / p50(health):.0f} x health")
    print(f"topology p50 {p50(topo):.1f} ms = {p50(topo) / p50(health):.0f} x health")
    print(f"graph?host_id p50 {p50(one):.1f} ms = {p50(one) / p50(health):.0f} x health")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument(
        "--data-dir", help="keep the estate here (an empty directory) for profiling"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
