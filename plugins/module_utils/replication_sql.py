# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one table of replication SQL per server flavour and version, and its resolver.

Every MySQL/MariaDB difference the replica code needs lives here; callers ask
``resolve_replication_sql(version_string)`` for a row and never test the flavour.
Each row below is written as the row it supersedes plus what changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, FrozenSet, Optional, Tuple

from ansible_collections.nospof.webstack.plugins.module_utils.gtid import (
    GTID_FORMAT_MARIADB,
    GTID_FORMAT_MYSQL,
)

MARIADB = "mariadb"
MYSQL = "mysql"

Version = Tuple[int, int, int]


PASSWORD_MASK = "********"


class UnsupportedServerError(ValueError):
    """The server's version() string matches no row of the table."""


@dataclass(frozen=True)
class Statement:
    """SQL with %s placeholders, its arguments, and which arguments to mask when shown."""

    sql: str
    args: Tuple[Any, ...] = ()
    secret_args: FrozenSet[int] = frozenset()

    def display(self) -> str:
        """The statement with arguments quoted and secrets masked, for reports."""
        if not self.args:
            return self.sql
        shown = tuple(PASSWORD_MASK if index in self.secret_args else value
                      for index, value in enumerate(self.args))
        return self.sql % tuple(_quote(value) for value in shown)


def _quote(value: Any) -> str:
    """SQL literal of a value, for display only (execution uses driver escaping)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return str(value)
    return "'%s'" % str(value).replace("\\", "\\\\").replace("'", "\\'")


@dataclass(frozen=True)
class SourceKeywords:
    """Option keywords of the change-source statement."""

    host: str
    port: str
    user: str
    password: str
    ssl: str
    ssl_ca: str
    ssl_cert: str
    ssl_key: str
    ssl_verify_server_cert: str


@dataclass(frozen=True)
class StatusColumns:
    """Column names of the replica status statement."""

    io_running: str
    sql_running: str
    host: str
    port: str
    user: str
    seconds_behind: str
    last_io_errno: str
    last_io_error: str
    last_sql_errno: str
    last_sql_error: str
    ssl_allowed: str
    ssl_ca: str
    ssl_cert: str
    ssl_key: str
    ssl_verify_server_cert: str
    gtid_mode: str
    gtid_received: str


@dataclass(frozen=True)
class SemiSyncNames:
    """Semi-synchronous replication plugins and variables ("" plugin: built into the server)."""

    primary_plugin: str
    primary_library: str
    replica_plugin: str
    replica_library: str
    primary_enabled: str
    primary_timeout: str
    primary_wait_point: str
    primary_status: str
    # status variable: replicas connected semi-synchronously
    primary_clients: str
    replica_enabled: str
    replica_status: str


@dataclass(frozen=True)
class ReplicationSql:
    """One row of the table: the SQL and names for servers from min_version on."""

    flavour: str
    min_version: Version
    # CHANGE ... TO <keyword>=<value>, ..., <gtid_option>, <extra_source_options>
    change_source: str
    source_keywords: SourceKeywords
    gtid_option: str
    extra_source_options: Tuple[str, ...]
    start_replica: str
    stop_replica: str
    reset_replica_all: str
    show_replica_status: str
    status_columns: StatusColumns
    # value of status_columns.gtid_mode when the replica uses GTID positioning, and when not
    gtid_mode_enabled: str
    gtid_mode_disabled: str
    # how GTID positions are written, for gtid.py (domain-server-seq lists or uuid sets)
    gtid_format: str
    primary_gtid_position: str
    replica_gtid_position: str
    # every GTID the server applied or wrote (one text gtid.py parses)
    executed_gtid_state: str
    # how the server's own transactions are marked in its GTIDs (gtid.py gtid_originated_by)
    gtid_origin: str
    # returns 0 once reached, non-zero on timeout; args: (gtid position, timeout seconds)
    wait_for_gtid: str
    # None: the dump sets GTID_PURGED itself, so seeding needs no extra statement
    set_gtid_position: Optional[str]
    # a former primary starts replicating after its own binlog position (None: GTID
    # auto-positioning already sends the primary everything this server executed)
    adopt_binlog_gtid_position: Optional[str]
    reset_binary_logs: str
    # where the stored replication password can be read back (query, or file in the datadir)
    stored_password_query: Optional[str]
    master_info_file: Optional[str]
    # switched on in this order when fencing, off in reverse order when promoting
    read_only_variables: Tuple[str, ...]
    # read-only variables that block even administrators; switched off while seeding
    admin_blocking_read_only_variables: Tuple[str, ...]
    semi_sync: SemiSyncNames
    # ids of one account's connections other than ours; arg: the user name
    user_sessions_query: str
    dump_programs: Tuple[str, ...]
    client_programs: Tuple[str, ...]
    dump_options: Tuple[str, ...]
    # regex over the dump text; group 1 is the GTID position (None: no statement needed)
    dump_gtid_position_pattern: Optional[str]
    client_ssl_option: str
    client_ssl_verify_option: str
    client_no_ssl_option: str

    @property
    def label(self) -> str:
        """Human name of the row, e.g. 'MySQL 8.0.23+'."""
        name = "MariaDB" if self.flavour == MARIADB else "MySQL"
        return "%s %s+" % (name, ".".join(str(part) for part in self.min_version))

    def change_source_sql(self, include_password: bool) -> str:
        """Change-source statement with %s placeholders, in SourceSettings.sql_values order."""
        keywords = self.source_keywords
        names = [keywords.host, keywords.port, keywords.user]
        if include_password:
            names.append(keywords.password)
        names += [keywords.ssl, keywords.ssl_ca, keywords.ssl_cert, keywords.ssl_key,
                  keywords.ssl_verify_server_cert]
        options = ["%s = %%s" % name for name in names]
        options.append(self.gtid_option)
        options.extend(self.extra_source_options)
        return "%s %s" % (self.change_source, ", ".join(options))


MASTER_KEYWORDS = SourceKeywords(
    host="MASTER_HOST", port="MASTER_PORT", user="MASTER_USER", password="MASTER_PASSWORD",
    ssl="MASTER_SSL", ssl_ca="MASTER_SSL_CA", ssl_cert="MASTER_SSL_CERT",
    ssl_key="MASTER_SSL_KEY", ssl_verify_server_cert="MASTER_SSL_VERIFY_SERVER_CERT",
)
SOURCE_KEYWORDS = SourceKeywords(
    host="SOURCE_HOST", port="SOURCE_PORT", user="SOURCE_USER", password="SOURCE_PASSWORD",
    ssl="SOURCE_SSL", ssl_ca="SOURCE_SSL_CA", ssl_cert="SOURCE_SSL_CERT",
    ssl_key="SOURCE_SSL_KEY", ssl_verify_server_cert="SOURCE_SSL_VERIFY_SERVER_CERT",
)

# MariaDB keeps the Slave_/Master_ column names even for SHOW REPLICA STATUS.
MARIADB_STATUS_COLUMNS = StatusColumns(
    io_running="Slave_IO_Running", sql_running="Slave_SQL_Running",
    host="Master_Host", port="Master_Port", user="Master_User",
    seconds_behind="Seconds_Behind_Master",
    last_io_errno="Last_IO_Errno", last_io_error="Last_IO_Error",
    last_sql_errno="Last_SQL_Errno", last_sql_error="Last_SQL_Error",
    ssl_allowed="Master_SSL_Allowed", ssl_ca="Master_SSL_CA_File", ssl_cert="Master_SSL_Cert",
    ssl_key="Master_SSL_Key", ssl_verify_server_cert="Master_SSL_Verify_Server_Cert",
    gtid_mode="Using_Gtid", gtid_received="Gtid_IO_Pos",
)
MYSQL_SLAVE_STATUS_COLUMNS = replace(
    MARIADB_STATUS_COLUMNS, gtid_mode="Auto_Position", gtid_received="Retrieved_Gtid_Set",
)
MYSQL_REPLICA_STATUS_COLUMNS = StatusColumns(
    io_running="Replica_IO_Running", sql_running="Replica_SQL_Running",
    host="Source_Host", port="Source_Port", user="Source_User",
    seconds_behind="Seconds_Behind_Source",
    last_io_errno="Last_IO_Errno", last_io_error="Last_IO_Error",
    last_sql_errno="Last_SQL_Errno", last_sql_error="Last_SQL_Error",
    ssl_allowed="Source_SSL_Allowed", ssl_ca="Source_SSL_CA_File", ssl_cert="Source_SSL_Cert",
    ssl_key="Source_SSL_Key", ssl_verify_server_cert="Source_SSL_Verify_Server_Cert",
    gtid_mode="Auto_Position", gtid_received="Retrieved_Gtid_Set",
)

MASTER_SEMI_SYNC = SemiSyncNames(
    primary_plugin="rpl_semi_sync_master", primary_library="semisync_master.so",
    replica_plugin="rpl_semi_sync_slave", replica_library="semisync_slave.so",
    primary_enabled="rpl_semi_sync_master_enabled",
    primary_timeout="rpl_semi_sync_master_timeout",
    primary_wait_point="rpl_semi_sync_master_wait_point",
    primary_status="Rpl_semi_sync_master_status",
    primary_clients="Rpl_semi_sync_master_clients",
    replica_enabled="rpl_semi_sync_slave_enabled",
    replica_status="Rpl_semi_sync_slave_status",
)
SOURCE_SEMI_SYNC = SemiSyncNames(
    primary_plugin="rpl_semi_sync_source", primary_library="semisync_source.so",
    replica_plugin="rpl_semi_sync_replica", replica_library="semisync_replica.so",
    primary_enabled="rpl_semi_sync_source_enabled",
    primary_timeout="rpl_semi_sync_source_timeout",
    primary_wait_point="rpl_semi_sync_source_wait_point",
    primary_status="Rpl_semi_sync_source_status",
    primary_clients="Rpl_semi_sync_source_clients",
    replica_enabled="rpl_semi_sync_replica_enabled",
    replica_status="Rpl_semi_sync_replica_status",
)

PROCESSLIST_SESSIONS_OF_USER = ("SELECT ID AS id FROM information_schema.PROCESSLIST "
                                "WHERE USER = %s AND ID <> CONNECTION_ID() ORDER BY ID")

COMMON_DUMP_OPTIONS = ("--single-transaction", "--all-databases", "--routines", "--events",
                       "--triggers", "--flush-privileges", "--no-tablespaces")

# MariaDB 10.3.3: semi-sync built in; GTID replication with MASTER_USE_GTID.
MARIADB_10_3 = ReplicationSql(
    flavour=MARIADB,
    min_version=(10, 3, 3),
    change_source="CHANGE MASTER TO",
    source_keywords=MASTER_KEYWORDS,
    gtid_option="MASTER_USE_GTID = slave_pos",
    extra_source_options=(),
    start_replica="START SLAVE",
    stop_replica="STOP SLAVE",
    reset_replica_all="RESET SLAVE ALL",
    show_replica_status="SHOW SLAVE STATUS",
    status_columns=MARIADB_STATUS_COLUMNS,
    gtid_mode_enabled="Slave_Pos",
    gtid_mode_disabled="No",
    gtid_format=GTID_FORMAT_MARIADB,
    primary_gtid_position="SELECT @@GLOBAL.gtid_binlog_pos",
    replica_gtid_position="SELECT @@GLOBAL.gtid_slave_pos",
    # the binlog state (last seq per domain and server_id), plus gtid_slave_pos: a replica
    # seeded from a dump, or logging without log_slave_updates, applied more than it logged
    executed_gtid_state="SELECT CONCAT_WS(',', NULLIF(@@GLOBAL.gtid_binlog_state, ''), "
                        "NULLIF(@@GLOBAL.gtid_slave_pos, ''))",
    gtid_origin="SELECT @@GLOBAL.server_id",
    wait_for_gtid="SELECT MASTER_GTID_WAIT(%s, %s)",
    set_gtid_position="SET GLOBAL gtid_slave_pos = %s",
    adopt_binlog_gtid_position="SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos",
    reset_binary_logs="RESET MASTER",
    stored_password_query=None,
    master_info_file="master.info",
    read_only_variables=("read_only",),
    admin_blocking_read_only_variables=(),
    semi_sync=replace(MASTER_SEMI_SYNC, primary_plugin="", primary_library="",
                      replica_plugin="", replica_library=""),
    user_sessions_query=PROCESSLIST_SESSIONS_OF_USER,
    dump_programs=("mariadb-dump", "mysqldump"),
    client_programs=("mariadb", "mysql"),
    # --master-data=2 only comments the position; we set it after the load
    dump_options=COMMON_DUMP_OPTIONS + ("--gtid", "--master-data=2"),
    dump_gtid_position_pattern=r"^-- SET GLOBAL gtid_slave_pos\s*=\s*'([^']*)';",
    client_ssl_option="--ssl",
    client_ssl_verify_option="--ssl-verify-server-cert",
    client_no_ssl_option="--skip-ssl",
)

# MariaDB 10.5.1 added the REPLICA synonyms; column names stay Slave_/Master_.
MARIADB_10_5 = replace(
    MARIADB_10_3,
    min_version=(10, 5, 1),
    start_replica="START REPLICA",
    stop_replica="STOP REPLICA",
    reset_replica_all="RESET REPLICA ALL",
    show_replica_status="SHOW REPLICA STATUS",
)

# MySQL 8.0 before 8.0.22: SLAVE/MASTER statements; caching_sha2 needs the public key.
MYSQL_8_0 = ReplicationSql(
    flavour=MYSQL,
    min_version=(8, 0, 0),
    change_source="CHANGE MASTER TO",
    source_keywords=MASTER_KEYWORDS,
    gtid_option="MASTER_AUTO_POSITION = 1",
    extra_source_options=("GET_MASTER_PUBLIC_KEY = 1",),
    start_replica="START SLAVE",
    stop_replica="STOP SLAVE",
    reset_replica_all="RESET SLAVE ALL",
    show_replica_status="SHOW SLAVE STATUS",
    status_columns=MYSQL_SLAVE_STATUS_COLUMNS,
    gtid_mode_enabled="1",
    gtid_mode_disabled="0",
    gtid_format=GTID_FORMAT_MYSQL,
    primary_gtid_position="SELECT @@GLOBAL.gtid_executed",
    replica_gtid_position="SELECT @@GLOBAL.gtid_executed",
    executed_gtid_state="SELECT @@GLOBAL.gtid_executed",
    gtid_origin="SELECT @@GLOBAL.server_uuid",
    wait_for_gtid="SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)",
    set_gtid_position=None,
    adopt_binlog_gtid_position=None,
    reset_binary_logs="RESET MASTER",
    stored_password_query="SELECT User_password FROM mysql.slave_master_info WHERE Channel_name = ''",
    master_info_file=None,
    read_only_variables=("read_only", "super_read_only"),
    admin_blocking_read_only_variables=("super_read_only",),
    semi_sync=MASTER_SEMI_SYNC,
    user_sessions_query=PROCESSLIST_SESSIONS_OF_USER,
    dump_programs=("mysqldump",),
    client_programs=("mysql",),
    # the dump carries SET @@GLOBAL.GTID_PURGED and turns sql_log_bin off itself
    dump_options=COMMON_DUMP_OPTIONS + ("--set-gtid-purged=ON", "--master-data=2"),
    dump_gtid_position_pattern=None,
    client_ssl_option="--ssl-mode=REQUIRED",
    client_ssl_verify_option="--ssl-mode=VERIFY_IDENTITY",
    client_no_ssl_option="--ssl-mode=DISABLED",
)

# MySQL 8.0.22: START/STOP/RESET/SHOW REPLICA, and Replica_/Source_ status columns.
MYSQL_8_0_22 = replace(
    MYSQL_8_0,
    min_version=(8, 0, 22),
    start_replica="START REPLICA",
    stop_replica="STOP REPLICA",
    reset_replica_all="RESET REPLICA ALL",
    show_replica_status="SHOW REPLICA STATUS",
    status_columns=MYSQL_REPLICA_STATUS_COLUMNS,
)

# MySQL 8.0.23: CHANGE REPLICATION SOURCE TO with SOURCE_* options.
MYSQL_8_0_23 = replace(
    MYSQL_8_0_22,
    min_version=(8, 0, 23),
    change_source="CHANGE REPLICATION SOURCE TO",
    source_keywords=SOURCE_KEYWORDS,
    gtid_option="SOURCE_AUTO_POSITION = 1",
    extra_source_options=("GET_SOURCE_PUBLIC_KEY = 1",),
)

# MySQL 8.0.26: semi-sync source/replica plugins; mysqldump --source-data.
MYSQL_8_0_26 = replace(
    MYSQL_8_0_23,
    min_version=(8, 0, 26),
    semi_sync=SOURCE_SEMI_SYNC,
    dump_options=COMMON_DUMP_OPTIONS + ("--set-gtid-purged=ON", "--source-data=2"),
)

# MySQL 8.4: MASTER statements removed; RESET MASTER became RESET BINARY LOGS AND GTIDS.
MYSQL_8_4 = replace(
    MYSQL_8_0_26,
    min_version=(8, 4, 0),
    reset_binary_logs="RESET BINARY LOGS AND GTIDS",
)

REPLICATION_SQL_TABLE: Tuple[ReplicationSql, ...] = (
    MARIADB_10_3,
    MARIADB_10_5,
    MYSQL_8_0,
    MYSQL_8_0_22,
    MYSQL_8_0_23,
    MYSQL_8_0_26,
    MYSQL_8_4,
)

_VERSION_NUMBERS = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def parse_server_version(version_string: str) -> Tuple[str, Version]:
    """Flavour and (major, minor, patch) of a SELECT VERSION() string."""
    text = version_string.strip()
    flavour = MARIADB if "mariadb" in text.lower() else MYSQL
    # MariaDB's protocol handshake prefixes a fake "5.5.5-"
    if flavour == MARIADB and text.startswith("5.5.5-"):
        text = text[len("5.5.5-"):]
    match = _VERSION_NUMBERS.match(text)
    if not match:
        raise UnsupportedServerError("Cannot read a server version from %r" % version_string)
    major, minor, patch = (int(part) for part in match.groups())
    return flavour, (major, minor, patch)


def resolve_replication_sql(version_string: str) -> ReplicationSql:
    """The table row for a server, from its SELECT VERSION() string."""
    flavour, version = parse_server_version(version_string)
    rows = [row for row in REPLICATION_SQL_TABLE
            if row.flavour == flavour and row.min_version <= version]
    if not rows:
        oldest = min((row for row in REPLICATION_SQL_TABLE if row.flavour == flavour),
                     key=lambda row: row.min_version)
        raise UnsupportedServerError(
            "Server version %s is not supported; the oldest supported is %s"
            % (version_string, oldest.label))
    return max(rows, key=lambda row: row.min_version)
