"""The `lateral` pack: each rule fires and has a near miss; run over a real estate it opens,
repeats and resolves incidents per tenant."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from kefal_lite import lateral, lateral_run
from kefal_lite.clock import FrozenClock
from kefal_lite.paths import HostFacts
from tests.conftest import enroll, in_app, send, wait_remediation
from tests.helpers.estate import K1, build_estate, key


def rule_ids(found: list[lateral.EstateFinding]) -> list[tuple[str, str, str]]:
    return [(f.rule.id, f.host_id, f.subject) for f in found]


def run(hosts: list[HostFacts], groups: dict[str, str] | None = None,
        critical: frozenset[str] = frozenset()) -> list[tuple[str, str, str]]:  # fmt: skip
    return rule_ids(lateral.evaluate(lateral.Estate(hosts, groups or {}, critical)))


def test_root_key_spread_fires_above_the_limit_and_not_at_it() -> None:
    limit = lateral.PACK.rules[0].params["max_hosts"]
    on_root = [HostFacts(f"h{i}", f"n{i}", keys=(("root", "SHA256:r"),)) for i in range(limit)]
    as_user = HostFacts("hu", "nu", keys=(("deploy", "SHA256:r"),))
    assert run([*on_root, as_user]) == []  # near miss: the 4th host has it for a user
    fourth = HostFacts("h9", "a-first", keys=(("root", "SHA256:r"), ("root", "SHA256:other")))
    [(rule, anchor, subject)] = run([*on_root, as_user, fourth])
    assert (rule, anchor, subject) == ("lateral.root_key_spread", "h9", "key:SHA256:r")
    [f] = lateral.evaluate(lateral.Estate([*on_root, fourth], {}, frozenset()))
    assert f.evidence["hosts"] == ["a-first", "n0", "n1", "n2"]


def test_key_across_groups_fires_for_prod_and_dev_only() -> None:
    a = HostFacts("a", "api-1", keys=(("deploy", "SHA256:k"),))
    b = HostFacts("b", "api-2", keys=(("deploy", "SHA256:k"),))
    c = HostFacts("c", "laptop", keys=(("ada", "SHA256:k"),))
    # near misses: same group; a grouped host and an ungrouped one
    assert run([a, b, c], {"a": "prod", "b": "prod"}) == []
    found = lateral.evaluate(lateral.Estate([a, b, c], {"a": "prod", "b": "prod", "c": "dev"},
                                            frozenset()))  # fmt: skip
    assert rule_ids(found) == [("lateral.key_across_groups", "c", "key:SHA256:k")]
    assert found[0].evidence["groups"] == {"dev": ["laptop"], "prod": ["api-1", "api-2"]}


def test_one_hop_from_a_critical_host_and_not_two() -> None:
    a = HostFacts("a", "a", ips=("10.0.0.1",), conns=(("10.0.0.2", 5432, "app"),))
    b = HostFacts("b", "b", ips=("10.0.0.2",), listening=((5432, "postgres", "0.0.0.0"),),
                  conns=(("10.0.0.3", 6379, "app"),))  # fmt: skip
    c = HostFacts("c", "c", ips=("10.0.0.3",), listening=((6379, "redis", "0.0.0.0"),))
    found = lateral.evaluate(lateral.Estate([a, b, c], {}, frozenset({"a"})))
    assert rule_ids(found) == [("lateral.one_hop_from_critical", "b", "critical-neighbour")]
    assert found[0].evidence["reason"] == "connects to 10.0.0.2:5432 (postgres)"
    assert run([a, b, c]) == []  # nothing critical
    assert run([a, b, c], critical=frozenset({"c"})) == []  # connections are directed
    # a reachable host with its own critical incident gets no second one
    assert run([a, b, c], critical=frozenset({"a", "b"})) == [
        ("lateral.one_hop_from_critical", "c", "critical-neighbour")]  # fmt: skip
    assert all(r.severity != "critical" for r in lateral.PACK.rules)  # no cascade


def _lateral(c: TestClient[Any], headers: dict[str, str], status: str = "open") -> list[Any]:
    items = c.get(f"/api/v1/incidents?status={status}&limit=500", headers=headers).json()["items"]
    return sorted((i["invariant_id"], i["hostname"], i["subject"], i["status"])
                  for i in items if i["invariant_id"].startswith("lateral."))  # fmt: skip


def test_the_pack_runs_per_tenant_and_its_incidents_follow_the_estate(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str], clock: FrozenClock
) -> None:
    c = open_client
    ids = build_estate(c, "alice", clock, alice)
    svc = c.app.state.kefal
    me = c.get("/api/v1/auth/me", headers=alice).json()["id"]
    # db exposes postgres (critical); jump is one step from it: K1 is authorized on both
    in_app(c, lateral_run.run_for_user, svc, me)
    assert _lateral(c, alice) == [
        ("lateral.one_hop_from_critical", "jump", "critical-neighbour", "open")]  # fmt: skip
    [inc] = [i for i in c.get("/api/v1/incidents?status=open", headers=alice).json()["items"]
             if i["invariant_id"] == "lateral.one_hop_from_critical"]  # fmt: skip
    assert inc["severity"] == "high" and "db" in inc["title"]
    # "Propose a fix" works for an estate finding: its own three actions, not a failed job
    r = c.post(f"/api/v1/incidents/{inc['id']}/remediate", headers=alice)
    assert r.status_code == 202, r.text
    fix = wait_remediation(c, alice, inc["id"])["remediation"]
    assert fix["source"] == "template" and len(fix["actions"]) == 3
    assert "db" in fix["actions"][0]["title"]

    # bob carries alice's K1 for root on four hosts: his estate fires, alice's does not
    for n in range(4):
        send(c, enroll(c, "bob"), 0, hostname=f"bob-{n}", ip_addresses=[f"10.9.0.{n}"],
             ssh_authorized_keys=[key("root", K1)], logged_in_users=[])  # fmt: skip
    bob_id = c.get("/api/v1/auth/me", headers=bob).json()["id"]
    in_app(c, lateral_run.run_for_user, svc, me)
    in_app(c, lateral_run.run_for_user, svc, bob_id)
    assert [r[0] for r in _lateral(c, alice)] == ["lateral.one_hop_from_critical"]
    assert _lateral(c, bob) == [("lateral.root_key_spread", "bob-0", f"key:{K1}", "open")]

    # a person groups db as prod and jump as dev: K1 now crosses groups
    for name, group in (("db", "prod"), ("jump", "dev")):
        r = c.patch(f"/api/v1/hosts/{ids[name]}", json={"group": group}, headers=alice)
        assert r.status_code == 200
    in_app(c, lateral_run.run_for_user, svc, me)
    assert ("lateral.key_across_groups", "jump", f"key:{K1}", "open") in _lateral(c, alice)
    # jump leaves its group: K1 no longer crosses groups, and the next run resolves it
    r = c.patch(f"/api/v1/hosts/{ids['jump']}", json={"group": None}, headers=alice)
    assert r.status_code == 200
    in_app(c, lateral_run.run_for_user, svc, me)
    assert _lateral(c, alice, "resolved") == [
        ("lateral.key_across_groups", "jump", f"key:{K1}", "resolved")]  # fmt: skip
    assert [r[0] for r in _lateral(c, alice)] == ["lateral.one_hop_from_critical"]
    # the timer's pass over every tenant changes nothing more
    in_app(c, lateral_run.run_all, svc)
    assert _lateral(c, bob) == [("lateral.root_key_spread", "bob-0", f"key:{K1}", "open")]


def test_the_pack_stays_linear_on_an_estate_sharing_one_key() -> None:
    import time

    hosts = [HostFacts(f"h{i}", f"host-{i:05d}", keys=(("deploy", "SHA256:all"),),
                       logins=("ubuntu",)) for i in range(4000)]  # fmt: skip
    critical = frozenset(f"h{i}" for i in range(0, 4000, 2))
    t = time.perf_counter()
    found = lateral.evaluate(lateral.Estate(hosts, {}, critical))
    assert time.perf_counter() - t < 2.0  # a path search per critical host took minutes
    hop = [f for f in found if f.rule.id == "lateral.one_hop_from_critical"]
    assert len(hop) == 2000 and {f.host_id for f in hop}.isdisjoint(critical)
    assert hop[0].evidence["from_hostname"] == "host-00000" and hop[0].evidence["kind"] == "ssh_key"
