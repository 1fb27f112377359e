"""The replication SQL table: every row's statements and names, and the version resolver."""

from __future__ import annotations

import pytest
from ansible_collections.nospof.webstack.plugins.module_utils import replication_sql as table
from ansible_collections.nospof.webstack.plugins.module_utils.replication_sql import (
    Statement,
    UnsupportedServerError,
    parse_server_version,
    resolve_replication_sql,
)

# What each row must say, written out in full so a reader sees the table's promises.
EXPECTED_ROWS = {
    "MariaDB 10.3.3+": dict(
        row=table.MARIADB_10_3,
        change_source=(
            "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
            "MASTER_PASSWORD = %s, MASTER_SSL = %s, MASTER_SSL_CA = %s, MASTER_SSL_CERT = %s, "
            "MASTER_SSL_KEY = %s, MASTER_SSL_VERIFY_SERVER_CERT = %s, MASTER_USE_GTID = slave_pos"),
        start="START SLAVE", stop="STOP SLAVE", reset="RESET SLAVE ALL",
        show="SHOW SLAVE STATUS", io_column="Slave_IO_Running", host_column="Master_Host",
        lag_column="Seconds_Behind_Master", gtid_column="Using_Gtid", gtid_enabled="Slave_Pos",
        primary_gtid="SELECT @@GLOBAL.gtid_binlog_pos", replica_gtid="SELECT @@GLOBAL.gtid_slave_pos",
        wait="SELECT MASTER_GTID_WAIT(%s, %s)", set_gtid="SET GLOBAL gtid_slave_pos = %s",
        reset_binlog="RESET MASTER", read_only=("read_only",),
        semi_sync_primary="rpl_semi_sync_master_enabled", semi_sync_plugin="",
        semi_sync_replica="rpl_semi_sync_slave_enabled", dump_position="--master-data=2",
        dump_program="mariadb-dump",
        gtid_format="mariadb",
        gtid_origin="SELECT @@GLOBAL.server_id",
        adopt_position="SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos",
        executed_gtid=("SELECT CONCAT_WS(',', NULLIF(@@GLOBAL.gtid_binlog_state, ''), "
                       "NULLIF(@@GLOBAL.gtid_slave_pos, ''))"),
        gtid_disabled="No", semi_sync_clients="Rpl_semi_sync_master_clients",
    ),
    "MariaDB 10.5.1+": dict(
        row=table.MARIADB_10_5,
        change_source=(
            "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
            "MASTER_PASSWORD = %s, MASTER_SSL = %s, MASTER_SSL_CA = %s, MASTER_SSL_CERT = %s, "
            "MASTER_SSL_KEY = %s, MASTER_SSL_VERIFY_SERVER_CERT = %s, MASTER_USE_GTID = slave_pos"),
        start="START REPLICA", stop="STOP REPLICA", reset="RESET REPLICA ALL",
        show="SHOW REPLICA STATUS", io_column="Slave_IO_Running", host_column="Master_Host",
        lag_column="Seconds_Behind_Master", gtid_column="Using_Gtid", gtid_enabled="Slave_Pos",
        primary_gtid="SELECT @@GLOBAL.gtid_binlog_pos", replica_gtid="SELECT @@GLOBAL.gtid_slave_pos",
        wait="SELECT MASTER_GTID_WAIT(%s, %s)", set_gtid="SET GLOBAL gtid_slave_pos = %s",
        reset_binlog="RESET MASTER", read_only=("read_only",),
        semi_sync_primary="rpl_semi_sync_master_enabled", semi_sync_plugin="",
        semi_sync_replica="rpl_semi_sync_slave_enabled", dump_position="--master-data=2",
        dump_program="mariadb-dump",
        gtid_format="mariadb",
        gtid_origin="SELECT @@GLOBAL.server_id",
        adopt_position="SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos",
        executed_gtid=("SELECT CONCAT_WS(',', NULLIF(@@GLOBAL.gtid_binlog_state, ''), "
                       "NULLIF(@@GLOBAL.gtid_slave_pos, ''))"),
        gtid_disabled="No", semi_sync_clients="Rpl_semi_sync_master_clients",
    ),
    "MySQL 8.0.0+": dict(
        row=table.MYSQL_8_0,
        change_source=(
            "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
            "MASTER_PASSWORD = %s, MASTER_SSL = %s, MASTER_SSL_CA = %s, MASTER_SSL_CERT = %s, "
            "MASTER_SSL_KEY = %s, MASTER_SSL_VERIFY_SERVER_CERT = %s, MASTER_AUTO_POSITION = 1, "
            "GET_MASTER_PUBLIC_KEY = 1"),
        start="START SLAVE", stop="STOP SLAVE", reset="RESET SLAVE ALL",
        show="SHOW SLAVE STATUS", io_column="Slave_IO_Running", host_column="Master_Host",
        lag_column="Seconds_Behind_Master", gtid_column="Auto_Position", gtid_enabled="1",
        primary_gtid="SELECT @@GLOBAL.gtid_executed", replica_gtid="SELECT @@GLOBAL.gtid_executed",
        wait="SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)", set_gtid=None,
        reset_binlog="RESET MASTER", read_only=("read_only", "super_read_only"),
        semi_sync_primary="rpl_semi_sync_master_enabled", semi_sync_plugin="rpl_semi_sync_master",
        semi_sync_replica="rpl_semi_sync_slave_enabled", dump_position="--master-data=2",
        dump_program="mysqldump",
        gtid_format="mysql",
        gtid_origin="SELECT @@GLOBAL.server_uuid",
        adopt_position=None,
        executed_gtid="SELECT @@GLOBAL.gtid_executed", gtid_disabled="0",
        semi_sync_clients="Rpl_semi_sync_master_clients",
    ),
    "MySQL 8.0.22+": dict(
        row=table.MYSQL_8_0_22,
        change_source=(
            "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
            "MASTER_PASSWORD = %s, MASTER_SSL = %s, MASTER_SSL_CA = %s, MASTER_SSL_CERT = %s, "
            "MASTER_SSL_KEY = %s, MASTER_SSL_VERIFY_SERVER_CERT = %s, MASTER_AUTO_POSITION = 1, "
            "GET_MASTER_PUBLIC_KEY = 1"),
        start="START REPLICA", stop="STOP REPLICA", reset="RESET REPLICA ALL",
        show="SHOW REPLICA STATUS", io_column="Replica_IO_Running", host_column="Source_Host",
        lag_column="Seconds_Behind_Source", gtid_column="Auto_Position", gtid_enabled="1",
        primary_gtid="SELECT @@GLOBAL.gtid_executed", replica_gtid="SELECT @@GLOBAL.gtid_executed",
        wait="SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)", set_gtid=None,
        reset_binlog="RESET MASTER", read_only=("read_only", "super_read_only"),
        semi_sync_primary="rpl_semi_sync_master_enabled", semi_sync_plugin="rpl_semi_sync_master",
        semi_sync_replica="rpl_semi_sync_slave_enabled", dump_position="--master-data=2",
        dump_program="mysqldump",
        gtid_format="mysql",
        gtid_origin="SELECT @@GLOBAL.server_uuid",
        adopt_position=None,
        executed_gtid="SELECT @@GLOBAL.gtid_executed", gtid_disabled="0",
        semi_sync_clients="Rpl_semi_sync_master_clients",
    ),
    "MySQL 8.0.23+": dict(
        row=table.MYSQL_8_0_23,
        change_source=(
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST = %s, SOURCE_PORT = %s, SOURCE_USER = %s, "
            "SOURCE_PASSWORD = %s, SOURCE_SSL = %s, SOURCE_SSL_CA = %s, SOURCE_SSL_CERT = %s, "
            "SOURCE_SSL_KEY = %s, SOURCE_SSL_VERIFY_SERVER_CERT = %s, SOURCE_AUTO_POSITION = 1, "
            "GET_SOURCE_PUBLIC_KEY = 1"),
        start="START REPLICA", stop="STOP REPLICA", reset="RESET REPLICA ALL",
        show="SHOW REPLICA STATUS", io_column="Replica_IO_Running", host_column="Source_Host",
        lag_column="Seconds_Behind_Source", gtid_column="Auto_Position", gtid_enabled="1",
        primary_gtid="SELECT @@GLOBAL.gtid_executed", replica_gtid="SELECT @@GLOBAL.gtid_executed",
        wait="SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)", set_gtid=None,
        reset_binlog="RESET MASTER", read_only=("read_only", "super_read_only"),
        semi_sync_primary="rpl_semi_sync_master_enabled", semi_sync_plugin="rpl_semi_sync_master",
        semi_sync_replica="rpl_semi_sync_slave_enabled", dump_position="--master-data=2",
        dump_program="mysqldump",
        gtid_format="mysql",
        gtid_origin="SELECT @@GLOBAL.server_uuid",
        adopt_position=None,
        executed_gtid="SELECT @@GLOBAL.gtid_executed", gtid_disabled="0",
        semi_sync_clients="Rpl_semi_sync_master_clients",
    ),
    "MySQL 8.0.26+": dict(
        row=table.MYSQL_8_0_26,
        change_source=(
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST = %s, SOURCE_PORT = %s, SOURCE_USER = %s, "
            "SOURCE_PASSWORD = %s, SOURCE_SSL = %s, SOURCE_SSL_CA = %s, SOURCE_SSL_CERT = %s, "
            "SOURCE_SSL_KEY = %s, SOURCE_SSL_VERIFY_SERVER_CERT = %s, SOURCE_AUTO_POSITION = 1, "
            "GET_SOURCE_PUBLIC_KEY = 1"),
        start="START REPLICA", stop="STOP REPLICA", reset="RESET REPLICA ALL",
        show="SHOW REPLICA STATUS", io_column="Replica_IO_Running", host_column="Source_Host",
        lag_column="Seconds_Behind_Source", gtid_column="Auto_Position", gtid_enabled="1",
        primary_gtid="SELECT @@GLOBAL.gtid_executed", replica_gtid="SELECT @@GLOBAL.gtid_executed",
        wait="SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)", set_gtid=None,
        reset_binlog="RESET MASTER", read_only=("read_only", "super_read_only"),
        semi_sync_primary="rpl_semi_sync_source_enabled", semi_sync_plugin="rpl_semi_sync_source",
        semi_sync_replica="rpl_semi_sync_replica_enabled", dump_position="--source-data=2",
        dump_program="mysqldump",
        gtid_format="mysql",
        gtid_origin="SELECT @@GLOBAL.server_uuid",
        adopt_position=None,
        executed_gtid="SELECT @@GLOBAL.gtid_executed", gtid_disabled="0",
        semi_sync_clients="Rpl_semi_sync_source_clients",
    ),
    "MySQL 8.4.0+": dict(
        row=table.MYSQL_8_4,
        change_source=(
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST = %s, SOURCE_PORT = %s, SOURCE_USER = %s, "
            "SOURCE_PASSWORD = %s, SOURCE_SSL = %s, SOURCE_SSL_CA = %s, SOURCE_SSL_CERT = %s, "
            "SOURCE_SSL_KEY = %s, SOURCE_SSL_VERIFY_SERVER_CERT = %s, SOURCE_AUTO_POSITION = 1, "
            "GET_SOURCE_PUBLIC_KEY = 1"),
        start="START REPLICA", stop="STOP REPLICA", reset="RESET REPLICA ALL",
        show="SHOW REPLICA STATUS", io_column="Replica_IO_Running", host_column="Source_Host",
        lag_column="Seconds_Behind_Source", gtid_column="Auto_Position", gtid_enabled="1",
        primary_gtid="SELECT @@GLOBAL.gtid_executed", replica_gtid="SELECT @@GLOBAL.gtid_executed",
        wait="SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)", set_gtid=None,
        reset_binlog="RESET BINARY LOGS AND GTIDS", read_only=("read_only", "super_read_only"),
        semi_sync_primary="rpl_semi_sync_source_enabled", semi_sync_plugin="rpl_semi_sync_source",
        semi_sync_replica="rpl_semi_sync_replica_enabled", dump_position="--source-data=2",
        dump_program="mysqldump",
        gtid_format="mysql",
        gtid_origin="SELECT @@GLOBAL.server_uuid",
        adopt_position=None,
        executed_gtid="SELECT @@GLOBAL.gtid_executed", gtid_disabled="0",
        semi_sync_clients="Rpl_semi_sync_source_clients",
    ),
}


def test_every_row_of_the_table_is_checked():
    assert {row.label for row in table.REPLICATION_SQL_TABLE} == set(EXPECTED_ROWS)


@pytest.mark.parametrize("label", sorted(EXPECTED_ROWS))
def test_row_statements(label):
    expected = EXPECTED_ROWS[label]
    row = expected["row"]

    assert row.label == label
    assert row.change_source_sql(include_password=True) == expected["change_source"]
    assert row.start_replica == expected["start"]
    assert row.stop_replica == expected["stop"]
    assert row.reset_replica_all == expected["reset"]
    assert row.show_replica_status == expected["show"]
    assert row.primary_gtid_position == expected["primary_gtid"]
    assert row.replica_gtid_position == expected["replica_gtid"]
    assert row.wait_for_gtid == expected["wait"]
    assert row.set_gtid_position == expected["set_gtid"]
    assert row.reset_binary_logs == expected["reset_binlog"]


@pytest.mark.parametrize("label", sorted(EXPECTED_ROWS))
def test_row_names(label):
    expected = EXPECTED_ROWS[label]
    row = expected["row"]

    assert row.status_columns.io_running == expected["io_column"]
    assert row.status_columns.host == expected["host_column"]
    assert row.status_columns.seconds_behind == expected["lag_column"]
    assert row.status_columns.gtid_mode == expected["gtid_column"]
    assert row.gtid_mode_enabled == expected["gtid_enabled"]
    assert row.read_only_variables == expected["read_only"]
    assert row.semi_sync.primary_enabled == expected["semi_sync_primary"]
    assert row.semi_sync.primary_plugin == expected["semi_sync_plugin"]
    assert row.semi_sync.replica_enabled == expected["semi_sync_replica"]
    assert expected["dump_position"] in row.dump_options
    assert "--single-transaction" in row.dump_options
    assert "--all-databases" in row.dump_options
    assert row.dump_programs[0] == expected["dump_program"]


@pytest.mark.parametrize("label", sorted(EXPECTED_ROWS))
def test_row_gtid_fields(label):
    expected = EXPECTED_ROWS[label]
    row = expected["row"]

    assert row.gtid_format == expected["gtid_format"]
    assert row.executed_gtid_state == expected["executed_gtid"]
    assert row.gtid_mode_disabled == expected["gtid_disabled"]
    assert row.semi_sync.primary_clients == expected["semi_sync_clients"]
    assert row.adopt_binlog_gtid_position == expected["adopt_position"]
    assert row.gtid_origin == expected["gtid_origin"]


@pytest.mark.parametrize("row", table.REPLICATION_SQL_TABLE, ids=lambda row: row.label)
def test_every_row_lists_an_accounts_other_sessions(row):
    assert row.user_sessions_query == (
        "SELECT ID AS id FROM information_schema.PROCESSLIST "
        "WHERE USER = %s AND ID <> CONNECTION_ID() ORDER BY ID")


@pytest.mark.parametrize("row", table.REPLICATION_SQL_TABLE, ids=lambda row: row.label)
def test_a_former_primary_adopts_its_position_only_without_auto_positioning(row):
    # MariaDB replicates from gtid_slave_pos; MySQL's auto-position sends what gtid_executed lacks
    assert (row.adopt_binlog_gtid_position is None) == (row.gtid_format == "mysql")


@pytest.mark.parametrize("row", table.REPLICATION_SQL_TABLE, ids=lambda row: row.label)
def test_change_source_without_password_leaves_it_out(row):
    sql = row.change_source_sql(include_password=False)

    assert row.source_keywords.password not in sql
    assert sql.count("%s") == 8


@pytest.mark.parametrize("row", table.REPLICATION_SQL_TABLE, ids=lambda row: row.label)
def test_seeding_sets_the_gtid_position_exactly_one_way(row):
    # MariaDB: we set gtid_slave_pos from the dump; MySQL: the dump sets GTID_PURGED
    from_dump_text = row.dump_gtid_position_pattern is not None
    assert from_dump_text == (row.set_gtid_position is not None)
    assert from_dump_text != ("--set-gtid-purged=ON" in row.dump_options)


def test_mysql_8_4_uses_no_removed_master_statement():
    row = table.MYSQL_8_4
    statements = [row.change_source_sql(True), row.start_replica, row.stop_replica,
                  row.reset_replica_all, row.show_replica_status, row.reset_binary_logs]

    assert not [sql for sql in statements if "MASTER" in sql or "SLAVE" in sql]
    assert "semisync_source.so" == row.semi_sync.primary_library


@pytest.mark.parametrize("version, label", [
    ("10.3.3-MariaDB", "MariaDB 10.3.3+"),
    ("10.4.34-MariaDB-log", "MariaDB 10.3.3+"),
    ("10.5.0-MariaDB", "MariaDB 10.3.3+"),
    ("10.5.1-MariaDB", "MariaDB 10.5.1+"),
    ("10.11.6-MariaDB-0+deb12u1-log", "MariaDB 10.5.1+"),
    ("11.4.2-MariaDB-ubu2404", "MariaDB 10.5.1+"),
    ("5.5.5-10.11.6-MariaDB", "MariaDB 10.5.1+"),
    ("8.0.21", "MySQL 8.0.0+"),
    ("8.0.22-log", "MySQL 8.0.22+"),
    ("8.0.23", "MySQL 8.0.23+"),
    ("8.0.25-15", "MySQL 8.0.23+"),
    ("8.0.26", "MySQL 8.0.26+"),
    ("8.0.36-0ubuntu0.22.04.1", "MySQL 8.0.26+"),
    ("8.3.0", "MySQL 8.0.26+"),
    ("8.4.0", "MySQL 8.4.0+"),
    ("8.4.3-commercial", "MySQL 8.4.0+"),
    ("9.1.0", "MySQL 8.4.0+"),
])
def test_resolver_picks_the_newest_row_not_newer_than_the_server(version, label):
    assert resolve_replication_sql(version).label == label


@pytest.mark.parametrize("version, oldest", [
    ("5.7.44-log", "MySQL 8.0.0+"),
    ("10.2.44-MariaDB", "MariaDB 10.3.3+"),
    ("10.3.2-MariaDB", "MariaDB 10.3.3+"),
])
def test_resolver_rejects_old_servers_naming_the_oldest_supported(version, oldest):
    with pytest.raises(UnsupportedServerError, match=oldest.replace("+", r"\+")):
        resolve_replication_sql(version)


def test_resolver_rejects_a_string_without_a_version():
    with pytest.raises(UnsupportedServerError, match="Cannot read a server version"):
        resolve_replication_sql("MariaDB")


def test_parse_server_version():
    assert parse_server_version("10.11.6-MariaDB-log") == ("mariadb", (10, 11, 6))
    assert parse_server_version(" 8.0.36 ") == ("mysql", (8, 0, 36))


def test_statement_display_quotes_values_and_masks_secrets():
    statement = Statement("CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, "
                          "MASTER_PASSWORD = %s, MASTER_SSL = %s",
                          ("db'1", 3306, "s3cret", True), frozenset({2}))

    shown = statement.display()

    assert shown == ("CHANGE MASTER TO MASTER_HOST = 'db\\'1', MASTER_PORT = 3306, "
                     "MASTER_PASSWORD = '********', MASTER_SSL = 1")
    assert Statement("START REPLICA").display() == "START REPLICA"
