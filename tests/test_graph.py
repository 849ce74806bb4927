"""Graph and topology: shape, neighbourhood, overlay, isolation, stable ids, Cytoscape load."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from kefal_lite.app import create_app
from kefal_lite.clock import FrozenClock
from tests.builders import BASE_PROCESSES, T0, proc
from tests.conftest import enroll, login, make_settings, register, send
from tests.helpers.estate import cytoscape_load

JS = Path(__file__).parent / "js"

WEB_IP, DB_IP = "192.168.1.20", "192.168.1.21"
DB_PROCS = [*BASE_PROCESSES, proc("postgres", "postgres", pid=900)]


def two_hosts(
    c: TestClient[Any], user: str, clock: FrozenClock
) -> tuple[dict[str, str], dict[str, str]]:
    clock.set(T0 + timedelta(seconds=5))
    web, db = enroll(c, user), enroll(c, user)
    r = send(c, db, 0, hostname="db-01", ip_addresses=[DB_IP], processes=DB_PROCS,
             add_ports=[{"port": 5432, "process": "postgres", "address": "0.0.0.0"}],
             logged_in_users=[])  # fmt: skip
    assert r.status_code == 200, r.text
    conn = {
        "remote_address": DB_IP,
        "remote_port": 5432,
        "local_port": 41000,
        "process": "gunicorn",
    }
    r = send(c, web, 0, hostname="web-01", ip_addresses=[WEB_IP], connections=[conn],
             add_ports=[{"port": 5432, "process": "postgres", "address": "127.0.0.1"}])  # fmt: skip
    assert r.status_code == 200, r.text
    return web, db


def _by(elements: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [e["data"] for e in elements if all(e["data"].get(k) == v for k, v in match.items())]


def test_two_host_graph_with_a_cross_host_connection(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    register(client, "alice")
    session = login(client, "alice")
    two_hosts(client, "alice", clock)
    g = client.get("/api/v1/graph?view=full", headers=session).json()
    nodes, edges = g["nodes"], g["edges"]
    hosts = {n["hostname"]: n for n in _by(nodes, type="host")}
    assert set(hosts) == {"web-01", "db-01"}
    web, db = hosts["web-01"], hosts["db-01"]
    assert web["status"] == "online" and web["ip_addresses"] == [WEB_IP]

    [pg_db] = _by(nodes, type="service", host_id=db["host_id"], label="postgres")
    [exposed] = _by(nodes, type="port", host_id=db["host_id"], port=5432)
    assert exposed["label"] == "5432/tcp on 0.0.0.0" and exposed["exposure"] == "exposed"
    [loopback] = _by(nodes, type="port", host_id=web["host_id"], port=5432)
    assert loopback["label"] == "5432/tcp on 127.0.0.1" and loopback["exposure"] == "loopback"
    assert _by(edges, type="runs", source=db["id"], target=pg_db["id"])
    assert _by(edges, type="listens", source=pg_db["id"], target=exposed["id"])
    [runs_as] = _by(edges, type="runs_as", target=pg_db["id"])
    assert runs_as["source"] == f"identity:{db['host_id']}:postgres"
    [alice] = _by(nodes, type="identity", host_id=web["host_id"], label="alice")
    assert _by(edges, type="logged_in", source=alice["id"], target=web["id"])
    [link] = _by(edges, type="connects")
    assert (link["source"], link["target"], link["port"]) == (web["id"], db["id"], 5432)
    assert link["process"] == "gunicorn"
    ids = [n["data"]["id"] for n in nodes] + [e["data"]["id"] for e in edges]
    assert len(ids) == len(set(ids))

    topo = client.get("/api/v1/topology", headers=session).json()["hosts"]
    by_name = {h["hostname"]: h for h in topo}
    assert set(by_name["db-01"]) == {"host_id", "hostname", "os", "kernel", "status", "last_seen_at",
                                     "agent_version", "services", "ports", "identities",
                                     "open_incidents", "max_severity"}  # fmt: skip
    assert by_name["db-01"]["ports"] == 3 and by_name["db-01"]["services"] == 3
    assert (
        by_name["db-01"]["max_severity"] == "critical" and by_name["web-01"]["max_severity"] is None
    )


def test_incident_overlay_and_severity_roll_up(client: TestClient[Any], clock: FrozenClock) -> None:
    register(client, "alice")
    session = login(client, "alice")
    _, db = two_hosts(client, "alice", clock)
    clock.advance(minutes=1)
    # add a root login (medium) and a postgres running as root (high) to the db host
    root_pg = [p for p in DB_PROCS if p["name"] != "postgres"] + [proc("postgres", "root", pid=900)]
    send(client, db, 1, hostname="db-01", ip_addresses=[DB_IP], processes=root_pg,
         add_ports=[{"port": 5432, "process": "postgres", "address": "0.0.0.0"}],
         logged_in_users=["root"])  # fmt: skip
    nodes = client.get("/api/v1/graph?view=full", headers=session).json()["nodes"]
    [host] = _by(nodes, type="host", hostname="db-01")
    assert host["open_incidents"] == 3 and host["max_severity"] == "critical"
    [port] = _by(nodes, type="port", host_id=host["host_id"], port=5432)
    assert (port["open_incidents"], port["max_severity"]) == (1, "critical")
    [pg] = _by(nodes, type="service", host_id=host["host_id"], label="postgres")
    assert (pg["open_incidents"], pg["max_severity"]) == (1, "high")
    [root] = _by(nodes, type="identity", host_id=host["host_id"], label="root")
    assert (root["open_incidents"], root["max_severity"]) == (1, "medium")
    [web] = _by(nodes, type="host", hostname="web-01")
    assert (web["open_incidents"], web["max_severity"]) == (0, None)


def test_neighbourhood_filter(client: TestClient[Any], clock: FrozenClock) -> None:
    register(client, "alice")
    session = login(client, "alice")
    web, db = two_hosts(client, "alice", clock)
    lonely = enroll(client, "alice")
    send(client, lonely, 0, hostname="nas", ip_addresses=["192.168.1.30"])
    full = client.get("/api/v1/graph?view=full", headers=session).json()
    [db_node] = _by(full["nodes"], type="host", hostname="db-01")
    part = client.get(f"/api/v1/graph?host_id={db_node['host_id']}", headers=session).json()
    hosts = {n["hostname"] for n in _by(part["nodes"], type="host")}
    assert hosts == {"db-01", "web-01"}  # the neighbour that connects in, not the NAS
    assert {n["data"]["host_id"] for n in part["nodes"] if n["data"]["type"] != "host"} == {
        db_node["host_id"]
    }
    assert len(_by(part["edges"], type="connects")) == 1
    assert client.get("/api/v1/graph?host_id=nope", headers=session).status_code == 404


def test_graph_is_tenant_scoped(open_client: TestClient[Any], alice: dict[str, str],
                                bob: dict[str, str], clock: FrozenClock) -> None:  # fmt: skip
    two_hosts(open_client, "alice", clock)
    assert open_client.get("/api/v1/graph", headers=bob).json() == {"nodes": [], "edges": []}
    assert open_client.get("/api/v1/topology", headers=bob).json() == {"hosts": []}
    alice_hosts = open_client.get("/api/v1/topology", headers=alice).json()["hosts"]
    assert len(alice_hosts) == 2
    host_id = alice_hosts[0]["host_id"]
    assert open_client.get(f"/api/v1/graph?host_id={host_id}", headers=bob).status_code == 404
    assert open_client.get("/api/v1/graph").status_code == 401


def test_ids_are_stable_across_calls_and_restarts(tmp_path: Path, clock: FrozenClock) -> None:
    settings = make_settings(tmp_path / "d")
    with TestClient(create_app(settings, clock=clock)) as c:
        register(c, "alice")
        session = login(c, "alice")
        two_hosts(c, "alice", clock)
        first = c.get("/api/v1/graph?view=full", headers=session).json()
        assert c.get("/api/v1/graph?view=full", headers=session).json() == first
    with TestClient(create_app(settings, clock=clock)) as c:
        again = c.get("/api/v1/graph?view=full", headers=session).json()
    ids = lambda g: sorted(e["data"]["id"] for e in g["nodes"] + g["edges"])  # noqa: E731
    assert ids(again) == ids(first) and ids(first)


def test_graph_loads_in_cytoscape(client: TestClient[Any], clock: FrozenClock) -> None:
    register(client, "alice")
    session = login(client, "alice")
    two_hosts(client, "alice", clock)
    g = client.get("/api/v1/graph?view=full", headers=session).json()
    result = cytoscape_load(g)
    assert result["nodes"] == len(g["nodes"]) and result["edges"] == len(g["edges"])
    assert result["dangling"] == [] and result["errors"] == []
    assert result["types"] == ["host", "identity", "port", "service"]


def test_the_cytoscape_check_can_fail() -> None:
    with pytest.raises(AssertionError, match="dangling|Can not create edge"):
        cytoscape_load({"nodes": [{"data": {"id": "a"}}],
                        "edges": [{"data": {"id": "e", "source": "a", "target": "missing"}}]})  # fmt: skip


def test_cached_fragments_follow_new_snapshots_and_incidents(
    client: TestClient[Any], clock: FrozenClock
) -> None:
    register(client, "alice")
    session = login(client, "alice")
    web, db = two_hosts(client, "alice", clock)
    first = client.get("/api/v1/graph?view=full", headers=session).json()
    [port] = [n["data"] for n in first["nodes"] if n["data"]["type"] == "port" and n["data"]["port"] == 5432
              and n["data"]["exposure"] == "exposed"]  # fmt: skip
    assert port["open_incidents"] == 1
    assert client.get("/api/v1/graph?view=full", headers=session).json() == first  # served from the cache
    clock.advance(minutes=1)
    # the db host fixes its exposure and opens a web port: both show on the next call
    send(client, db, 1, hostname="db-01", ip_addresses=[DB_IP], processes=DB_PROCS, logged_in_users=[],
         add_ports=[{"port": 5432, "process": "postgres", "address": "127.0.0.1"},
                    {"port": 8080, "process": "postgres", "address": "127.0.0.1"}])  # fmt: skip
    after = client.get("/api/v1/graph?view=full", headers=session).json()
    db_ports = {(n["data"]["port"], n["data"]["exposure"], n["data"]["open_incidents"])
                for n in after["nodes"] if n["data"]["type"] == "port" and n["data"]["host_id"] == port["host_id"]}  # fmt: skip
    assert (8080, "loopback", 0) in db_ports and (5432, "exposed", 1) not in db_ports
    [host] = [n["data"] for n in after["nodes"] if n["data"].get("hostname") == "db-01"]
    assert host["open_incidents"] == 0 and host["max_severity"] is None
    result = cytoscape_load(after)
    assert result["dangling"] == [] and result["errors"] == []


def test_overlapping_graph_builds_turn_the_gc_back_on_only_after_the_last() -> None:
    """Builds run on worker threads and overlap; the GC switch is process-wide."""
    import gc

    from kefal_lite.graphs import _GcPause

    assert gc.isenabled()
    pause = _GcPause()
    pause.__enter__()  # build A
    pause.__enter__()  # build B, on another thread
    pause.__exit__(None, None, None)  # A ends while B still allocates
    assert not gc.isenabled()
    pause.__exit__(None, None, None)
    assert gc.isenabled()
    gc.disable()  # someone else's pause is left as it was
    with pause:
        pass
    assert not gc.isenabled()
    gc.enable()
