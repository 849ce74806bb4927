"""Attack paths: reasons (shared key, connection, shared login) on an estate with a known
answer, ranking, hop limits, near misses, and tenant isolation."""

from __future__ import annotations

import time
from typing import Any

from litestar.testing import TestClient

from kefal_lite.clock import FrozenClock
from kefal_lite.paths import HostFacts, attack_paths
from tests.builders import port
from tests.conftest import enroll, send
from tests.helpers.estate import ESTATE, K1, K2, K3, build_estate, conn, hostnames, key


def test_paths_from_a_jump_host_follow_keys_connections_and_logins(
    open_client: TestClient[Any], alice: dict[str, str], clock: FrozenClock
) -> None:
    open_client.headers.update(alice)
    ids = build_estate(open_client, "alice", clock, alice)
    r = open_client.get(f"/api/v1/graph/paths?from={ids['jump']}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["from"] == {"host_id": ids["jump"], "hostname": "jump"}
    assert body["max_hops"] == 3 and body["reachable"] == 5
    got = [(p["hostname"], p["hops"], p["privilege"], [s["kind"] for s in p["steps"]])
           for p in body["paths"]]  # fmt: skip
    assert got == [
        ("db", 1, "root", ["ssh_key"]),
        ("app", 1, "service", ["connection"]),
        ("dev", 1, "user", ["login"]),
        ("backup", 2, "root", ["connection", "ssh_key"]),
        ("far", 3, "root", ["connection", "ssh_key", "ssh_key"]),
    ]
    reasons = {p["hostname"]: [s["reason"] for s in p["steps"]] for p in body["paths"]}
    assert reasons["db"] == [f"ssh key {K1} authorized for root on db"]
    assert reasons["app"] == ["connects to 10.0.0.2:8080 (gunicorn)"]
    assert reasons["dev"] == ["ops logged in on both"]
    assert reasons["far"] == ["connects to 10.0.0.2:8080 (gunicorn)",
                              f"ssh key {K2} authorized for root on backup",
                              f"ssh key {K3} authorized for root on far"]  # fmt: skip
    [far] = [p for p in body["paths"] if p["hostname"] == "far"]
    assert [(s["from_hostname"], s["to_hostname"]) for s in far["steps"]] == [
        ("jump", "app"), ("app", "backup"), ("backup", "far")]  # fmt: skip
    assert "island" not in reasons  # loopback-only port, ambiguous address, other key/login

    two = open_client.get(f"/api/v1/graph/paths?from={ids['jump']}&max_hops=1").json()
    assert [p["hostname"] for p in two["paths"]] == ["db", "app", "dev"]
    # paths are directed: db holds no connection and no key elsewhere but jump's
    from_db = open_client.get(f"/api/v1/graph/paths?from={ids['db']}").json()
    assert [(p["hostname"], p["hops"]) for p in from_db["paths"]] == [
        ("jump", 1), ("app", 2), ("dev", 2), ("backup", 3)]  # fmt: skip
    assert open_client.get(f"/api/v1/graph/paths?from={ids['island']}").json()["paths"] == []


def test_paths_bad_input_is_a_clear_error(
    open_client: TestClient[Any], alice: dict[str, str], clock: FrozenClock
) -> None:
    open_client.headers.update(alice)
    ids = build_estate(open_client, "alice", clock, alice)
    assert open_client.get("/api/v1/graph/paths?from=nope").json() == {"detail": "no such host"}
    for bad in ("max_hops=0", "max_hops=7", "max_hops=x"):
        r = open_client.get(f"/api/v1/graph/paths?from={ids['jump']}&{bad}")
        assert r.status_code == 400, bad
    assert open_client.get("/api/v1/graph/paths").status_code == 400
    open_client.headers.pop("Authorization")
    assert open_client.get(f"/api/v1/graph/paths?from={ids['jump']}").status_code == 401


def test_paths_never_cross_tenants_even_with_the_same_key_and_address(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str], clock: FrozenClock
) -> None:
    ids = build_estate(open_client, "alice", clock, alice)
    # bob's host carries alice's root key, alice's db address and listens on its port, and
    # connects to alice's app address: any tenant leak would draw a path either way
    r = send(open_client, enroll(open_client, "bob"), 0, hostname="bob-db",
             ip_addresses=["10.0.0.3"], add_ports=[port(5432, "postgres")], logged_in_users=["ops"],
             ssh_authorized_keys=[key("root", K1)], connections=[conn("10.0.0.2", 8080)])  # fmt: skip
    assert r.status_code == 200, r.text
    [bob_host] = hostnames(open_client, bob).values()
    for name in ESTATE:
        body = open_client.get(f"/api/v1/graph/paths?from={ids[name]}", headers=alice).json()
        assert bob_host not in {p["host_id"] for p in body["paths"]}
        assert all(s["to_host_id"] in ids.values() for p in body["paths"] for s in p["steps"])
    mine = open_client.get(f"/api/v1/graph/paths?from={bob_host}", headers=bob).json()
    assert mine["reachable"] == 0 and mine["paths"] == []
    r = open_client.get(f"/api/v1/graph/paths?from={ids['jump']}", headers=bob)
    assert r.status_code == 404 and r.json() == {"detail": "no such host"}
    r = open_client.get(f"/api/v1/graph/paths?from={bob_host}", headers=alice)
    assert r.status_code == 404
    # and alice's own answer is unchanged by bob's host
    db_paths = open_client.get(f"/api/v1/graph/paths?from={ids['jump']}", headers=alice).json()
    assert [p["hostname"] for p in db_paths["paths"]][0] == "db"


def test_a_deploy_key_on_every_host_stays_linear() -> None:
    hosts = [HostFacts(f"h{i}", f"host-{i:05d}", ips=(f"10.{i // 250}.{i % 250}.2",),
                       keys=(("deploy", "SHA256:everywhere"),), logins=("ubuntu",))
             for i in range(5000)]  # fmt: skip
    t = time.perf_counter()
    found = attack_paths(hosts, "h0", 3)
    assert time.perf_counter() - t < 2.0
    assert len(found) == 4999 and {p.hops for p in found} == {1}
    assert found[0].steps[0].kind == "ssh_key" and found[0].hostname == "host-00001"


def test_a_root_key_outranks_a_user_key_to_the_same_host() -> None:
    a = HostFacts("a", "a", keys=(("alice", "SHA256:x"), ("alice", "SHA256:y")))
    b = HostFacts("b", "b", keys=(("bob", "SHA256:x"), ("root", "SHA256:y"), ("zed", "SHA256:y")))
    [path] = attack_paths([a, b], "a")
    assert (path.privilege, path.steps[0].fingerprint, path.steps[0].account) == (
        "root", "SHA256:y", "root")  # fmt: skip
    assert attack_paths([a, b], "missing") == []
