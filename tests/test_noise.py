"""benchmarks/noise.py, short: the real server and the real agent on this machine, benign
churn, then a planted listener on 0.0.0.0. Proves the instrument measures (the agent saw
the churn and the listener; the report accounts for every incident), and holds detection
to it: no medium+ incident about the churn, and the planted listener caught with its
process and address in the evidence. Incidents about other processes of this shared
machine ("ambient": noise.py's documented heuristic, which names the churn's commands and
loopback ports) are reported, not asserted: other jobs' servers come and go here."""

from __future__ import annotations

from benchmarks import noise


def _free_fixed_port() -> int:
    # Below the ephemeral range, as a real service's port would be.
    for port in range(19474, 19999):
        if not noise._port_busy(port):
            return port
    raise AssertionError("no free port in 19474-19999")


def test_short_noise_run_sees_the_churn_and_catches_the_planted_listener() -> None:
    port = _free_fixed_port()
    report = noise.run(minutes=0.25, interval=1.0, learning_snapshots=3, planted_snapshots=4,
                       planted_port=port)  # fmt: skip
    assert report.errors == []
    assert report.snapshots["learning"] == 3 and report.snapshots["planted"] == 4
    assert report.snapshots["churn"] >= 10  # 15 s at one a second, give or take the machine
    # The churn was visible to the agent, so "no noise" will mean quiet, not blind.
    assert report.churn_cycles >= 1
    assert len(set(report.churn_seen) - {"sh", "python3"}) >= 2, report.churn_seen
    assert report.loopback_listeners_seen >= 1
    assert report.snapshots["planted listener seen"] == 4
    # The planted listener is a real novelty on every address: caught, and said so.
    assert report.planted["caught"], report.text()
    assert str(port) in str(report.planted["title"]) + str(report.planted["evidence"])
    assert report.planted["severity"] in noise.MEDIUM_UP
    for inc in report.noise:
        assert inc["severity"] in noise.MEDIUM_UP and inc["title"]
        assert inc["source"] in ("churn", "ambient")
    # Quiet: the scripted benign churn opens nothing medium+.
    assert [i for i in report.noise if i["source"] == "churn"] == [], report.text()
    # Loud, and telling the story: the owning process and the bind address.
    ev = report.planted["evidence"]
    assert ev["socket"]["address"] == "0.0.0.0" and ev["socket"]["port"] == port, ev
    assert ev["owner"]["pid"] == ev["socket"]["pid"] and ev["owner"]["name"].startswith("python")
    assert "0.0.0.0" in report.planted["title"]
    text = report.text()
    assert f"NOISE medium+ during churn and after (target 0): {report.noise_count}" in text
