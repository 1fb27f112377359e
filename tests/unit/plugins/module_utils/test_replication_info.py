"""Replication facts of one server, read through a stand-in server for both flavours."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from ansible_collections.nospof.webstack.plugins.module_utils import replication_sql as table
from ansible_collections.nospof.webstack.plugins.module_utils.mysql_connection import (
    MysqlConnectionSettings,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replica import ReplicaError
from ansible_collections.nospof.webstack.plugins.module_utils.replication_info import (
    INFO_KEYS,
    ReplicationInfoReader,
    read_replication_info,
    unreachable_info,
)

UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
MARIADB_REPLICA_ROW = {
    "Slave_IO_Running": "Connecting", "Slave_SQL_Running": "Yes", "Master_Host": "10.0.0.1",
    "Master_Port": 3306, "Master_User": "repl", "Seconds_Behind_Master": None,
    "Last_IO_Errno": 2003, "Last_IO_Error": "Can't connect", "Last_SQL_Errno": 0,
    "Last_SQL_Error": "", "Master_SSL_Allowed": "No", "Master_SSL_CA_File": "",
    "Master_SSL_Cert": "", "Master_SSL_Key": "", "Master_SSL_Verify_Server_Cert": "No",
    "Using_Gtid": "Current_Pos", "Gtid_IO_Pos": "0-1-42",
}


class FakeServer:
    """A ReplicaServer stand-in answering from dictionaries."""

    def __init__(self, sql: table.ReplicationSql, variables: dict[str, str],
                 status: dict[str, str], row: dict[str, Any] | None = None,
                 gtids: tuple[str, str, str] = ("", "", "")) -> None:
        self.sql = sql
        self.version = "10.11.6-MariaDB" if sql.flavour == table.MARIADB else "8.4.3"
        self.variables = variables
        self.status = status
        self.row = row
        self.gtids = gtids

    def global_variables(self, names: tuple[str, ...]) -> dict[str, str]:
        return {name: self.variables[name] for name in names if name in self.variables}

    def global_status(self, names: tuple[str, ...]) -> dict[str, str]:
        return {name: self.status[name] for name in names if name in self.status}

    def status_row(self) -> dict[str, Any] | None:
        return self.row

    def query_value(self, query: str) -> Any:
        assert query == "SELECT @@GLOBAL.server_id"
        return 7

    def executed_gtid_state(self) -> str:
        return self.gtids[0]

    def binlog_gtid_position(self) -> str:
        return self.gtids[1]

    def applied_gtid_position(self) -> str:
        return self.gtids[2]

    def has_user_schemas(self) -> bool:
        return True


def test_mariadb_replica_with_semi_sync():
    server = FakeServer(
        table.MARIADB_10_5,
        variables={"read_only": "ON", "rpl_semi_sync_master_enabled": "OFF",
                   "rpl_semi_sync_slave_enabled": "ON"},
        status={"Rpl_semi_sync_master_status": "OFF", "Rpl_semi_sync_master_clients": "0",
                "Rpl_semi_sync_slave_status": "ON"},
        row=MARIADB_REPLICA_ROW, gtids=("0-1-42,0-2-3", "0-2-3", "0-1-42"))

    info = ReplicationInfoReader(server).read()

    assert tuple(info) == INFO_KEYS
    assert info["reachable"] is True and info["error"] is None
    assert (info["flavour"], info["gtid_format"], info["server_id"]) == ("mariadb", "mariadb", 7)
    assert info["read_only"] is True and info["read_only_variables"] == {"read_only": "ON"}
    assert (info["gtid_executed"], info["gtid_binlog_position"], info["gtid_applied"]) == (
        "0-1-42,0-2-3", "0-2-3", "0-1-42")
    assert info["replica"] == {
        "source_host": "10.0.0.1", "source_port": 3306, "io_running": "Connecting",
        "sql_running": "Yes", "seconds_behind": None, "last_io_errno": 2003,
        "last_io_error": "Can't connect", "last_sql_errno": 0, "last_sql_error": "",
        "using_gtid": True, "gtid_received": "0-1-42"}
    assert info["semi_sync"] == {"primary_enabled": False, "primary_active": False,
                                 "primary_clients": 0, "replica_enabled": True,
                                 "replica_active": True}
    assert info["has_user_schemas"] is True


def test_mysql_primary_without_semi_sync_plugins():
    server = FakeServer(
        table.MYSQL_8_4, variables={"read_only": "OFF", "super_read_only": "OFF"}, status={},
        gtids=("%s:1-10" % UUID, "%s:1-10" % UUID, "%s:1-5,\n%s:6-10" % (UUID, UUID)))

    info = ReplicationInfoReader(server).read()

    assert info["read_only"] is False
    assert info["read_only_variables"] == {"read_only": "OFF", "super_read_only": "OFF"}
    assert info["replica"] is None
    assert info["semi_sync"] == dict.fromkeys(
        ("primary_enabled", "primary_active", "primary_clients", "replica_enabled",
         "replica_active"))
    assert info["gtid_applied"] == "%s:1-10" % UUID
    assert info["gtid_format"] == "mysql"


def test_mysql_replica_not_positioning_by_gtid():
    row = {"Replica_IO_Running": "Yes", "Replica_SQL_Running": "Yes", "Source_Host": "db1",
           "Source_Port": 3306, "Source_User": "repl", "Seconds_Behind_Source": 3,
           "Auto_Position": 0, "Retrieved_Gtid_Set": ""}
    server = FakeServer(table.MYSQL_8_4, variables={}, status={}, row=row)

    replica = ReplicationInfoReader(server).read()["replica"]

    assert replica["using_gtid"] is False and replica["seconds_behind"] == 3


def test_a_configured_source_with_an_empty_host_counts_as_none():
    server = FakeServer(table.MARIADB_10_5, variables={}, status={},
                        row=dict(MARIADB_REPLICA_ROW, Master_Host=""))

    assert ReplicationInfoReader(server).read()["replica"] is None


def test_unreadable_gtid_text_fails_clearly():
    server = FakeServer(table.MARIADB_10_5, variables={}, status={}, gtids=("", "0-1", ""))

    with pytest.raises(ReplicaError, match="Cannot read a GTID position"):
        ReplicationInfoReader(server).read()


def test_unreachable_info_has_every_key_null_but_two():
    info = unreachable_info("Cannot connect")

    assert set(info) == set(INFO_KEYS)
    assert info["reachable"] is False and info["error"] == "Cannot connect"
    assert [key for key, value in info.items() if value is not None] == ["reachable", "error"]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_server_fails_or_is_reported(closed_port: int):
    login = MysqlConnectionSettings(host="127.0.0.1", port=closed_port, connect_timeout=2)

    with pytest.raises(ReplicaError, match="Cannot connect to MySQL/MariaDB as root@127.0.0.1"):
        read_replication_info(login, allow_unreachable=False)
    info = read_replication_info(login, allow_unreachable=True)
    assert info["reachable"] is False and "Cannot connect" in info["error"]
