"""`python -m kefal_lite.agent`: the command line of the agent the server ships.

The install script drives it (enroll, once, unit), systemd runs it (run). argparse,
not click: the shipped agent brings only psutil and msgspec. `kefal-lite agent …` is the
same agent behind the full command line of a server install.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
from pathlib import Path

from kefal_lite import __version__
from kefal_lite import snapshot as wire
from kefal_lite.agent import client
from kefal_lite.agent.collect import Collector

UNIT = """[Unit]
Description=kefal-lite agent: host snapshots for {server}
After=network-online.target
Wants=network-online.target

[Service]
ExecStart={python} -m kefal_lite.agent run --config {config} --spool {spool} --interval {interval}
Restart=always
RestartSec=10
# Root sees every process, socket and authorized_keys file; the agent only reads.
User=root
Nice=10

[Install]
WantedBy=multi-user.target
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kefal-lite-agent", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"kefal-lite agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def paths(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, default=None,
                       help="agent config (server, agent id, token; written 0600)")  # fmt: skip
        p.add_argument("--spool", type=Path, default=None,
                       help="where unsent snapshots wait")  # fmt: skip

    enroll = commands.add_parser("enroll", help="enroll with an enrollment token")
    enroll.add_argument("--server", required=True, help="the server's URL")
    enroll.add_argument("--token-stdin", action="store_true", required=True,
                        help="read the kfe_ token from standard input, not argv")  # fmt: skip
    enroll.add_argument("--pin", default=None, help="sha256:<hex> of the server's certificate")
    enroll.add_argument("--name", default=None, help="agent name (default: the host name)")
    paths(enroll)
    run = commands.add_parser("run", help="collect and send every --interval seconds")
    run.add_argument("--interval", type=int, default=60)
    paths(run)
    once = commands.add_parser("once", help="collect one snapshot and send it now")
    paths(once)
    unit = commands.add_parser("unit", help="print the systemd unit for this install")
    unit.add_argument("--interval", type=int, default=60)
    paths(unit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config_path: Path = args.config or client.default_config_path()
    spool_dir: Path = args.spool or client.default_spool_dir()
    try:
        if args.command == "enroll":
            token = sys.stdin.readline().strip()
            if not token:
                raise client.AgentError("no enrollment token on standard input")
            hostname = socket.gethostname()[:253] or None
            cfg = client.enroll_with_token(args.server, token, args.name or hostname, hostname,
                                           args.pin)  # fmt: skip
            client.save_config(config_path, cfg)
            print(f"enrolled as agent {cfg.agent_id}; config saved to {config_path} (mode 0600)")
        elif args.command == "once":
            cfg = client.load_config(config_path)
            collector = Collector(cfg.agent_id)
            collector.prime()
            time.sleep(1.0)  # CPU percentages need an interval
            spool = client.Spool(spool_dir)
            spool.put(wire.encode(collector.collect()))
            sent = client.Agent(cfg, spool, collector).drain()
            left = len(spool.items())
            print(f"sent {sent} snapshot(s) to {cfg.server}; {left} waiting in {spool_dir}")
            if left:
                return 1
        elif args.command == "run":
            if not 5 <= args.interval <= 86_400:
                raise client.AgentError("--interval is seconds between 5 and 86400")
            cfg = client.load_config(config_path)
            print(f"kefal-lite agent {cfg.agent_id} reporting to {cfg.server} every"
                  f" {args.interval} s", flush=True)  # fmt: skip
            client.Agent(cfg, client.Spool(spool_dir)).run(args.interval)
        elif args.command == "unit":
            cfg = client.load_config(config_path)
            print(UNIT.format(server=cfg.server, python=sys.executable,
                              config=config_path.resolve(), spool=spool_dir.resolve(),
                              interval=args.interval), end="")  # fmt: skip
    except client.AgentError as exc:
        print(f"kefal-lite agent: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
