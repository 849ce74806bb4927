"""The detection corpus (benchmarks/corpus/) and its report: every scenario is valid and
labelled, the plant is identified by what it adds and not by the base host, recordings are
scrubbed, and the report accounts for every scenario. Thresholds on recall and false
positives are the lead's to add once detection lands (see benchmarks/README.md)."""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from datetime import UTC, datetime

import msgspec
import pytest
from benchmarks import corpus, corpus_report
from benchmarks.corpus import record

from kefal_lite.snapshot import Connection, Process, Snapshot


def test_every_scenario_file_is_valid_and_labelled() -> None:
    scenarios = corpus.load()
    files = sorted(
        p.name for sub in ("attacks", "benign") for p in (corpus.HERE / sub).glob("*.json")
    )
    assert sorted(f"{s.id}.json" for s in scenarios) == files
    assert len({s.id for s in scenarios}) == len(scenarios)
    attacks = [s for s in scenarios if s.label == "attack"]
    assert len(attacks) >= 60 and len(scenarios) - len(attacks) >= 5
    for s in attacks:
        assert s.attack and corpus.ATTACK_ID.match(s.attack) and s.variant and s.source
    # every attack category has its classic form and at least one evasion variant
    kinds = Counter((s.category, s.variant) for s in attacks)
    for category in {s.category for s in attacks}:
        if category in ("web_shell", "shell_upgrade", "deleted_binary"):
            assert kinds[(category, "classic")] + kinds[(category, "evasion")] >= 2
        else:
            assert kinds[(category, "classic")] >= 1 and kinds[(category, "evasion")] >= 1, category
    assert any(s.category == "recorded_host" and s.snapshots for s in scenarios)


@pytest.mark.parametrize("change, message", [
    ({"attack": None}, "ATT&CK technique"),
    ({"attack": "T99"}, "ATT&CK technique"),
    ({"category": "misc"}, "unknown category"),
    ({"base": "no-such-host"}, "no benign corpus host"),
    ({"plant": {"stop_processes": []}}, "nothing that identifies it"),
    ({"snapshots": []}, "either base"),
])  # fmt: skip
def test_a_bad_scenario_is_refused_with_the_reason(change: dict[str, object], message: str) -> None:
    path = corpus.HERE / "attacks" / "reverse-shell-nc-e.json"
    raw = json.loads(path.read_text()) | change
    sc = msgspec.json.decode(json.dumps(raw).encode(), type=corpus.Scenario)
    with pytest.raises(corpus.CorpusError, match=re.escape(message)):
        corpus.validate(sc, path.name)


def test_unknown_fields_are_refused() -> None:
    raw = json.loads((corpus.HERE / "attacks" / "reverse-shell-nc-e.json").read_text())
    raw["plant"]["processes"][0]["nmae"] = "nc"
    with pytest.raises(corpus.CorpusError, match="nmae"):
        corpus.decode(json.dumps(raw).encode())
    raw["plant"]["processes"][0].pop("nmae")
    raw["plant"]["colour"] = "red"
    with pytest.raises(msgspec.ValidationError, match="colour"):
        corpus.decode(json.dumps(raw).encode())


def test_the_plant_is_named_by_what_it_adds_not_by_the_base_host() -> None:
    [sc] = [s for s in corpus.load("attacks") if s.id == "reverse-shell-bash-devtcp"]
    tokens = corpus.subject_tokens(sc)
    assert {
        "31337",
        "203.0.113.7",
        "4444",
    } <= tokens and "bash" not in tokens  # bash is on the base
    snaps, first = corpus.sequence(sc)
    assert len(snaps) == sc.learn + sc.persist and first == sc.learn
    assert not any(p.pid == 31337 for p in snaps[first - 1].processes)
    assert all(any(p.pid == 31337 for p in s.processes) for s in snaps[first:])
    assert [s.timestamp for s in snaps] == sorted({s.timestamp for s in snaps})
    assert corpus.mentions({"31337"}, "process:bash", "x", {"pid": 31337})
    assert not corpus.mentions({"7"}, "port:8007/tcp", "listens on 8007", {"port": 8007})
    assert corpus.mentions({"4444"}, "port:4444/tcp", "", {})


def test_stopped_and_changed_accounts_apply() -> None:
    by_id = {s.id: s for s in corpus.load("attacks")}
    snaps, first = corpus.sequence(by_id["evasion-auditd-stopped"])
    assert any(p.name == "auditd" for p in snaps[first - 1].processes)
    assert not any(p.name == "auditd" for p in snaps[first].processes)
    snaps, first = corpus.sequence(by_id["account-system-nologin-to-shell"])
    shells = [next(u.shell for u in s.users if u.name == "daemon") for s in snaps]
    assert shells[first - 1] == "/usr/sbin/nologin" and shells[first] == "/bin/bash"


def test_recordings_are_scrubbed() -> None:
    for sc in corpus.load("benign"):
        for snap in sc.snapshots or []:
            assert snap.hostname == "ci-runner"
            for ip in [*snap.ip_addresses, *(c.remote_address for c in snap.connections)]:
                addr = ipaddress.ip_address(ip.split("%")[0])
                assert not addr.is_global or addr in ipaddress.ip_network("192.0.2.0/24"), ip
            for p in snap.processes:
                assert not record._TOKEN.search(p.cmdline or ""), p.cmdline


def test_record_scrubs_a_snapshot() -> None:
    snap = Snapshot(agent_id="a", timestamp=datetime.now(UTC), hostname="secret-box", os="linux",
                    kernel="6", uptime_seconds=1, ip_addresses=["8.8.4.4"],
                    processes=[Process(pid=5, name="curl", exe="/usr/bin/curl",
                                       cmdline="curl -H X:abcdefghijklmnopqrstuvwxyz0123 https://h/x?sig=zz --password=pw"),
                               Process(pid=6, name="thing", exe="/opt/vendor/thing", cmdline="thing --opaque 1")],
                    connections=[Connection(remote_address="1.1.1.1", remote_port=443)])  # fmt: skip
    out = record.scrub_snapshot(snap, record.Mapper("10.99.0."), record.Mapper("192.0.2."))
    text = json.dumps(out)
    for secret in (
        "secret-box",
        "8.8.4.4",
        "1.1.1.1",
        "abcdefghijklmnopqrstuvwxyz0123",
        "sig=zz",
        "=pw",
        "--opaque",
    ):
        assert secret not in text
    assert (
        out["processes"][1]["cmdline"] == "thing"
        and out["connections"][0]["remote_address"] == "192.0.2.1"
    )


def test_the_report_accounts_for_every_scenario() -> None:
    scenarios = corpus.load()
    report = corpus_report.evaluate_corpus(scenarios)
    assert [o["id"] for o in report["outcomes"]] == [s.id for s in scenarios]
    attacks = [s for s in scenarios if s.label == "attack"]
    assert report["attack_scenarios"] == len(attacks) and report["rules"] >= 32
    assert sum(r["scenarios"] for r in report["recall"].values()) == len(attacks)
    assert sum(r["caught"] for r in report["recall"].values()) == report["caught"]
    by_id = {o["id"]: o for o in report["outcomes"]}
    # a plain xmrig with its pool on the command line is caught by a named rule, on its subject
    xmrig = by_id["miner-xmrig-stratum"]
    assert xmrig["caught"] and xmrig["caught_by_behaviour"]
    assert any("crypto_miner" in b["rules"] for b in xmrig["on_subject"])
    for o in report["outcomes"]:
        if o["label"] == "benign":
            assert o["caught"] is None and o["on_subject"] == []
        else:
            assert o["caught"] == bool(o["on_subject"])
    fp_total = sum(v.get("findings", 0) for v in report["false_positives"].values())
    assert fp_total == sum(
        not b["standing"] for o in report["outcomes"] if o["label"] == "benign" for b in o["other"]
    )
    text = corpus_report.table(report)
    assert "| **all** |" in text and f"{report['attack_scenarios']} attack scenarios" in text


def test_detection_holds_its_floors_on_the_corpus() -> None:
    """The figures of benchmarks/README.md as floors, so a regression fails CI: no medium+
    event on any benign host or off the plant of an attack, recall 81/81 (floor 79), 76
    of them by a rule other than novelty (floor 73), and only the recorded machine's two
    standing findings (redis as root, this sandbox's memfd binary)."""
    report = corpus_report.evaluate_corpus()
    fps = report["false_positives"]
    assert sum(v.get("findings", 0) for v in fps.values()) == 0, fps
    assert sum(report["off_subject"].values()) == 0, report["off_subject"]
    assert sum(v.get("standing", 0) for v in fps.values()) <= 2, fps
    attacks = report["attack_scenarios"]
    assert report["caught"] >= attacks - 2, corpus_report.table(report)
    by_behaviour = sum(r.get("by_behaviour", 0) for r in report["recall"].values())
    assert by_behaviour >= attacks - 8, corpus_report.table(report)
