"""mysql_replication_info, mysql_primary and mysql_replica's former-primary path on loopback MariaDB.

The tests run in file order on one primary and one replica: facts first, then a
switchover under writes, then an errant write on the old primary.
"""

from __future__ import annotations

from typing import Any

import pytest
from mariadb_lab import MariadbServer, free_port, replica_args, run_module

INFO_KEYS = {"reachable", "error", "version", "flavour", "server_id", "read_only",
             "read_only_variables", "gtid_format", "gtid_executed", "gtid_binlog_position",
             "gtid_applied", "replica", "semi_sync", "has_user_schemas"}


def info(server: MariadbServer, **overrides: Any) -> dict[str, Any]:
    """mysql_replication_info's result for a server."""
    run = run_module(dict({"login_unix_socket": server.socket}, **overrides),
                     module="mysql_replication_info")
    assert not run.failed, run.result.get("msg")
    return run.result


@pytest.fixture(scope="module")
def replication(primary: MariadbServer, replica_server: MariadbServer) -> MariadbServer:
    """replica_server replicates from primary and is read-only, as the role leaves a replica."""
    run = run_module(replica_args(replica_server, primary))
    assert not run.failed, run.result.get("msg")
    replica_server.sql("SET GLOBAL read_only = ON")
    primary.sql("INSERT INTO app.items (note) VALUES ('before the switch')")
    synced = run_module(replica_args(replica_server, primary, wait_for_sync=True))
    assert not synced.failed, synced.result.get("msg")
    return replica_server


def test_info_on_the_primary_and_the_replica(primary, replication):
    on_primary = info(primary)
    on_replica = info(replication)

    for result in (on_primary, on_replica):
        assert INFO_KEYS <= set(result) and not result["changed"]
        assert result["reachable"] is True and result["error"] is None
        assert (result["flavour"], result["gtid_format"]) == ("mariadb", "mariadb")
        assert result["version"] == primary.value("SELECT VERSION()")
        assert result["has_user_schemas"] is True
        assert set(result["semi_sync"]) == {"primary_enabled", "primary_active",
                                            "primary_clients", "replica_enabled",
                                            "replica_active"}
    position = primary.value("SELECT @@gtid_binlog_pos")
    assert on_primary["server_id"] == 1 and on_replica["server_id"] == 2
    assert on_primary["read_only"] is False
    assert on_primary["read_only_variables"] == {"read_only": "OFF"}
    assert on_primary["replica"] is None
    assert on_primary["gtid_binlog_position"] == position
    assert on_primary["gtid_executed"] == primary.value("SELECT @@gtid_binlog_state")
    assert on_primary["semi_sync"]["primary_clients"] == 0
    assert on_replica["read_only"] is True
    assert on_replica["read_only_variables"] == {"read_only": "ON"}
    assert on_replica["gtid_applied"] == position
    assert on_replica["gtid_executed"] == position
    replica = on_replica["replica"]
    assert (replica["source_host"], replica["source_port"]) == ("127.0.0.1", primary.port)
    assert (replica["io_running"], replica["sql_running"]) == ("Yes", "Yes")
    assert replica["seconds_behind"] == 0 and replica["using_gtid"] is True
    assert replica["last_io_error"] == "" and replica["last_sql_error"] == ""
    assert replica["gtid_received"] == position


def test_info_on_a_stopped_port_fails_or_reports_unreachable():
    closed = {"login_host": "127.0.0.1", "login_port": free_port(), "connect_timeout": 3}

    failed = run_module(closed, module="mysql_replication_info")
    reported = run_module(dict(closed, allow_unreachable=True), module="mysql_replication_info")

    assert failed.failed and not failed.changed
    assert "Cannot connect to MySQL/MariaDB as root@127.0.0.1" in failed.result["msg"]
    assert not reported.failed and not reported.changed
    assert reported.result["reachable"] is False
    assert "Cannot connect" in reported.result["error"]
    assert INFO_KEYS <= set(reported.result)
    assert {key for key in INFO_KEYS if reported.result[key] is not None} == {"reachable", "error"}


def test_info_in_check_mode_reads_as_usual(primary):
    run = run_module({"login_unix_socket": primary.socket}, check=True,
                     module="mysql_replication_info")

    assert not run.failed and not run.changed
    assert run.result["server_id"] == 1
