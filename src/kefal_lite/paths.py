"""Attack paths: from one host, the hosts an intruder reaches next and why. Pure: no I/O.

The facts are one tenant's hosts' latest state, nothing else: a caller that passes another
tenant's hosts gets paths into them, so every reader feeding this filters on org_id.

A step from host A to host B is one of:
- `ssh_key`: one key fingerprint authorized on both (its holder, often a key left on A,
  logs in to B); the step's privilege is the account on B, `root` above any other;
- `connection`: A holds an established connection to a service listening on B, matched by
  one of B's addresses; A has that service's address, port and usually its credentials;
- `login`: the same account is logged in on both (a reused password, a forwarded agent).
Steps are ranked by how direct and how privileged they are (RANK, lower first); a path's
cost is (hops, sum of ranks), and each reachable host is reported once, by its cheapest path.
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Sequence

import msgspec


class HostFacts(msgspec.Struct, frozen=True):
    """What paths and the estate view read of a host's latest snapshot."""

    host_id: str
    hostname: str
    ips: tuple[str, ...] = ()
    # (port, process, bind address) of each listening socket
    listening: tuple[tuple[int, str | None, str | None], ...] = ()
    # (remote address, remote port, local process) of each outbound connection
    conns: tuple[tuple[str, int, str | None], ...] = ()
    keys: tuple[tuple[str, str], ...] = ()  # (account, fingerprint) of authorized keys
    logins: tuple[str, ...] = ()


class Step(msgspec.Struct, frozen=True):
    from_host_id: str
    from_hostname: str
    to_host_id: str
    to_hostname: str
    kind: str  # ssh_key | connection | login
    privilege: str  # root | user | service
    reason: str
    rank: int
    fingerprint: str | None = None
    account: str | None = None
    address: str | None = None
    port: int | None = None
    process: str | None = None


class Path(msgspec.Struct, frozen=True):
    host_id: str
    hostname: str
    hops: int
    cost: int
    privilege: str  # what the last step gives on this host
    steps: list[Step]


# Lower is more direct and more privileged: a root key is a shell as root on the target;
# a user key a shell; a connection reaches one service; a shared login only suggests reuse.
RANK = {("ssh_key", "root"): 1, ("ssh_key", "user"): 2, ("connection", "service"): 3,
        ("login", "root"): 3, ("login", "user"): 4}  # fmt: skip
MAX_HOPS = 6


# Addresses repeat on every request; parsing them was half the estate view's build time.
@functools.lru_cache(maxsize=65_536)
def _loopback(address: str | None) -> bool:
    if address is None:
        return False
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return address == "localhost"


@functools.lru_cache(maxsize=65_536)
def _unspecified_or_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    return ip.is_loopback or ip.is_unspecified or ip.is_link_local


def owners_by_ip(hosts: Iterable[HostFacts]) -> dict[str, str]:
    """The one host of each address. An address two hosts claim (a Docker bridge, a reused
    private subnet) names neither: a guessed owner would invent a path."""
    owners: dict[str, str | None] = {}
    for h in hosts:
        for ip in set(h.ips):
            if _unspecified_or_loopback(ip):
                continue
            owners[ip] = h.host_id if owners.get(ip, h.host_id) == h.host_id else None
    return {ip: hid for ip, hid in owners.items() if hid is not None}


def service_on(target: HostFacts, port: int, address: str) -> tuple[bool, str | None]:
    """Whether `target` listens on `port` reachable at `address` (not loopback-only, and
    bound to that address or to all), and the owning process."""
    reachable, owner = False, None
    for p, process, bound in target.listening:
        if p != port or _loopback(bound):
            continue
        if bound is None or bound == address or _unspecified_or_loopback(bound):
            reachable, owner = True, owner or process
    return reachable, owner


def connection_steps(hosts: Sequence[HostFacts]) -> dict[str, list[Step]]:
    """host id -> the `connection` steps out of it (one per target host and port)."""
    by_id = {h.host_id: h for h in hosts}
    owners = owners_by_ip(hosts)
    out: dict[str, list[Step]] = defaultdict(list)
    for h in hosts:
        seen: set[tuple[str, int]] = set()
        for address, port, process in h.conns:
            target_id = owners.get(address)
            if target_id is None or target_id == h.host_id or (target_id, port) in seen:
                continue
            target = by_id[target_id]
            reachable, service = service_on(target, port, address)
            if not reachable:
                continue
            seen.add((target_id, port))
            label = service or process
            reason = f"connects to {address}:{port}" + (f" ({label})" if label else "")
            out[h.host_id].append(Step(h.host_id, h.hostname, target_id, target.hostname,
                                       "connection", "service", reason,
                                       RANK[("connection", "service")], address=address,
                                       port=port, process=label))  # fmt: skip
    return out


def _privilege(account: str) -> str:
    return "root" if account == "root" else "user"


def _best_account(accounts: Iterable[str]) -> str:
    return min(accounts, key=lambda a: (a != "root", a))


def key_step(src: HostFacts, target: HostFacts, fingerprint: str, accounts: Iterable[str]) -> Step:
    """`src` to `target` by a key authorized on both, as the most privileged of `accounts`
    (the accounts that authorize it on `target`)."""
    account = _best_account(accounts)
    priv = _privilege(account)
    reason = f"ssh key {fingerprint} authorized for {account} on {target.hostname}"
    return Step(src.host_id, src.hostname, target.host_id, target.hostname, "ssh_key", priv,
                reason, RANK[("ssh_key", priv)], fingerprint=fingerprint,
                account=account)  # fmt: skip


def login_step(src: HostFacts, target: HostFacts, account: str) -> Step:
    priv = _privilege(account)
    return Step(src.host_id, src.hostname, target.host_id, target.hostname, "login", priv,
                f"{account} logged in on both", RANK[("login", priv)], account=account)  # fmt: skip


def key_hosts(hosts: Iterable[HostFacts]) -> dict[str, dict[str, set[str]]]:
    """fingerprint -> host id -> the accounts it is authorized for there."""
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for h in hosts:
        for account, fingerprint in h.keys:
            out[fingerprint][h.host_id].add(account)
    return out


def login_hosts(hosts: Iterable[HostFacts]) -> dict[str, set[str]]:
    """account -> the hosts it is logged in on."""
    out: dict[str, set[str]] = defaultdict(set)
    for h in hosts:
        for account in h.logins:
            out[account].add(h.host_id)
    return out


def attack_paths(hosts: Sequence[HostFacts], start: str, max_hops: int = 3) -> list[Path]:
    """Every host reachable from `start` in at most `max_hops` steps, cheapest path first
    (fewest hops, then most direct and privileged steps, then hostname)."""
    by_id = {h.host_id: h for h in hosts}
    if start not in by_id:
        return []
    conns = connection_steps(hosts)
    keys = key_hosts(hosts)
    logins = login_hosts(hosts)
    # A key or account group is expanded once, from the cheapest host that has it: a step's
    # rank depends on the target alone, so a later expansion could not do better. That keeps
    # a deploy key on every host linear, not quadratic.
    done_keys: set[str] = set()
    done_logins: set[str] = set()
    best: dict[str, tuple[int, int, str]] = {start: (0, 0, by_id[start].hostname)}
    came: dict[str, tuple[str, Step]] = {}
    heap: list[tuple[int, int, str, str]] = [(0, 0, by_id[start].hostname, start)]

    def offer(src: str, step: Step, hops: int, cost: int) -> None:
        target = step.to_host_id
        cand = (hops + 1, cost + step.rank, step.to_hostname)
        if target == start or cand[0] > max_hops or cand >= best.get(target, (1 << 30, 0, "")):
            return
        best[target] = cand
        came[target] = (src, step)
        heapq.heappush(heap, (*cand, target))

    while heap:
        hops, cost, _, hid = heapq.heappop(heap)
        if best.get(hid, (hops, cost))[:2] != (hops, cost) or hops >= max_hops:
            continue
        here = by_id[hid]
        for fingerprint in sorted({fp for _, fp in here.keys} - done_keys):
            done_keys.add(fingerprint)
            for other, accounts in sorted(keys[fingerprint].items()):
                if other != hid:
                    offer(hid, key_step(here, by_id[other], fingerprint, accounts), hops, cost)
        for account in sorted(set(here.logins) - done_logins):
            done_logins.add(account)
            for other in sorted(logins[account] - {hid}):
                offer(hid, login_step(here, by_id[other], account), hops, cost)
        for step in conns.get(hid, ()):
            offer(hid, step, hops, cost)

    out = []
    for hid, (hops, cost, hostname) in best.items():
        if hid == start:
            continue
        chain: list[Step] = []
        at = hid
        while at != start:
            at, step = came[at][0], came[at][1]
            chain.append(step)
        chain.reverse()
        out.append(Path(hid, hostname, hops, cost, chain[-1].privilege, chain))
    out.sort(key=lambda p: (p.hops, p.cost, p.hostname, p.host_id))
    return out
