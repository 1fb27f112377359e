"""mysql_replication_info, mysql_primary and mysql_replica's former-primary path on loopback MariaDB.

The tests run in file order on one primary and one replica: facts first, then a
switchover under writes, then an errant write on the old primary.
"""

from __future__ import annotations

from typing import Any

import pymysql
import pytest
from mariadb_lab import (
    APP_PASSWORD,
    APP_USER,
    SEED_PASSWORD,
    SEED_USER,
    FollowingWriter,
    MariadbServer,
    free_port,
    replica_args,
    run_module,
    wait_until,
)

INFO_KEYS = {"reachable", "error", "version", "flavour", "server_id", "read_only",
             "read_only_variables", "gtid_format", "gtid_executed", "gtid_binlog_position",
             "gtid_applied", "replica", "semi_sync", "has_user_schemas"}


def info(server: MariadbServer, **overrides: Any) -> dict[str, Any]:
    """mysql_replication_info's result for a server."""
    run = run_module(dict({"login_unix_socket": server.socket}, **overrides),
                     module="mysql_replication_info")
    assert not run.failed, run.result.get("msg")
    return run.result


def primary_role(server: MariadbServer, check: bool = False, diff: bool = False,
                 **options: Any) -> Any:
    """A mysql_primary run on server."""
    return run_module(dict({"login_unix_socket": server.socket}, **options), check=check,
                      diff=diff, module="mysql_primary")


def semi_sync_clients(server: MariadbServer) -> int:
    return int(server.sql("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'")[0]["Value"])


@pytest.fixture(scope="module")
def replication(primary: MariadbServer, replica_server: MariadbServer) -> MariadbServer:
    """replica_server replicates semi-synchronously from primary and is read-only, as the role leaves it."""
    primary.sql(f"CREATE USER '{APP_USER}'@'127.0.0.1' IDENTIFIED BY '{APP_PASSWORD}'",
                f"GRANT SELECT, INSERT ON app.* TO '{APP_USER}'@'127.0.0.1'",
                "SET GLOBAL rpl_semi_sync_master_enabled = ON")
    run = run_module(replica_args(replica_server, primary))
    assert not run.failed, run.result.get("msg")
    replica_server.sql("SET GLOBAL read_only = ON", "SET GLOBAL rpl_semi_sync_slave_enabled = ON",
                       "STOP REPLICA IO_THREAD", "START REPLICA IO_THREAD")
    wait_until(lambda: semi_sync_clients(primary) == 1, what="a semi-sync replica")
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
    assert on_primary["semi_sync"] == {"primary_enabled": True, "primary_active": True,
                                       "primary_clients": 1, "replica_enabled": False,
                                       "replica_active": False}
    assert on_replica["semi_sync"] == {"primary_enabled": False, "primary_active": False,
                                       "primary_clients": 0, "replica_enabled": True,
                                       "replica_active": True}
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


def test_promotion_waits_for_received_transactions_or_changes_nothing(primary, replication):
    replication.sql("STOP REPLICA SQL_THREAD")
    try:
        primary.sql("INSERT INTO app.items (note) VALUES ('received, not applied')")
        position = primary.value("SELECT @@gtid_binlog_pos")
        wait_until(lambda: replication.replica_status()["Gtid_IO_Pos"] == position,
                   what="the replica to receive " + position)

        run = primary_role(replication, state="present", timeout=1)

        assert run.failed and not run.changed and run.result["commands"] == []
        assert f"did not apply every transaction it received ({position}) within 1.0s" in run.result["msg"]
        assert "SQL thread No" in run.result["msg"]
        assert "It was not promoted; nothing was changed" in run.result["msg"]
        assert replication.replica_status() is not None
        assert replication.value("SELECT @@read_only") == 1
    finally:
        replication.sql("START REPLICA SQL_THREAD")


def idle_app_session(server: MariadbServer) -> Any:
    """An open, idle session of the app account: only a kill can end it.

    The writer's own session may end by itself once read_only fails its insert, so the
    fence's kill count is asserted on this one.
    """
    return pymysql.connect(host="127.0.0.1", port=server.port, user=APP_USER,
                           password=APP_PASSWORD, connect_timeout=2)


def session_was_ended(connection: Any) -> bool:
    try:
        connection.ping(reconnect=False)
    except pymysql.err.MySQLError:
        return True
    finally:
        connection.close()
    return False


def test_switchover_under_writes(primary, replication):
    new_primary = replication
    idle_session = idle_app_session(primary)
    with FollowingWriter(primary, "before the switch") as writer:
        writer.wait_for_commits(primary, 20)
        fence_predicted = primary_role(primary, check=True, diff=True, state="fenced",
                                       kill_user_sessions=[APP_USER])
        assert primary.value("SELECT @@read_only") == 0
        fenced = primary_role(primary, state="fenced", kill_user_sessions=[APP_USER])
        fenced_position = primary.value("SELECT @@gtid_binlog_pos")
        promote_predicted = primary_role(new_primary, check=True, state="present",
                                         wait_for_gtid=fenced.result.get("gtid_binlog_position"))
        assert new_primary.replica_status() is not None
        promoted = primary_role(new_primary, diff=True, state="present",
                                wait_for_gtid=fenced.result["gtid_binlog_position"])
        writer.switch_to(new_primary, "after the switch")
        writer.wait_for_commits(new_primary, 20)
        fenced_again = primary_role(primary, state="fenced", kill_user_sessions=[APP_USER])
        promoted_again = primary_role(new_primary, state="present")
        rejoin = replica_args(primary, new_primary)
        rejoin_predicted = run_module(rejoin, check=True)
        assert primary.replica_status() is None
        rejoined = run_module(rejoin)
        writer.wait_for_commits(new_primary, writer.committed[new_primary.name] + 20)
    synced = run_module(dict(rejoin, wait_for_sync=True))
    rejoined_again = run_module(rejoin)

    assert fence_predicted.changed and not fence_predicted.failed
    assert fence_predicted.result["commands"][:2] == [
        "SET GLOBAL read_only = ON", "SET GLOBAL rpl_semi_sync_master_enabled = OFF"]
    assert fence_predicted.result["diff"]["after"]["read_only"] is True
    assert not fenced.failed, fenced.result.get("msg")
    assert fenced.changed and fenced.result["sessions_killed"] >= 1
    assert session_was_ended(idle_session)
    assert fenced.result["after"] == {
        "read_only": True, "read_only_variables": {"read_only": "ON"},
        "replica_configured": False, "semi_sync_primary_enabled": False,
        "semi_sync_replica_enabled": False}
    assert fenced.result["gtid_binlog_position"] == fenced_position
    assert any("read-only" in error for error in writer.errors)
    assert promote_predicted.changed and promote_predicted.result["after"]["read_only"] is False
    assert not promoted.failed, promoted.result.get("msg")
    assert promoted.changed and promoted.result["commands"] == [
        "STOP REPLICA", "RESET REPLICA ALL", "SET GLOBAL rpl_semi_sync_slave_enabled = OFF",
        "SET GLOBAL rpl_semi_sync_master_enabled = ON", "SET GLOBAL read_only = OFF"]
    assert promoted.result["diff"]["before"]["replica_configured"] is True
    assert promoted.result["after"]["replica_configured"] is False
    assert new_primary.replica_status() is None and new_primary.value("SELECT @@read_only") == 0
    assert not fenced_again.changed and fenced_again.result["sessions_killed"] == 0
    assert not promoted_again.changed and promoted_again.result["commands"] == []
    before_switch = "SELECT COUNT(*) FROM app.items WHERE note = 'before the switch'"
    assert new_primary.value(before_switch) == primary.value(before_switch)
    assert new_primary.value(before_switch) >= writer.committed[primary.name]
    assert rejoin_predicted.changed and rejoin_predicted.result["former_primary"]
    assert [command.split(" = ")[0] for command in rejoin_predicted.result["commands"]] == [
        "SET GLOBAL gtid_slave_pos", "CHANGE MASTER TO MASTER_HOST", "START REPLICA"]
    assert rejoin_predicted.result["commands"][0] == (
        "SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos")
    assert not rejoined.failed, rejoined.result.get("msg")
    assert rejoined.changed and rejoined.result["former_primary"]
    assert (rejoined.result["io_thread"], rejoined.result["sql_thread"]) == ("Yes", "Yes")
    assert not synced.failed, synced.result.get("msg")
    assert not synced.changed
    assert not rejoined_again.changed and rejoined_again.result["commands"] == []
    after_switch = "SELECT COUNT(*) FROM app.items WHERE note = 'after the switch'"
    assert primary.value(after_switch) == new_primary.value(after_switch)
    assert primary.value(after_switch) >= writer.committed[new_primary.name]
    checksum = "SELECT COUNT(*) AS n, SUM(id) AS ids FROM app.items"
    assert primary.sql(checksum) == new_primary.sql(checksum)


def test_errant_write_on_the_old_primary_is_refused_then_seed_force_recovers(primary, replication):
    old_primary, new_primary = primary, replication
    join = replica_args(old_primary, new_primary)
    force = dict(join, seed="force", seed_user=SEED_USER, seed_password=SEED_PASSWORD)
    detached = run_module({"login_unix_socket": old_primary.socket, "state": "absent"})
    old_primary.sql("INSERT INTO app.items (note) VALUES ('errant')")
    errant_gtid = old_primary.value("SELECT @@gtid_binlog_pos")
    new_primary.sql("INSERT INTO app.items (note) VALUES ('after the errant write')")

    refused = run_module(join)
    refusal_predicted = run_module(join, check=True)
    force_predicted = run_module(force, check=True)
    errant_rows = "SELECT COUNT(*) FROM app.items WHERE note = 'errant'"
    assert old_primary.value(errant_rows) == 1 and old_primary.replica_status() is None
    forced = run_module(force)
    synced = run_module(dict(join, wait_for_sync=True))
    forced_again = run_module(force)

    assert detached.changed and errant_gtid.startswith("0-1-")
    for run in (refused, refusal_predicted):
        assert run.failed and not run.changed and run.result["commands"] == []
        assert f"errant GTIDs: {errant_gtid}" in run.result["msg"]
        assert "seed=force" in run.result["msg"]
        assert run.result["errant_gtids"] == errant_gtid
    assert force_predicted.changed and force_predicted.result["seeded"]
    assert force_predicted.result["commands"][:3] == [
        "DROP DATABASE `app`", "CREATE DATABASE IF NOT EXISTS `nospof_seed_incomplete`", "RESET MASTER"]
    assert not forced.failed, forced.result.get("msg")
    assert forced.changed and forced.result["seeded"] and not forced.result["former_primary"]
    assert SEED_PASSWORD not in forced.output
    assert not synced.failed, synced.result.get("msg")
    assert not forced_again.changed and not forced_again.result["seeded"]
    assert old_primary.value(errant_rows) == 0
    checksum = "SELECT COUNT(*) AS n, SUM(id) AS ids FROM app.items"
    assert old_primary.sql(checksum) == new_primary.sql(checksum)
    assert old_primary.value("SELECT COUNT(*) FROM app.items WHERE note = 'after the errant write'") == 1
