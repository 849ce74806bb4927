"""What the engine remembers across evaluations answers exactly what asking afresh would:
the Scanner's fragments per command line (with its containment skip and its line
attribution), Verdicts, and the novelty values remembered by a snapshot's account, key and
socket lists. Each is checked against a naive recomputation on varied, changing input."""

from __future__ import annotations

import random

import msgspec

from kefal_lite.detect import novelty
from kefal_lite.detect.facts import Facts, Scanner, Verdicts
from kefal_lite.snapshot import AuthorizedKey, ListeningPort, LocalUser, Process
from tests.builders import snap

NEEDLES = ["nc ", "ncat ", "ncat -e", "nc -e /bin/sh", "python", "python -c", "-c ",
           "socket", "/dev/tcp/", "bash -i >& /dev/tcp/", "sh", "a\nb", "stratum+",
           "stratum+tcp", "rm -rf", "rm -rf /", "|sh", "| sh", "|", "x"]  # fmt: skip
WORDS = ["nc", "ncat", "-e", "/bin/sh", "python", "-c", "import", "socket", "bash", "-i",
         ">&", "/dev/tcp/1.2.3.4/4444", "stratum+tcp://pool:3333", "rm", "-rf", "/", "|sh",
         "|", "sh", "a", "b", "NC", "Python3", "x" * 40]  # fmt: skip


def _cmdline(rnd: random.Random) -> str | None:
    if rnd.random() < 0.1:
        return None
    sep = rnd.choice([" ", " ", "\n", ""])
    return sep.join(rnd.choice(WORDS) for _ in range(rnd.randrange(0, 9)))


def _naive(needles: list[str], procs: list[Process]) -> tuple[frozenset[str], list[int]]:
    low_needles = {n.lower() for n in needles}
    out: set[str] = set()
    at: list[int] = []
    for i, p in enumerate(procs):
        hit = {n for n in low_needles if p.cmdline and n in p.cmdline.lower()}
        if hit:
            out |= hit
            at.append(i)
    return frozenset(out), at


def test_scanner_matches_a_naive_search_on_new_and_remembered_lines() -> None:
    rnd = random.Random(15)
    scanner = Scanner(NEEDLES)
    pool = [_cmdline(rnd) for _ in range(60)]
    for _ in range(300):
        # A mix of command lines seen before and new ones, duplicates included.
        procs = [Process(pid=i + 1, name="p", cmdline=rnd.choice(pool) if rnd.random() < 0.7
                         else _cmdline(rnd)) for i in range(rnd.randrange(0, 25))]  # fmt: skip
        assert scanner.scan(procs) == _naive(NEEDLES, procs)
        for p in procs:
            expect = _naive(NEEDLES, [p])[0]
            assert scanner.of(p.cmdline or "") == expect


def test_scanner_skips_a_fragment_only_when_one_it_contains_is_absent() -> None:
    scanner = Scanner(["ncat", "ncat -e", "cat"])
    procs = [Process(pid=1, name="x", cmdline="ncat -e /bin/sh"), Process(pid=2, name="y",
             cmdline="cat -e"), Process(pid=3, name="z", cmdline="ls")]  # fmt: skip
    assert scanner.scan(procs) == (frozenset({"ncat", "ncat -e", "cat"}), [0, 1])
    assert scanner.of("cat -e") == frozenset({"cat"})
    assert scanner.of("NCAT -E") == frozenset({"ncat", "ncat -e", "cat"})


def test_verdicts_flag_what_the_judge_would_on_changing_sets() -> None:
    rnd = random.Random(4)
    v: Verdicts[str] = Verdicts(lambda x: x.startswith("b"))
    for _ in range(500):
        values = frozenset(rnd.choice("abcde") + rnd.choice("xyz") for _ in range(rnd.randrange(6)))
        assert set(v.flagged(values)) == {x for x in values if x.startswith("b")}


def test_list_fields_are_recomputed_when_any_account_key_or_socket_changes() -> None:
    rnd = random.Random(9)
    base = snap(0)
    users = list(base.users)
    keys = list(base.ssh_authorized_keys)
    ports = list(base.listening_ports)
    for step in range(200):
        change = rnd.randrange(5)
        if change == 0 and users:
            i = rnd.randrange(len(users))
            users[i] = msgspec.structs.replace(users[i], shell=rnd.choice(
                ["/bin/bash", "/usr/sbin/nologin", "/bin/false"]))  # fmt: skip
        elif change == 1:
            users.append(LocalUser(name=f"u{step}", uid=rnd.choice([0, 5, 1001]),
                                   groups=rnd.choice([[], ["sudo"], ["docker", "adm"]]),
                                   shell="/bin/sh"))  # fmt: skip
        elif change == 2:
            keys.append(AuthorizedKey(user=rnd.choice(["root", "deploy"]), fingerprint=f"fp{step}"))
        elif change == 3:
            ports.append(ListeningPort(port=rnd.randrange(1, 65535), process=f"svc{step}",
                                       address="0.0.0.0"))  # fmt: skip
        elif ports:
            ports.pop(rnd.randrange(len(ports)))
        s = msgspec.structs.replace(base, users=list(users), ssh_authorized_keys=list(keys),
                                    listening_ports=list(ports))  # fmt: skip
        # Decoded afresh, as ingest does: equal content, new objects.
        s = msgspec.json.decode(msgspec.json.encode(s), type=type(s))
        for field in novelty.FROM_LISTS:
            remembered = novelty.present(Facts(s), field)
            assert set(remembered) == novelty.EXTRACTORS[field](Facts(s)), field
