# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read one MySQL/MariaDB server's replication role and GTID positions; change nothing.

Every key of INFO_KEYS is always in the result, None where it does not apply, so
a topology decision over many servers never has to test for a missing key.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ansible_collections.nospof.webstack.plugins.module_utils.gtid import GtidError, parse_gtid
from ansible_collections.nospof.webstack.plugins.module_utils.mysql_connection import (
    MysqlConnectionError,
    MysqlConnectionSettings,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replica import (
    ReplicaError,
    ReplicaServer,
    ReplicaStatus,
    open_server,
)

INFO_KEYS = ("reachable", "error", "version", "flavour", "server_id", "read_only",
             "read_only_variables", "gtid_format", "gtid_executed", "gtid_binlog_position",
             "gtid_applied", "replica", "semi_sync", "has_user_schemas")


def switch_value(value: Optional[str]) -> Optional[bool]:
    """ON/OFF (or 1/0) as a bool; None when the variable does not exist."""
    if value is None:
        return None
    return value.upper() in ("ON", "1", "YES")


def _number(value: Optional[str]) -> Optional[int]:
    """A numeric variable as int; None when it does not exist."""
    return None if value is None else int(value)


def unreachable_info(error: str) -> Dict[str, Any]:
    """The result for a server that could not be connected to."""
    info: Dict[str, Any] = dict.fromkeys(INFO_KEYS)
    info.update(reachable=False, error=error)
    return info


class ReplicationInfoReader:
    """Reads the replication facts of one connected server."""

    def __init__(self, server: ReplicaServer) -> None:
        self.server = server

    def normal(self, position: str) -> str:
        """A GTID position as gtid.py prints it (MySQL's newlines dropped, entries sorted)."""
        try:
            return str(parse_gtid(position, self.server.sql.gtid_format))
        except GtidError as error:
            raise ReplicaError("Cannot read a GTID position of the server: %s" % error)

    def read_only_variables(self) -> Dict[str, str]:
        """The row's read-only variables that exist, as ON/OFF."""
        values = self.server.global_variables(self.server.sql.read_only_variables)
        return {name: "ON" if switch_value(values[name]) else "OFF"
                for name in self.server.sql.read_only_variables if name in values}

    def replica(self) -> Optional[Dict[str, Any]]:
        """The replica side, None when no replication source is configured."""
        row = self.server.status_row()
        status = ReplicaStatus.from_row(row, self.server.sql)
        if row is None or status.source is None:
            return None
        gtid_mode = str(row.get(self.server.sql.status_columns.gtid_mode) or "")
        return {
            "source_host": status.source.host,
            "source_port": status.source.port,
            "io_running": status.io_running,
            "sql_running": status.sql_running,
            "seconds_behind": status.seconds_behind,
            "last_io_errno": status.last_io_errno,
            "last_io_error": status.last_io_error,
            "last_sql_errno": status.last_sql_errno,
            "last_sql_error": status.last_sql_error,
            "using_gtid": gtid_mode not in ("", self.server.sql.gtid_mode_disabled),
            "gtid_received": self.normal(status.gtid_received),
        }

    def semi_sync(self) -> Dict[str, Any]:
        """Semi-sync switches and state; None for variables the server does not have."""
        names = self.server.sql.semi_sync
        variables = self.server.global_variables((names.primary_enabled, names.replica_enabled))
        status = self.server.global_status(
            (names.primary_status, names.primary_clients, names.replica_status))
        return {
            "primary_enabled": switch_value(variables.get(names.primary_enabled)),
            "primary_active": switch_value(status.get(names.primary_status)),
            "primary_clients": _number(status.get(names.primary_clients)),
            "replica_enabled": switch_value(variables.get(names.replica_enabled)),
            "replica_active": switch_value(status.get(names.replica_status)),
        }

    def read(self) -> Dict[str, Any]:
        """Every key of INFO_KEYS for this server."""
        sql = self.server.sql
        read_only_variables = self.read_only_variables()
        return {
            "reachable": True,
            "error": None,
            "version": self.server.version,
            "flavour": sql.flavour,
            "server_id": int(self.server.query_value("SELECT @@GLOBAL.server_id")),
            "read_only": "ON" in read_only_variables.values(),
            "read_only_variables": read_only_variables,
            "gtid_format": sql.gtid_format,
            "gtid_executed": self.server.executed_gtid_state(),
            "gtid_binlog_position": self.normal(self.server.binlog_gtid_position()),
            "gtid_applied": self.normal(self.server.applied_gtid_position()),
            "replica": self.replica(),
            "semi_sync": self.semi_sync(),
            "has_user_schemas": self.server.has_user_schemas(),
        }


def read_replication_info(login: MysqlConnectionSettings, allow_unreachable: bool) -> Dict[str, Any]:
    """Connect and read; an unreachable server raises ReplicaError unless allow_unreachable."""
    try:
        server = open_server(login, subject="the server")
    except MysqlConnectionError as error:
        if not allow_unreachable:
            raise ReplicaError("%s (allow_unreachable=true reports this as reachable=false)"
                               % error)
        return unreachable_info(str(error))
    try:
        return ReplicationInfoReader(server).read()
    finally:
        server.connection.close()
