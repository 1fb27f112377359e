"""nospof.webstack.mysql_replica run by Ansible against real MariaDB servers on loopback."""

from __future__ import annotations

import json
from pathlib import Path

from mariadb_lab import (
    REPLICATION_PASSWORD,
    SEED_PASSWORD,
    SEED_USER,
    InsertLoad,
    free_port,
    replica_args,
    run_module,
    start_replica,
)


def test_check_mode_predicts_a_new_source_and_changes_nothing(primary, replica):
    run = run_module(replica_args(replica, primary), check=True)

    assert not run.failed, run.result.get("msg")
    assert run.changed
    assert [command.split(" ")[0] for command in run.result["commands"]] == ["CHANGE", "START"]
    assert replica.replica_status() is None


def test_first_run_changes_and_second_run_does_not(primary, replica):
    first = run_module(replica_args(replica, primary))
    second = run_module(replica_args(replica, primary))
    predicted = run_module(replica_args(replica, primary), check=True)

    assert not first.failed, first.result.get("msg")
    assert first.changed
    assert (first.result["io_thread"], first.result["sql_thread"]) == ("Yes", "Yes")
    assert first.result["state"] == "running"
    assert not second.changed and second.result["commands"] == []
    assert not predicted.changed and predicted.result["commands"] == []


def test_rows_written_on_the_primary_appear_on_the_replica(primary, replica):
    run_module(replica_args(replica, primary))
    primary.sql("INSERT INTO app.items (note) VALUES ('one'), ('two'), ('three')")

    synced = run_module(replica_args(replica, primary, wait_for_sync=True))

    assert not synced.failed, synced.result.get("msg")
    assert not synced.changed
    assert synced.result["primary_gtid_position"] == primary.value("SELECT @@gtid_binlog_pos")
    assert synced.result["gtid_applied"] == synced.result["primary_gtid_position"]
    assert replica.sql("SELECT note FROM app.items ORDER BY id")[-3:] == [
        {"note": "one"}, {"note": "two"}, {"note": "three"}]


def test_diff_and_commands_mask_the_password(primary, replica):
    run_module(replica_args(replica, primary))
    new_password = "N3w-Repl-Pass-1"
    primary.sql(f"ALTER USER 'repl'@'127.0.0.1' IDENTIFIED BY '{new_password}'")
    try:
        predicted = run_module(replica_args(replica, primary, primary_password=new_password),
                               check=True, diff=True)
        changed = run_module(replica_args(replica, primary, primary_password=new_password),
                             diff=True)
        again = run_module(replica_args(replica, primary, primary_password=new_password))
    finally:
        primary.sql(f"ALTER USER 'repl'@'127.0.0.1' IDENTIFIED BY '{REPLICATION_PASSWORD}'")

    for run in (predicted, changed):
        assert run.changed and run.result["password_updated"]
        assert run.result["diff"]["before"]["primary_password"] == "********"
        assert run.result["diff"]["after"]["primary_password"] == "******** (changed)"
        assert any("PASSWORD = '********'" in command for command in run.result["commands"])
        assert new_password not in run.output
        assert REPLICATION_PASSWORD not in run.output
    assert changed.result["io_thread"] == "Yes"
    assert not again.changed


def test_wrong_password_fails_with_the_replicas_own_error(primary, replica):
    wrong = run_module(replica_args(replica, primary, primary_password="not-the-password"))
    fixed = run_module(replica_args(replica, primary))
    again = run_module(replica_args(replica, primary))

    assert wrong.failed
    assert "Access denied for user 'repl'" in wrong.result["msg"]
    assert wrong.result["last_io_errno"] == 1045
    assert wrong.result["changed"]
    assert "not-the-password" not in wrong.output
    assert not fixed.failed, fixed.result.get("msg")
    assert fixed.changed and fixed.result["password_updated"]
    assert fixed.result["io_thread"] == "Yes"
    assert not again.changed


def test_unreachable_primary_fails_clearly_and_changes_nothing(primary, replica):
    run_module(replica_args(replica, primary))
    closed_port = free_port()

    run = run_module(replica_args(replica, primary, primary_port=closed_port))

    assert run.failed
    assert f"Cannot reach the primary 127.0.0.1:{closed_port}" in run.result["msg"]
    assert "Connection refused" in run.result["msg"]
    assert not run.result["changed"] and run.result["commands"] == []
    status = replica.replica_status()
    assert status["Master_Port"] == primary.port
    assert (status["Slave_IO_Running"], status["Slave_SQL_Running"]) == ("Yes", "Yes")


def test_stopped_and_absent_are_idempotent_and_predicted(primary, replica):
    login = {"login_unix_socket": replica.socket}
    run_module(replica_args(replica, primary))

    stop_predicted = run_module(dict(login, state="stopped"), check=True)
    stopped = run_module(dict(login, state="stopped"))
    stopped_again = run_module(dict(login, state="stopped"))
    absent_predicted = run_module(dict(login, state="absent"), check=True, diff=True)
    absent = run_module(dict(login, state="absent"))
    absent_again = run_module(dict(login, state="absent"))

    assert stop_predicted.changed and stop_predicted.result["commands"] == ["STOP REPLICA"]
    assert stopped.changed and stopped.result["state"] == "stopped"
    assert (stopped.result["io_thread"], stopped.result["sql_thread"]) == ("No", "No")
    assert not stopped_again.changed
    assert absent_predicted.changed and absent_predicted.result["commands"] == ["RESET REPLICA ALL"]
    assert absent_predicted.result["diff"]["after"] == {"state": "absent"}
    assert absent.changed and absent.result["state"] == "absent"
    assert replica.replica_status() is None
    assert not absent_again.changed


def test_seeding_an_empty_replica_while_writes_continue_loses_nothing(primary, workdir: Path):
    primary.sql("INSERT INTO app.items (note) SELECT 'before seeding' FROM app.seq_1_to_5000")
    fresh = start_replica(workdir, "scaleout", server_id=3)
    try:
        args = replica_args(fresh, primary, seed="auto", seed_user=SEED_USER,
                            seed_password=SEED_PASSWORD)
        predicted = run_module(args, check=True)
        assert fresh.value("SELECT COUNT(*) FROM information_schema.schemata "
                           "WHERE schema_name = 'app'") == 0
        with InsertLoad(primary) as load:
            inserted_before = load.inserted
            seeded = run_module(args)
            inserted_during = load.inserted - inserted_before
        converged = run_module(dict(args, wait_for_sync=True))

        assert predicted.changed and predicted.result["seeded"]
        assert not seeded.failed, seeded.result.get("msg")
        assert seeded.changed and seeded.result["seeded"]
        assert any("mariadb-dump" in command for command in seeded.result["commands"])
        assert inserted_during > 0 and not load.errors
        assert load.longest_gap < 2.0, "the primary stalled while it was dumped"
        assert SEED_PASSWORD not in seeded.output and REPLICATION_PASSWORD not in seeded.output
        assert not converged.failed, converged.result.get("msg")
        assert not converged.changed and not converged.result["seeded"]
        checksum = "SELECT COUNT(*) AS n, SUM(id) AS ids FROM app.items"
        assert fresh.sql(checksum) == primary.sql(checksum)
        assert fresh.value("SELECT COUNT(*) FROM app.items") >= 5000 + inserted_during
    finally:
        fresh.stop()


def leave_a_seed_cut_off(replica, primary) -> None:
    """What a load cut off part way leaves: the marker, some rows, no GTID position."""
    table = primary.sql("SHOW CREATE TABLE app.items")[0]["Create Table"]
    first_rows = primary.sql("SELECT id, note FROM app.items ORDER BY id LIMIT 100")
    replica.sql("CREATE DATABASE nospof_seed_incomplete", "RESET MASTER",
                "SET SESSION sql_log_bin = 0", "CREATE DATABASE app", "USE app", table)
    connection = replica.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_log_bin = 0")
            cursor.executemany("INSERT INTO app.items (id, note) VALUES (%s, %s)",
                               [(row["id"], row["note"]) for row in first_rows])
    finally:
        connection.close()


def test_a_seed_cut_off_part_way_is_seeded_again_not_replicated_over(primary, workdir: Path):
    primary.sql("INSERT INTO app.items (note) SELECT 'before the cut' FROM app.seq_1_to_2000")
    cut_off = start_replica(workdir, "cutoff", server_id=4)
    try:
        leave_a_seed_cut_off(cut_off, primary)
        args = replica_args(cut_off, primary, seed="auto", seed_user=SEED_USER,
                            seed_password=SEED_PASSWORD)

        refused = run_module(dict(args, seed="never"))
        reseeded = run_module(args)
        converged = run_module(dict(args, wait_for_sync=True))

        assert refused.failed and "seed that never finished" in refused.result["msg"]
        assert not refused.changed
        assert not reseeded.failed, reseeded.result.get("msg")
        assert reseeded.changed and reseeded.result["seeded"]
        assert "DROP DATABASE `app`" in reseeded.result["commands"]
        assert not converged.failed, converged.result.get("msg")
        assert not converged.changed and converged.result["state"] == "running"
        checksum = "SELECT COUNT(*) AS n, SUM(id) AS ids FROM app.items"
        assert cut_off.sql(checksum) == primary.sql(checksum)
        assert cut_off.value("SELECT COUNT(*) FROM information_schema.schemata "
                             "WHERE schema_name = 'nospof_seed_incomplete'") == 0
        # the marker's removal left no transaction of the replica's own
        assert cut_off.value("SELECT @@GLOBAL.gtid_binlog_pos") == ""
    finally:
        cut_off.stop()


def test_module_result_is_valid_json_with_documented_keys(primary, replica):
    run = run_module(replica_args(replica, primary))

    documented = {"state", "io_thread", "sql_thread", "seconds_behind_primary", "gtid_received",
                  "gtid_applied", "last_io_errno", "last_io_error", "last_sql_errno",
                  "last_sql_error", "source", "commands", "seeded", "password_updated",
                  "read_only", "semi_sync_replica", "server_version", "sql_flavour"}
    assert documented <= set(run.result)
    assert json.loads(json.dumps(run.result["source"]))["primary_port"] == primary.port
    assert run.result["sql_flavour"] == "MariaDB 10.5.1+"
