"""The estate view (the default graph): one node per host, host-to-host edges, compound
groups by subnet or a person's group, credential hubs; PATCH /api/v1/hosts/{id} group."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.testing import TestClient

from kefal_lite import estate
from kefal_lite.clock import FrozenClock
from kefal_lite.paths import HostFacts
from tests.conftest import query
from tests.helpers.estate import K1, K2, K3, build_estate, cytoscape_load


def _data(elements: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [e["data"] for e in elements if all(e["data"].get(k) == v for k, v in match.items())]


def test_the_default_graph_is_the_estate(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str], clock: FrozenClock
) -> None:
    ids = build_estate(open_client, "alice", clock, alice)
    g = open_client.get("/api/v1/graph", headers=alice).json()
    types = {n["data"]["type"] for n in g["nodes"]}
    assert types == {"group", "host"}  # no service, port or identity node
    hosts = {n["hostname"]: n for n in _data(g["nodes"], type="host")}
    assert set(hosts) == set(ids)
    [net] = _data(g["nodes"], type="group", label="10.0.0.0/24")
    assert net["kind"] == "subnet" and net["hosts"] == 7
    assert {h["parent"] for h in hosts.values()} == {net["id"]}
    db = hosts["db"]
    # 22 and 80 of the base host plus postgres, all on 0.0.0.0; an exposed database is critical
    assert (db["exposed_ports"], db["ports"], db["max_severity"]) == (3, 3, "critical")
    assert hosts["island"]["exposed_ports"] == 2  # redis on 127.0.0.1 is not exposure
    assert net["max_severity"] == "critical" and net["open_incidents"] >= db["open_incidents"]

    def pairs(kind: str) -> set[tuple[str, str]]:
        name = {f"host:{v}": k for k, v in ids.items()}
        return {(name[e["source"]], name[e["target"]]) for e in _data(g["edges"], type=kind)}

    assert pairs("connects") == {("jump", "app"), ("app", "db")}
    assert {frozenset(p) for p in pairs("shares_key")} == {
        frozenset({"jump", "db"}), frozenset({"app", "backup"}), frozenset({"backup", "far"})}  # fmt: skip
    assert {frozenset(p) for p in pairs("shares_login")} == {frozenset({"jump", "dev"})}
    [k1] = [e for e in _data(g["edges"], type="shares_key") if e["fingerprints"] == [K1]]
    assert k1["root"] is True
    [conn] = _data(g["edges"], type="connects", source=f"host:{ids['app']}")
    assert conn["ports"] == [5432] and conn["label"] == "5432"
    loaded = cytoscape_load(g)
    assert loaded["dangling"] == [] and loaded["errors"] == []
    assert loaded["nodes"] == len(g["nodes"])
    # the per-host neighbourhood keeps its shape
    part = open_client.get(f"/api/v1/graph?host_id={ids['db']}", headers=alice).json()
    assert {"service", "port"} <= {n["data"]["type"] for n in part["nodes"]}
    assert open_client.get("/api/v1/graph", headers=bob).json() == {"nodes": [], "edges": []}
    assert open_client.get("/api/v1/graph?view=nope", headers=alice).status_code == 400


def test_a_host_group_moves_it_into_its_compound_node(
    open_client: TestClient[Any], alice: dict[str, str], bob: dict[str, str], clock: FrozenClock,
    tmp_path: Any,
) -> None:  # fmt: skip
    ids = build_estate(open_client, "alice", clock, alice)
    r = open_client.patch(f"/api/v1/hosts/{ids['db']}", json={"group": " prod "}, headers=alice)
    assert r.status_code == 200, r.text
    assert r.json() == {"host_id": ids["db"], "group": "prod"}
    g = open_client.get("/api/v1/graph", headers=alice).json()
    [db] = _data(g["nodes"], type="host", hostname="db")
    assert db["parent"] == "group:group:prod" and db["group"] == "prod"
    [prod] = _data(g["nodes"], type="group", label="prod")
    assert prod["kind"] == "group" and prod["hosts"] == 1
    [net] = _data(g["nodes"], type="group", label="10.0.0.0/24")
    assert net["hosts"] == 6
    # the host page reads it back (and edits it: tests/test_host_group_dashboard.py)
    assert open_client.get(f"/api/v1/hosts/{ids['db']}", headers=alice).json()["group"] == "prod"

    def audit_rows() -> list[tuple[Any, ...]]:
        return query(open_client.app.state.kefal.settings, "SELECT user_id, action, target"
                     " FROM audit WHERE action = 'host_group_set'")  # fmt: skip

    assert len(audit_rows()) == 1
    for bad in ({"group": ""}, {"group": "   "}, {"group": "a\nb"}, {"group": "x" * 65},
                {"group": 3}, {"group": "prod", "owner": "me"}, {}):  # fmt: skip
        r = open_client.patch(f"/api/v1/hosts/{ids['db']}", json=bad, headers=alice)
        assert r.status_code == 400, (bad, r.text)
    # another tenant cannot set it, and its attempt leaves no trace on alice's host
    r = open_client.patch(f"/api/v1/hosts/{ids['db']}", json={"group": "pwned"}, headers=bob)
    assert r.status_code == 404 and r.json() == {"detail": "no such host"}
    g = open_client.get("/api/v1/graph", headers=alice).json()
    assert _data(g["nodes"], type="host", hostname="db")[0]["group"] == "prod"
    assert len(audit_rows()) == 1
    r = open_client.patch(f"/api/v1/hosts/{ids['db']}", json={"group": None}, headers=alice)
    assert r.json()["group"] is None
    assert open_client.get(f"/api/v1/hosts/{ids['db']}", headers=alice).json()["group"] is None
    g = open_client.get("/api/v1/graph", headers=alice).json()
    assert _data(g["nodes"], type="host", hostname="db")[0]["parent"] == net["id"]


def _host(i: int, **facts: Any) -> estate.EstateHost:
    return estate.EstateHost(HostFacts(f"h{i}", f"host-{i}", **facts), "linux", "online",
                             "2026-01-01T00:00:00.000Z", None, 0, None)  # fmt: skip


def test_a_credential_on_many_hosts_is_one_hub_not_a_clique() -> None:
    n = estate.HUB_AT + 2
    hosts = [_host(i, ips=(f"10.1.{i}.9",), keys=(("root", K2),), logins=("ubuntu",))
             for i in range(n)]  # fmt: skip
    g = estate.build(hosts)
    [key_hub] = _data(g["nodes"], type="credential", kind="ssh_key")
    assert key_hub["hosts"] == n and key_hub["root_on"] == n
    assert len(_data(g["edges"], type="key_on")) == n
    assert len(_data(g["edges"], type="login_on")) == n
    assert not _data(g["edges"], type="shares_key") and not _data(g["edges"], type="shares_login")
    # one /24 per host here: each its own compound node
    assert len(_data(g["nodes"], type="group")) == n
    # at the threshold it stays pairwise
    small = estate.build(hosts[: estate.HUB_AT])
    assert not _data(small["nodes"], type="credential")
    assert len(_data(small["edges"], type="shares_key")) == estate.HUB_AT * (estate.HUB_AT - 1) // 2


def test_subnets() -> None:
    assert estate.subnet(("127.0.0.1", "fe80::1", "2001:db8::25", "203.0.113.25")) == (
        "203.0.113.0/24")  # fmt: skip
    assert estate.subnet(("fe80::1", "2001:db8::25")) == "2001:db8::/64"
    assert estate.subnet(("not-an-ip", "::")) is None
    assert estate.group_of(_host(1))[1] == "no address"
    assert K3  # the estate shares its keys with test_paths


def test_the_estate_after_a_start_reads_the_facts_ingest_kept(
    open_client: TestClient[Any], alice: dict[str, str], clock: FrozenClock
) -> None:
    """Each snapshot's estate facts are written with it; a fresh cache (a restart) builds
    the estate from them, the same document as from the snapshot bodies, and only the
    owner's facts are read."""
    from kefal_lite import graph
    from kefal_lite.graphs import Graphs
    from kefal_lite.store import estate as estate_store
    from tests.conftest import in_app

    ids = build_estate(open_client, "alice", clock, alice)
    svc = open_client.app.state.kefal
    settings = svc.settings
    kept = query(settings, "SELECT id FROM hosts WHERE facts IS NOT NULL"
                           " AND facts_of = snapshot_id")  # fmt: skip
    assert sorted(r[0] for r in kept) == sorted(ids.values())
    alice_id = query(settings, "SELECT org_id FROM hosts WHERE id = ?", ids["db"])[0][0]

    def fresh_estate(org_id: str) -> bytes:
        return bytes(in_app(open_client, Graphs(svc.db).estate_document, org_id))

    from_facts = fresh_estate(alice_id)
    assert from_facts == in_app(open_client, svc.graphs.estate_document, alice_id)
    # the stored facts are what a fresh cache reads: an address only they hold shows up
    blob = query(settings, "SELECT facts FROM hosts WHERE id = ?", ids["db"])[0][0]
    marked = graph.FACTS_FROM_BLOB.decode(blob)
    marked = msgspec.structs.replace(marked, ips=(*marked.ips, "192.0.2.77"))

    def put(conn: Any, facts_of: str = "snapshot_id") -> None:
        conn.execute(f"UPDATE hosts SET facts = ?, facts_of = {facts_of} WHERE id = ?",
                     (graph.FACTS_BLOB.encode(marked), ids["db"]))  # fmt: skip

    in_app(open_client, svc.db.write, put)
    assert b"192.0.2.77" in fresh_estate(alice_id)
    # facts of another snapshot than the latest (a release without them ingested since)
    # are not trusted: the body is read instead
    in_app(open_client, svc.db.write, put, "'an older snapshot'")
    assert fresh_estate(alice_id) == from_facts
    # another tenant's row under the same host id changes nothing of alice's
    assert not in_app(open_client, svc.db.read, estate_store.facts, "someone-else", [ids["db"]])
    # without stored facts (a database from before them) the bodies give the same document
    in_app(open_client, svc.db.write, lambda c: c.execute("UPDATE hosts SET facts = NULL"))
    assert fresh_estate(alice_id) == from_facts
    assert fresh_estate("someone-else") == b'{"nodes":[],"edges":[]}'
