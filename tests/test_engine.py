"""Every builtin fires on its violation with the right subject and severity, and stays
quiet on a near miss; the benign corpus stays quiet."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from kefal_lite.detect import corpus
from kefal_lite.detect.builtins import BUILTINS
from kefal_lite.detect.engine import Catalog, Detection, evaluate, is_loopback, norm_name
from kefal_lite.detect.model import SEVERITY_RANK, Finding
from kefal_lite.detect.state import HostState, dumps, loads
from kefal_lite.snapshot import Snapshot
from tests.builders import proc, snap
from tests.helpers.engine import (
    CASES,
    CATALOG,
    KEY_ALICE,
    KEY_ALICE2,
    OUT,
    SKEW,
    findings_of,
    learned,
    persisting,
    run,
)


def test_every_builtin_but_the_timer_has_a_case() -> None:
    assert set(CASES) | {"agent_silent"} == {inv.id for inv in BUILTINS}


@pytest.mark.parametrize("invariant_id", sorted(CASES))
def test_builtin_fires_on_its_violation(invariant_id: str) -> None:
    violating, subject, severity, _ = CASES[invariant_id]
    skew = SKEW.get(invariant_id, (timedelta(seconds=2),))[0]
    hits = findings_of(invariant_id, run(violating(), skew))
    assert [(f.subject, f.severity) for f in hits] == [(subject, severity)]
    assert hits[0].evidence and hits[0].title


@pytest.mark.parametrize("invariant_id", sorted(CASES))
def test_builtin_stays_quiet_on_a_near_miss(invariant_id: str) -> None:
    _, _, severity, near = CASES[invariant_id]
    skew = SKEW.get(invariant_id, (None, timedelta(seconds=2)))[1]
    found = findings_of(invariant_id, run(near(), skew))
    if severity != "low":  # a novelty may leave a low notice on a near miss, never more
        found = [f for f in found if SEVERITY_RANK[f.severity] >= SEVERITY_RANK["medium"]]
    assert found == []


def test_authorized_key_for_a_plain_user_is_high() -> None:
    hits = findings_of(
        "new_ssh_authorized_key",
        run([*learned(), *persisting(3, ssh_authorized_keys=[KEY_ALICE, KEY_ALICE2])]),
    )
    assert [(f.subject, f.severity) for f in hits] == [("key:alice:SHA256:bbbb", "high")]
    assert hits[0].evidence["comment"] == "new"


def test_novelty_is_silent_during_learning_and_fires_once() -> None:
    seq = [snap(0), snap(1, logged_in_users=["alice", "eve"])]
    assert findings_of("new_login_user", run(seq)) == []  # still learning
    seq = [*learned(), *persisting(3, logged_in_users=["eve"])]
    assert findings_of("new_login_user", run(seq))  # fires once it persisted
    seq.append(snap(5, logged_in_users=["eve"]))
    assert findings_of("new_login_user", run(seq)) == []  # eve is in the baseline after it fired


def test_reboot_notes_the_kernel_change() -> None:
    [hit] = findings_of(
        "host_rebooted", run([snap(0), snap(1, uptime_seconds=90, kernel="6.8.0-50-generic")])
    )
    assert (
        hit.evidence["kernel_changed"] is True
        and hit.evidence["previous_kernel"] == "6.8.0-49-generic"
    )
    assert "6.8.0-50-generic" in hit.title


def test_replayed_snapshot_does_not_also_count_as_a_reboot() -> None:
    findings = run([snap(5), snap(2)])
    assert findings_of("host_rebooted", findings) == []


def test_seed_only_snapshot_is_evaluated_without_optional_fields() -> None:
    import msgspec

    seed = msgspec.json.decode(
        b'{"agent_id":"a","timestamp":"2026-04-21T10:00:00Z","hostname":"web-01","os":"linux",'
        b'"kernel":"6.8.0-41-generic","uptime_seconds":1234567,"ip_addresses":["192.168.1.5"],'
        b'"processes":[{"pid":1234,"name":"nginx","user":"www-data","cpu_percent":0.2},'
        b'{"pid":1235,"name":"postgres","user":"root","cpu_percent":1.1}],'
        b'"listening_ports":[{"port":80,"protocol":"tcp","process":"nginx"},'
        b'{"port":5432,"protocol":"tcp","process":"postgres"}],"logged_in_users":["alice"]}',
        type=Snapshot,
    )
    findings = run([seed])
    # no bind address: exposure is unknown, so database_exposed does not guess
    assert {f.invariant_id for f in findings} == {"database_running_as_root"}


def test_state_survives_a_round_trip() -> None:
    state = HostState()
    for s in learned(4, logged_in_users=["alice", "bob"]):
        _, state = evaluate(s, state, CATALOG, s.timestamp)
    again = loads(dumps(state))
    assert again == state and again.seen == 4
    assert "bob" in again.baselines["logged_in_users"]


@pytest.mark.parametrize("address, expected", [
    ("0.0.0.0", False), ("::", False), ("*", False), ("192.168.1.5", False),
    ("127.0.0.1", True), ("127.0.0.53", True), ("::1", True), ("[::1]", True),
    ("::ffff:127.0.0.1", True), (None, None), ("", None),
])  # fmt: skip
def test_loopback(address: str | None, expected: bool | None) -> None:
    assert is_loopback(address) is expected


def test_names_normalise() -> None:
    assert norm_name("XMRig.EXE") == "xmrig" and norm_name("sshd") == "sshd"


def test_benign_corpus_stays_quiet_after_learning() -> None:
    hosts = corpus.load()
    assert len(hosts) >= 8
    for name, snapshots in hosts.items():
        assert len(snapshots) >= 4, name
        assert max(len(s.processes) for s in snapshots) >= 50, name
        state = HostState()
        low = 0
        for s in snapshots:
            findings, state = evaluate(s, state, CATALOG, s.timestamp + timedelta(seconds=3))
            assert all(SEVERITY_RANK[f.severity] < SEVERITY_RANK["medium"] for f in findings), (
                name,
                findings,
            )
            low += len(findings)
        assert low <= 1, name


def _catalog(**detection: int) -> Catalog:
    return Catalog(BUILTINS, Detection(**detection))


def _run_with(catalog: Catalog, snapshots: list[Snapshot]) -> tuple[list[Finding], HostState]:
    state, findings = HostState(), []
    for s in snapshots:
        findings, state = evaluate(s, state, catalog, s.timestamp + timedelta(seconds=2))
    return findings, state


def test_a_one_shot_root_command_never_fires() -> None:
    tar = proc("tar", "root", pid=901, cmdline="tar czf /var/backups/etc.tgz /etc")
    seq = [*learned(), snap(3, add_processes=[tar]), snap(4), snap(5, add_processes=[tar]), snap(6)]
    assert run(seq) == []


def test_novelty_alone_is_low_and_loopback_or_ephemeral_never_medium() -> None:
    """The first-day noise of the issue: a loopback listener on an ephemeral port, a loopback
    client, a new root program: notices at most."""
    py = proc(
        "python3", "alice", pid=950, exe="/usr/bin/python3.12", cmdline="python3 -m http.server"
    )
    noisy = dict(
        add_processes=[py, proc("coverage", "root", pid=951, exe="/usr/bin/python3.12")],
        add_ports=[{"port": 42877, "process": "python3", "address": "127.0.0.1", "pid": 950}],
        connections=[
            {**OUT, "remote_address": "127.0.0.1", "remote_port": 42877, "process": "curl"}
        ],
    )
    findings = run([*learned(), *persisting(3, **noisy)])
    assert findings and all(f.severity == "low" for f in findings), findings
    # the same server on 0.0.0.0 is exposure: the planted novelty of the noise benchmark
    noisy["add_ports"] = [{"port": 42877, "process": "python3", "address": "0.0.0.0", "pid": 950}]
    [hit] = [f for f in run([*learned(), *persisting(3, **noisy)]) if f.severity != "low"]
    assert (hit.invariant_id, hit.subject, hit.severity) == (
        "new_listening_process",
        "process:python3",
        "medium",
    )


def test_outbound_novelty_reads_like_a_sentence_with_the_whole_story() -> None:
    nc = proc("nc", "root", pid=4242, exe="/usr/bin/nc.openbsd", ppid=4200,
              cmdline="nc 203.0.113.7 4444")  # fmt: skip
    parent = proc("bash", "root", pid=4200, exe="/usr/bin/bash", cmdline="bash")
    conn = {"remote_address": "203.0.113.7", "remote_port": 4444, "local_port": 50000,
            "process": "nc", "pid": 4242, "state": "ESTABLISHED"}  # fmt: skip
    findings = run([*learned(connections=[OUT]),
                    *persisting(3, connections=[OUT, conn], add_processes=[parent, nc])])  # fmt: skip
    [hit] = findings_of("novel_outbound_connection", findings)
    assert (
        hit.title == "nc (pid 4242, root) connects to 203.0.113.7:4444, a port this host never used"
    )
    ev = hit.evidence
    assert ev["owner"]["parent"] == {"name": "bash", "pid": 4200, "user": "root"}
    assert ev["owner"]["exe"] == "/usr/bin/nc.openbsd"
    assert ev["socket"]["remote_address"] == "203.0.113.7" and ev["socket"]["pid"] == 4242
    assert ev["baseline"]["since"] == "2026-11-02T09:00:02Z" and ev["baseline"]["size"] == 1
    assert hit.severity == "medium" and ev["signals"]


def test_one_process_one_finding_at_the_highest_severity() -> None:
    dropper = proc("updater", "root", pid=666, exe="/tmp/updater")
    findings = run([snap(0, add_processes=[dropper])])
    [hit] = [f for f in findings if f.subject == "process:updater"]
    assert (hit.invariant_id, hit.severity) == ("root_process_in_writable_path", "critical")
    rules = {r["invariant_id"]: r["severity"] for r in hit.evidence["rules"]}
    assert rules["root_process_in_writable_path"] == "critical"
    assert rules["process_in_suspicious_path"] == "high"
    assert "updater (pid 666, root)" in hit.title


def test_learning_by_time_waits_for_both_time_and_count() -> None:
    cat = _catalog(learning_minutes=60)
    new = {"add_ports": [{"port": 8081, "process": "nginx", "address": "0.0.0.0"}]}
    # ten snapshots in ten minutes: past the count, inside the hour: learned, not alerted
    findings, state = _run_with(cat, [snap(i, **(new if i >= 7 else {})) for i in range(10)])  # type: ignore[arg-type]
    assert findings == [] and "8081/tcp" in state.baselines["listening_ports"]
    later = [snap(70 + i, add_ports=[{"port": 8082, "process": "nginx", "address": "0.0.0.0"}])
             for i in range(2)]  # fmt: skip
    for s in later:
        findings, state = evaluate(s, state, cat, s.timestamp + timedelta(seconds=2))
    assert [f.subject for f in findings] == ["port:8082/tcp"]


def test_baselines_keep_learning_and_forget_what_stopped() -> None:
    """Generations of baseline_days: a value seen each generation stays known; one unseen
    for two generations is forgotten and novel again."""
    cat = _catalog(baseline_days=1)
    day = 24 * 60
    vpn = {"logged_in_users": ["alice", "bob"]}
    seq = [snap(i, **vpn) for i in range(3)]  # bob learned on day 0
    seq += [snap(day + i) for i in range(2)]  # day 1: rollover, bob absent
    seq += [snap(2 * day + i) for i in range(2)]  # day 2: rollover again, bob forgotten
    seq += [snap(3 * day + i, **vpn) for i in range(2)]
    findings, _ = _run_with(cat, seq)  # type: ignore[arg-type]
    assert [f.subject for f in findings_of("new_login_user", findings)] == ["user:bob"]
    # seen once a generation, bob stays normal
    seq = [snap(i, **vpn) for i in range(3)] + [snap(k * day + i, **vpn)
                                                for k in (1, 2, 3) for i in range(2)]  # fmt: skip
    findings, _ = _run_with(cat, seq)  # type: ignore[arg-type]
    assert findings_of("new_login_user", findings) == []


def test_a_state_persisted_before_time_learning_counts_as_learned() -> None:
    import msgspec

    old = msgspec.msgpack.encode([5, 1.0, 100, "k", {"logged_in_users": ["alice"]}, [], {}, []])
    state = loads(old)
    assert state.first_seen is None and state.seen == 5
    cat = _catalog(learning_minutes=1440)
    s = snap(10, logged_in_users=["alice", "eve"])
    _, state = evaluate(s, state, cat, s.timestamp)
    s = snap(11, logged_in_users=["alice", "eve"])
    findings, state = evaluate(s, state, cat, s.timestamp)
    assert [f.subject for f in findings_of("new_login_user", findings)] == ["user:eve"]


def test_sustained_cpu_counts_minutes_not_fast_samples() -> None:
    """A backup hashing a file at full CPU for three one-second samples (an agent on a fast
    interval) is not sustained; the same three samples a minute apart are."""
    hot = [proc("sha256sum", "root", cpu=96.0)]
    fast = [msgspec.structs.replace(snap(0, add_processes=hot),
                                    timestamp=snap(0).timestamp + timedelta(seconds=i))
            for i in range(3)]  # fmt: skip
    assert [f for f in run(fast) if f.invariant_id == "sustained_high_cpu"] == []
    slow = [snap(i, add_processes=hot) for i in range(3)]
    assert [f.subject for f in run(slow) if f.invariant_id == "sustained_high_cpu"] == [
        "process:sha256sum"
    ]
