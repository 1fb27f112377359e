"""The live topology the playbooks agree on, from what each server reports."""

from __future__ import annotations

from typing import Any, Optional

from ansible_collections.nospof.webstack.plugins.module_utils.db_topology import analyse_topology


def server(read_only: bool = True, source: Optional[str] = None, io: str = "Yes", sql: str = "Yes",
           lag: Optional[int] = 0, received: str = "", data: bool = True, semi_active: Any = True) -> dict:
    replica = None
    if source:
        replica = {"source_host": source, "source_port": 3306, "io_running": io, "sql_running": sql,
                   "seconds_behind": lag, "last_io_error": "", "last_sql_error": "", "using_gtid": "Slave_Pos",
                   "gtid_received": received}
    return {"reachable": True, "read_only": read_only, "replica": replica, "has_user_schemas": data,
            "gtid_format": "mariadb", "gtid_applied": received,
            "semi_sync": {"primary_active": semi_active, "primary_clients": 1 if semi_active else 0,
                          "replica_active": True}}


def entry(host: str, info: Optional[dict] = None, unreachable: bool = False) -> dict[str, Any]:
    addresses = {"db1": "10.0.0.31", "db2": "10.0.0.32", "db3": "10.0.0.33"}
    return {"host": host, "address": addresses[host], "unreachable": unreachable, "info": info}


def healthy_pair() -> list:
    return [entry("db1", server(read_only=False)), entry("db2", server(source="10.0.0.31", received="0-1-10"))]


def test_the_writable_server_is_the_primary_and_its_followers_are_replicas():
    topology = analyse_topology(healthy_pair(), "db1")
    assert topology["primary"] == "db1"
    assert topology["primary_address"] == "10.0.0.31"
    assert topology["roles"] == {"db1": "primary", "db2": "replica"}
    assert topology["replica_addresses"] == ["10.0.0.32"]
    assert topology["healthy"] is True
    assert topology["problems"] == []


def test_nothing_deployed_means_the_inventory_primary():
    servers = [entry("db1", {"reachable": False, "installed": False}),
               entry("db2", {"reachable": False, "installed": False})]
    topology = analyse_topology(servers, "db1")
    assert topology["primary"] == "db1"
    assert topology["primary_state"] == "planned"
    assert topology["roles"]["db2"] == "new"
    assert topology["unsafe"] == []


def test_fresh_installs_are_writable_but_claim_nothing():
    # Debian's package starts the server writable, before the role configures it.
    fresh = [entry("db1", server(read_only=False, data=False)), entry("db2", server(read_only=False, data=False))]
    topology = analyse_topology(fresh, "db1")
    assert topology["unsafe"] == []
    assert topology["primary"] == "db1"
    assert topology["primary_state"] == "planned"
    assert topology["roles"]["db2"] == "new"


def test_a_fresh_install_beside_the_live_primary_is_new():
    servers = [entry("db1", server(read_only=False)), entry("db2", server(read_only=False, data=False))]
    topology = analyse_topology(servers, "db2")
    assert topology["primary"] == "db1"
    assert topology["roles"]["db2"] == "new"
    assert topology["unsafe"] == []


def test_after_a_failover_the_live_primary_wins_over_the_inventory():
    servers = [entry("db1", server(read_only=True)), entry("db2", server(read_only=False))]
    topology = analyse_topology(servers, "db1")
    assert topology["primary"] == "db2"
    assert topology["fenced"] == ["db1"]
    assert any("db_rejoin.yml" in problem for problem in topology["problems"])
    assert topology["unsafe"] == []


def test_two_writable_servers_are_unsafe():
    servers = [entry("db1", server(read_only=False)), entry("db2", server(read_only=False, source="10.0.0.31"))]
    topology = analyse_topology(servers, "db1")
    assert topology["primary"] is None
    assert "split brain" in topology["unsafe"][0]
    assert topology["healthy"] is False


def test_a_dead_primary_the_replicas_follow_calls_for_a_failover():
    servers = [entry("db1", unreachable=True),
               entry("db2", server(source="10.0.0.31", io="Connecting", received="0-1-10"))]
    topology = analyse_topology(servers, "db1")
    assert topology["primary"] == "db1"
    assert topology["primary_state"] == "unreachable"
    assert topology["failover_candidate"] == "db2"
    assert "db_failover.yml" in topology["unsafe"][0]


def test_a_restarted_primary_is_read_only_but_still_the_primary():
    servers = [entry("db1", server(read_only=True)), entry("db2", server(source="10.0.0.31"))]
    topology = analyse_topology(servers, "db1")
    assert topology["primary"] == "db1"
    assert topology["primary_state"] == "read-only"
    assert topology["fenced"] == []
    assert topology["unsafe"] == []
    assert any("read-only" in problem for problem in topology["problems"])


def test_the_failover_candidate_is_the_replica_that_received_most():
    servers = [entry("db1", {"reachable": False, "installed": True}),
               entry("db2", server(source="10.0.0.31", received="0-1-100")),
               entry("db3", server(source="10.0.0.31", received="0-1-120"))]
    topology = analyse_topology(servers, "db1")
    assert topology["primary_state"] == "down"
    assert topology["failover_candidate"] == "db3"


def test_replica_problems_are_named():
    servers = [entry("db1", server(read_only=False, semi_active=False)),
               entry("db2", server(source="10.0.0.31", sql="No")),
               entry("db3", server(source="10.0.0.31", lag=60))]
    problems = " ".join(analyse_topology(servers, "db1", max_lag_seconds=10)["problems"])
    assert "db2: replication threads IO=Yes SQL=No" in problems
    assert "db3 is 60 s behind" in problems
    assert "Semi-sync is off on the primary db1" in problems


def test_a_replica_of_another_server_is_a_stray_and_an_empty_server_is_new():
    servers = [entry("db1", server(read_only=False)), entry("db2", server(source="10.0.0.33")),
               entry("db3", server(data=False))]
    topology = analyse_topology(servers, "db1")
    assert topology["roles"] == {"db1": "primary", "db2": "stray", "db3": "new"}
    assert topology["unsafe"] == []


def test_a_promoted_topology_names_the_new_primary_its_replicas_and_the_fenced():
    from ansible_collections.nospof.webstack.plugins.module_utils.db_topology import promoted_topology
    servers = [entry("db1", unreachable=True), entry("db2", server(source="10.0.0.31")),
               entry("db3", server(source="10.0.0.31"))]
    after = promoted_topology(analyse_topology(servers, "db1"), "db2", ["db3"], fenced=["db1"])
    assert after["primary"] == "db2"
    assert after["primary_address"] == "10.0.0.32"
    assert after["replica_addresses"] == ["10.0.0.33"]
    assert after["roles"] == {"db1": "fenced", "db2": "primary", "db3": "replica"}
    assert after["fenced"] == ["db1"]
