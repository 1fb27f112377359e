# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bring a MySQL/MariaDB replica to the desired source settings and state, and report.

Read the replica status, compare it with the request, plan only the statements
that are needed, apply them (unless in check mode), then wait, with a timeout,
for the replica threads and optionally for the primary's GTID position.
A server that holds data and a GTID history (a former primary) joins only when
the primary has every transaction it executed.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.nospof.webstack.plugins.module_utils.gtid import (
    GtidError,
    gtid_ahead,
    gtid_missing,
    gtid_originated_by,
    parse_gtid,
)
from ansible_collections.nospof.webstack.plugins.module_utils.mysql_connection import (
    MysqlConnectionError,
    MysqlConnectionSettings,
    connect_mysql,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replica_seed import (
    INCOMPLETE_SEED_MARKER,
    ReplicaSeeder,
    SeedError,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replication_sql import (
    PASSWORD_MASK,
    ReplicationSql,
    Statement,
    UnsupportedServerError,
    resolve_replication_sql,
)

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
ACCESS_DENIED_ERRNO = 1045
# an IO error already present before START is trusted only after this long
STALE_IO_ERROR_GRACE_SECONDS = 3.0
POLL_SECONDS = 0.25


class ReplicaError(Exception):
    """A failure with a message for the user and the result gathered so far."""

    def __init__(self, message: str, result: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.result: Dict[str, Any] = result or {}


@dataclass(frozen=True)
class SourceSettings:
    """The replication source settings that are compared; the password is handled apart."""

    host: str
    port: int = 3306
    user: str = ""
    ssl: bool = False
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    ssl_verify_server_cert: bool = False
    gtid: bool = True

    def as_dict(self) -> Dict[str, Any]:
        """Settings under the module's option names."""
        return {
            "primary_host": self.host,
            "primary_port": self.port,
            "primary_user": self.user,
            "primary_ssl": self.ssl,
            "primary_ssl_ca": self.ssl_ca,
            "primary_ssl_cert": self.ssl_cert,
            "primary_ssl_key": self.ssl_key,
            "primary_ssl_verify_server_cert": self.ssl_verify_server_cert,
            "gtid_auto_position": self.gtid,
        }


def change_source_statement(sql: ReplicationSql, source: SourceSettings,
                            password: Optional[str]) -> Statement:
    """The change-source statement; the password only when it is to be (re)sent."""
    args: List[Any] = [source.host, source.port, source.user]
    secret: Tuple[int, ...] = ()
    if password is not None:
        secret = (len(args),)
        args.append(password)
    args += [int(source.ssl), source.ssl_ca, source.ssl_cert, source.ssl_key,
             int(source.ssl_verify_server_cert)]
    return Statement(sql.change_source_sql(include_password=password is not None),
                     tuple(args), frozenset(secret))


@dataclass(frozen=True)
class ReplicaStatus:
    """What the replica status statement says; source is None when nothing is configured."""

    source: Optional[SourceSettings] = None
    io_running: str = "No"
    sql_running: str = "No"
    seconds_behind: Optional[int] = None
    last_io_errno: int = 0
    last_io_error: str = ""
    last_sql_errno: int = 0
    last_sql_error: str = ""
    gtid_received: str = ""

    @classmethod
    def from_row(cls, row: Optional[Dict[str, Any]], sql: ReplicationSql) -> "ReplicaStatus":
        """Parse one row of the status statement (None or empty host: not configured)."""
        columns = sql.status_columns
        if not row or not row.get(columns.host):
            return cls()

        def text(column: str) -> str:
            value = row.get(column)
            return "" if value is None else str(value)

        seconds = row.get(columns.seconds_behind)
        source = SourceSettings(
            host=text(columns.host),
            port=int(row[columns.port]),
            user=text(columns.user),
            # "Ignored": TLS is configured but this server cannot do it
            ssl=text(columns.ssl_allowed) in ("Yes", "Ignored"),
            ssl_ca=text(columns.ssl_ca),
            ssl_cert=text(columns.ssl_cert),
            ssl_key=text(columns.ssl_key),
            ssl_verify_server_cert=text(columns.ssl_verify_server_cert) == "Yes",
            gtid=text(columns.gtid_mode) == sql.gtid_mode_enabled,
        )
        return cls(
            source=source,
            io_running=text(columns.io_running) or "No",
            sql_running=text(columns.sql_running) or "No",
            seconds_behind=None if seconds is None else int(seconds),
            last_io_errno=int(row.get(columns.last_io_errno) or 0),
            last_io_error=text(columns.last_io_error),
            last_sql_errno=int(row.get(columns.last_sql_errno) or 0),
            last_sql_error=text(columns.last_sql_error),
            gtid_received=text(columns.gtid_received),
        )

    @property
    def configured(self) -> bool:
        """Whether a replication source is set."""
        return self.source is not None

    @property
    def threads_running(self) -> bool:
        """Both threads run and the IO thread is connected."""
        return self.io_running == "Yes" and self.sql_running == "Yes"

    @property
    def any_thread_running(self) -> bool:
        """At least one thread runs (an IO thread still connecting counts)."""
        return self.io_running != "No" or self.sql_running != "No"

    @property
    def state(self) -> str:
        """absent, running (both threads started) or stopped."""
        if not self.configured:
            return "absent"
        if self.io_running != "No" and self.sql_running != "No":
            return "running"
        return "stopped"

    def errors_text(self) -> str:
        """The replica's own last errors, for messages."""
        parts = []
        if self.last_io_errno:
            parts.append("Last_IO_Error %s: %s" % (self.last_io_errno, self.last_io_error))
        if self.last_sql_errno:
            parts.append("Last_SQL_Error %s: %s" % (self.last_sql_errno, self.last_sql_error))
        return "; ".join(parts) if parts else "no error reported by the replica"


@dataclass(frozen=True)
class ReplicaRequest:
    """The desired replica, from the module options."""

    state: str = "running"
    source: Optional[SourceSettings] = None
    password: Optional[str] = None
    password_update: str = "always"
    seed: str = "never"
    wait_for_sync: bool = False
    timeout: float = 30.0

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> "ReplicaRequest":
        """Build the request from mysql_replica's options."""
        source = None
        if params.get("primary_host"):
            ssl_files = (params.get("primary_ssl_ca"), params.get("primary_ssl_cert"),
                         params.get("primary_ssl_key"))
            source = SourceSettings(
                host=params["primary_host"],
                port=params["primary_port"],
                user=params.get("primary_user") or "",
                ssl=bool(params.get("primary_ssl")) or any(ssl_files),
                ssl_ca=params.get("primary_ssl_ca") or "",
                ssl_cert=params.get("primary_ssl_cert") or "",
                ssl_key=params.get("primary_ssl_key") or "",
                ssl_verify_server_cert=bool(params.get("primary_ssl_verify_server_cert")),
            )
        return cls(
            state=params["state"],
            source=source,
            password=params.get("primary_password"),
            password_update=params.get("primary_password_update") or "always",
            seed=params.get("seed") or "never",
            wait_for_sync=bool(params.get("wait_for_sync")),
            timeout=float(params.get("timeout") or 30),
        )


@dataclass(frozen=True)
class ServerHistory:
    """What an unconfigured server already holds, read before it joins a primary."""

    holds_data: bool = False
    # every GTID it applied or wrote (the table's executed_gtid_state)
    executed: str = ""
    # the part of executed that this server wrote itself, not received as a replica
    originated: str = ""
    # its binlog position is ahead of the position its replica threads would start from
    binlog_ahead_of_applied: bool = False

    @property
    def former_primary(self) -> bool:
        """Data and transactions of its own: it may have written what the primary lacks."""
        return self.holds_data and bool(self.originated)


@dataclass
class ReplicaPlan:
    """What must happen; empty means converged."""

    seed: bool = False
    # the server holds part of an earlier seed that never finished
    incomplete_seed: bool = False
    # a former primary (or former replica) with data joins: check its history first
    former_primary: bool = False
    history: Optional[ServerHistory] = None
    statements: List[Statement] = field(default_factory=list)
    password_updated: bool = False
    # the plan (re)starts replication or seeds, so the primary must answer
    contacts_primary: bool = False
    diff: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether applying the plan changes the replica."""
        return self.seed or bool(self.statements)


def password_needs_update(request: ReplicaRequest, status: ReplicaStatus,
                          stored_password: Optional[str]) -> bool:
    """Whether to (re)send the password; stored_password None means it cannot be read."""
    if request.password is None or request.source is None:
        return False
    if not status.configured:
        return True
    if request.password_update == "on_create":
        return False
    if status.source is not None and status.source.user != request.source.user:
        return True
    if stored_password is not None:
        return stored_password != request.password
    # unreadable: resend only when the primary rejects the stored one
    return status.last_io_errno == ACCESS_DENIED_ERRNO


def plan_replica(request: ReplicaRequest, status: ReplicaStatus, sql: ReplicationSql,
                 stored_password: Optional[str] = None, replica_is_empty: bool = False,
                 history: Optional[ServerHistory] = None) -> ReplicaPlan:
    """The statements that bring status to request, in order, and the diff."""
    plan = ReplicaPlan()
    stop = Statement(sql.stop_replica)
    if request.state == "absent":
        if status.configured:
            if status.any_thread_running:
                plan.statements.append(stop)
            plan.statements.append(Statement(sql.reset_replica_all))
        plan.diff = _diff(status, request, False)
        return plan

    change_source = False
    if request.source is not None:
        plan.password_updated = password_needs_update(request, status, stored_password)
        change_source = status.source != request.source or plan.password_updated
        joins = not status.configured
        plan.seed = joins and (request.seed == "force"
                               or (request.seed == "auto" and replica_is_empty))
        plan.former_primary = (joins and not plan.seed and history is not None
                               and history.former_primary)
        plan.history = history
    if change_source:
        if status.any_thread_running:
            plan.statements.append(stop)
        if (plan.former_primary and history is not None and history.binlog_ahead_of_applied
                and sql.adopt_binlog_gtid_position):
            plan.statements.append(Statement(sql.adopt_binlog_gtid_position))
        password = request.password if plan.password_updated else None
        plan.statements.append(change_source_statement(sql, request.source, password))
    if request.state == "running":
        # a source change left the threads stopped
        if change_source or status.state != "running":
            plan.statements.append(Statement(sql.start_replica))
            plan.contacts_primary = True
    elif status.any_thread_running and not change_source:
        plan.statements.append(stop)
    plan.contacts_primary = plan.contacts_primary or plan.seed
    plan.diff = _diff(status, request, plan.password_updated)
    return plan


def _diff(status: ReplicaStatus, request: ReplicaRequest,
          password_updated: bool) -> Dict[str, Dict[str, Any]]:
    """Settings before and after, the password shown masked."""
    before: Dict[str, Any] = {"state": status.state}
    if status.source is not None:
        before.update(status.source.as_dict())
        before["primary_password"] = PASSWORD_MASK
    after: Dict[str, Any] = {"state": request.state}
    if request.state != "absent":
        after.update({key: value for key, value in before.items() if key != "state"})
        if request.source is not None:
            after.update(request.source.as_dict())
        if password_updated:
            after["primary_password"] = PASSWORD_MASK + " (changed)"
    return {"before": before, "after": after}


def password_from_master_info(text: str) -> Optional[str]:
    """The password line of a MariaDB master.info file (line count, file, pos, host, user, password)."""
    lines = text.split("\n")
    if len(lines) < 6 or not lines[0].strip().isdigit():
        return None
    return lines[5]


class ReplicaServer:
    """The replica's SQL interface: status, settings read-back and statements.

    The other modules use it for any server; subject names the server in errors.
    """

    def __init__(self, connection: Any, sql: ReplicationSql, version: str,
                 is_local: bool = False, subject: str = "the replica") -> None:
        self.connection = connection
        self.sql = sql
        self.version = version
        # master.info is only read when the server runs on this host
        self.is_local = is_local
        self.subject = subject

    def query_rows(self, query: str, args: Tuple[Any, ...] = ()) -> List[Dict[str, Any]]:
        """All rows of a query; failures become ReplicaError naming the statement."""
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(query, args or None)
                return list(cursor.fetchall())
        except Exception as error:  # driver errors; re-raised with the statement
            raise ReplicaError("SQL failed on %s: %s: %s"
                               % (self.subject, Statement(query, args).display(), error))

    def query_value(self, query: str, args: Tuple[Any, ...] = ()) -> Any:
        """The first column of the first row, or None."""
        rows = self.query_rows(query, args)
        return next(iter(rows[0].values())) if rows else None

    def execute(self, statement: Statement, ignore_errnos: Tuple[int, ...] = ()) -> bool:
        """Run one statement; the error names it with secrets masked.

        False when the server answered with one of ignore_errnos instead.
        """
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(statement.sql, statement.args or None)
        except Exception as error:  # driver errors; re-raised with the statement
            if error.args and error.args[0] in ignore_errnos:
                return False
            raise ReplicaError("SQL failed on %s: %s: %s"
                               % (self.subject, statement.display(), error))
        return True

    def status_row(self) -> Optional[Dict[str, Any]]:
        """The raw row of the replica status statement, None when nothing is configured."""
        rows = self.query_rows(self.sql.show_replica_status)
        return rows[0] if rows else None

    def status(self) -> ReplicaStatus:
        """Current replica status."""
        return ReplicaStatus.from_row(self.status_row(), self.sql)

    def user_schemas(self) -> List[str]:
        """Schemas other than the system ones, sorted."""
        placeholders = ", ".join(["%s"] * len(SYSTEM_SCHEMAS))
        rows = self.query_rows(
            "SELECT schema_name AS name FROM information_schema.schemata "
            "WHERE schema_name NOT IN (%s) ORDER BY schema_name" % placeholders, SYSTEM_SCHEMAS)
        return [str(row["name"]) for row in rows]

    def has_user_schemas(self) -> bool:
        """Whether any schema other than the system ones exists."""
        return bool(self.user_schemas())

    def stored_password(self) -> Optional[str]:
        """The password the replica has stored for its source, or None when unreadable."""
        if self.sql.stored_password_query:
            try:
                value = self.query_value(self.sql.stored_password_query)
            except ReplicaError:
                return None
            return None if value is None else str(value)
        if self.sql.master_info_file and self.is_local:
            datadir = str(self.query_value("SELECT @@GLOBAL.datadir") or "")
            try:
                with open(os.path.join(datadir, self.sql.master_info_file), encoding="utf-8") as info:
                    return password_from_master_info(info.read())
            except (OSError, UnicodeDecodeError):
                return None
        return None

    def applied_gtid_position(self) -> str:
        """GTID position the replica has applied."""
        return str(self.query_value(self.sql.replica_gtid_position) or "")

    def binlog_gtid_position(self) -> str:
        """GTID position of the server's own binary log."""
        return str(self.query_value(self.sql.primary_gtid_position) or "")

    def executed_gtid_state(self) -> str:
        """Every GTID the server applied or wrote, normalised (see the table's executed_gtid_state)."""
        text = str(self.query_value(self.sql.executed_gtid_state) or "")
        try:
            return str(parse_gtid(text, self.sql.gtid_format))
        except GtidError as error:
            raise ReplicaError("Cannot read the GTID history of %s: %s" % (self.subject, error))

    def wait_for_gtid(self, position: str, timeout: float) -> bool:
        """Block until the replica applied position, or timeout; True when reached."""
        return self.query_value(self.sql.wait_for_gtid, (position, timeout)) == 0

    def global_variables(self, names: Tuple[str, ...]) -> Dict[str, str]:
        """Values of the named global variables that exist."""
        if not names:
            return {}
        placeholders = ", ".join(["%s"] * len(names))
        rows = self.query_rows("SHOW GLOBAL VARIABLES WHERE Variable_name IN (%s)" % placeholders,
                               names)
        return {row["Variable_name"]: str(row["Value"]) for row in rows}

    def global_status(self, names: Tuple[str, ...]) -> Dict[str, str]:
        """Values of the named global status variables that exist."""
        if not names:
            return {}
        placeholders = ", ".join(["%s"] * len(names))
        rows = self.query_rows("SHOW GLOBAL STATUS WHERE Variable_name IN (%s)" % placeholders,
                               names)
        return {row["Variable_name"]: str(row["Value"]) for row in rows}


class PrimaryServer:
    """The primary as seen from this host: reachability and its GTID position."""

    def __init__(self, settings: MysqlConnectionSettings, sql: ReplicationSql,
                 connect: Callable[[MysqlConnectionSettings], Any] = connect_mysql) -> None:
        self.settings = settings
        self.sql = sql
        self.connect = connect

    def check_reachable(self) -> None:
        """Fail before any change when the primary's port does not answer."""
        address = (self.settings.host, self.settings.port)
        try:
            with socket.create_connection(address, timeout=self.settings.connect_timeout):
                pass
        except OSError as error:
            raise ReplicaError("Cannot reach the primary %s:%s from this host: %s. "
                               "Nothing was changed." % (address[0], address[1], error))

    def _query_value(self, query: str, what: str) -> str:
        """One value read with the replication account (global variables need no privilege)."""
        try:
            connection = self.connect(self.settings)
        except MysqlConnectionError as error:
            raise ReplicaError("Cannot read the primary's %s: %s" % (what, error))
        try:
            with connection.cursor() as cursor:
                cursor.execute(query)
                row = cursor.fetchone()
        except Exception as error:  # driver errors; re-raised with the statement
            raise ReplicaError("SQL failed on the primary: %s: %s" % (query, error))
        finally:
            connection.close()
        return str(next(iter(row.values())) or "") if row else ""

    def gtid_position(self) -> str:
        """The primary's current GTID position."""
        return self._query_value(self.sql.primary_gtid_position, "GTID position")

    def executed_gtid_state(self) -> str:
        """Every GTID the primary applied or wrote."""
        return self._query_value(self.sql.executed_gtid_state, "GTID history")


class ReplicaManager:
    """Plans and applies a ReplicaRequest on one replica, and builds the module result."""

    def __init__(self, replica: ReplicaServer, primary: PrimaryServer,
                 seeder: Optional[ReplicaSeeder] = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.replica = replica
        self.primary = primary
        self.seeder = seeder
        self.clock = clock
        self.sleep = sleep

    def plan(self, request: ReplicaRequest, status: ReplicaStatus) -> ReplicaPlan:
        """Read what the plan needs beyond the status, then plan."""
        stored_password = None
        if (status.configured and request.password is not None
                and request.password_update == "always"):
            stored_password = self.replica.stored_password()
        replica_is_empty = incomplete_seed = False
        history = None
        if not status.configured and request.source is not None and request.state != "absent":
            schemas = self.replica.user_schemas()
            incomplete_seed = INCOMPLETE_SEED_MARKER in schemas
            # a partial seed counts as empty: what it holds is dropped and seeded again
            replica_is_empty = not schemas or incomplete_seed
            if not replica_is_empty and request.seed != "force":
                history = self.read_history()
        plan = plan_replica(request, status, self.replica.sql, stored_password, replica_is_empty,
                            history)
        plan.incomplete_seed = incomplete_seed
        return plan

    def read_history(self) -> ServerHistory:
        """The GTID history of a server that holds data and joins a primary."""
        sql = self.replica.sql
        executed = self.replica.executed_gtid_state()
        if not executed:
            return ServerHistory(holds_data=True)
        try:
            originated = gtid_originated_by(executed, str(self.replica.query_value(sql.gtid_origin)),
                                            sql.gtid_format)
            ahead = bool(sql.adopt_binlog_gtid_position) and gtid_ahead(
                self.replica.binlog_gtid_position(), self.replica.applied_gtid_position(),
                sql.gtid_format)
        except GtidError as error:
            raise ReplicaError("Cannot compare the GTID positions of the replica: %s" % error)
        return ServerHistory(holds_data=True, executed=executed, originated=originated,
                             binlog_ahead_of_applied=ahead)

    def refuse_errant_history(self, status: ReplicaStatus, plan: ReplicaPlan) -> None:
        """Fail, changing nothing, when this server executed transactions the primary lacks."""
        own = plan.history.executed if plan.history else ""
        try:
            errant = gtid_missing(self.primary.executed_gtid_state(), own,
                                  self.replica.sql.gtid_format)
        except (ReplicaError, GtidError) as error:
            raise ReplicaError("The replica holds data, so its GTID history must be checked "
                               "against the primary first: %s. Nothing was changed." % error,
                               self.result(status, plan, [], False))
        if errant:
            raise ReplicaError(
                "This server has transactions the primary %s:%s lacks (errant GTIDs: %s), for "
                "example writes it took as a primary that never replicated. Replicating now would "
                "diverge; nothing was changed. Apply them to the primary, or discard them with "
                "seed=force, which drops this server's user schemas and re-seeds it from the "
                "primary." % (self.primary.settings.host, self.primary.settings.port, errant),
                self.result(status, plan, [], False, {"errant_gtids": errant}))

    def ensure(self, request: ReplicaRequest, check_mode: bool = False) -> Dict[str, Any]:
        """Converge the replica (or only predict, in check mode) and return the result."""
        status = self.replica.status()
        plan = self.plan(request, status)
        if plan.seed and self.seeder is None:
            raise ReplicaError("The replica is to be seeded (seed=%s), but no seed account is set"
                               % request.seed, self.result(status, plan, [], False))
        if plan.incomplete_seed and not plan.seed:
            raise ReplicaError(
                "This server holds part of a seed that never finished (its schema %s is still "
                "there), and no GTID position to replicate from. Set seed=auto or seed=force to "
                "drop what it holds and seed it again; nothing was changed." % INCOMPLETE_SEED_MARKER,
                self.result(status, plan, [], False))
        if plan.former_primary:
            self.refuse_errant_history(status, plan)
        # seed=force, or a seed to finish, replaces whatever the server holds
        drop_schemas = (self.replica.user_schemas()
                        if plan.seed and (request.seed == "force" or plan.incomplete_seed) else [])
        if check_mode:
            return self.result(status, plan, self.planned_commands(plan, drop_schemas), plan.changed)

        ran: List[str] = []
        extra: Dict[str, Any] = {}
        try:
            if plan.contacts_primary:
                self.primary.check_reachable()
            if plan.seed and self.seeder is not None:
                self.seeder.seed(self.replica.execute, self.replica.global_variables, ran,
                                 drop_schemas)
                extra["seed_gtid_position"] = self.replica.applied_gtid_position()
            for statement in plan.statements:
                self.replica.execute(statement)
                ran.append(statement.display())
            final = self.replica.status()
            if request.state == "running":
                final = self.wait_for_threads(status, request.timeout)
                if request.wait_for_sync:
                    extra["primary_gtid_position"] = self.wait_for_sync(request.timeout)
                    final = self.replica.status()
        except (ReplicaError, SeedError) as error:
            raise ReplicaError(str(error), self.failure_result(status, plan, ran, extra))
        return self.result(final, plan, ran, plan.changed, extra)

    def failure_result(self, status: ReplicaStatus, plan: ReplicaPlan, ran: List[str],
                       extra: Dict[str, Any]) -> Dict[str, Any]:
        """The result after a failure: the replica's state now if it can still be read."""
        try:
            return self.result(self.replica.status(), plan, ran, bool(ran), extra)
        except ReplicaError as error:
            result = {"changed": bool(ran), "commands": ran, "diff": plan.diff,
                      "state": status.state, "status_unreadable": str(error)}
            result.update(extra)
            return result

    def planned_commands(self, plan: ReplicaPlan, drop_schemas: Sequence[str] = ()) -> List[str]:
        """What ensure() would run, for check mode."""
        commands = self.seeder.planned_commands(drop_schemas) if plan.seed and self.seeder else []
        return commands + [statement.display() for statement in plan.statements]

    def wait_for_threads(self, before: ReplicaStatus, timeout: float) -> ReplicaStatus:
        """Wait until IO and SQL threads run; fail with the replica's own error text."""
        started = self.clock()
        stale_error = (before.last_io_errno, before.last_io_error)
        while True:
            status = self.replica.status()
            if status.threads_running:
                return status
            elapsed = self.clock() - started
            if status.sql_running == "No" or status.io_running == "No":
                raise ReplicaError("Replication stopped: IO thread %s, SQL thread %s; %s"
                                   % (status.io_running, status.sql_running, status.errors_text()))
            fresh_error = (status.last_io_errno, status.last_io_error) != stale_error
            if status.last_io_errno and (fresh_error or elapsed >= STALE_IO_ERROR_GRACE_SECONDS):
                raise ReplicaError("The replica cannot replicate from its primary: Last_IO_Error %s: %s"
                                   % (status.last_io_errno, status.last_io_error))
            if elapsed >= timeout:
                raise ReplicaError(
                    "Replication threads not running after %ss: IO thread %s, SQL thread %s; %s"
                    % (timeout, status.io_running, status.sql_running, status.errors_text()))
            self.sleep(POLL_SECONDS)

    def wait_for_sync(self, timeout: float) -> str:
        """Wait until the replica applied the primary's GTID position of now; return it."""
        position = self.primary.gtid_position()
        if not self.replica.wait_for_gtid(position, timeout):
            status = self.replica.status()
            raise ReplicaError(
                "The replica did not reach the primary's GTID position %s within %ss "
                "(applied: %s; %s)" % (position, timeout, self.replica.applied_gtid_position(),
                                       status.errors_text()))
        return position

    def result(self, status: ReplicaStatus, plan: ReplicaPlan, commands: List[str],
               changed: bool, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """The module result for a status."""
        sql = self.replica.sql
        variables = self.replica.global_variables(
            sql.read_only_variables + (sql.semi_sync.replica_enabled,))
        result: Dict[str, Any] = {
            "changed": changed,
            "state": status.state,
            "io_thread": status.io_running,
            "sql_thread": status.sql_running,
            "seconds_behind_primary": status.seconds_behind,
            "gtid_received": status.gtid_received,
            "gtid_applied": self.replica.applied_gtid_position(),
            "last_io_errno": status.last_io_errno,
            "last_io_error": status.last_io_error,
            "last_sql_errno": status.last_sql_errno,
            "last_sql_error": status.last_sql_error,
            "source": status.source.as_dict() if status.source else {},
            "commands": commands,
            "seeded": plan.seed and changed,
            "former_primary": plan.former_primary,
            "password_updated": plan.password_updated and changed,
            "read_only": {name: variables.get(name) == "ON"
                          for name in sql.read_only_variables if name in variables},
            "semi_sync_replica": variables.get(sql.semi_sync.replica_enabled) == "ON",
            "server_version": self.replica.version,
            "sql_flavour": sql.label,
            "diff": plan.diff,
        }
        result.update(extra or {})
        return result


def open_server(login: MysqlConnectionSettings, subject: str = "the replica") -> ReplicaServer:
    """Connect and pick the server's table row; MysqlConnectionError when it cannot be reached."""
    connection = connect_mysql(login)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT VERSION() AS version")
            version = str(cursor.fetchone()["version"])
        sql = resolve_replication_sql(version)
    except UnsupportedServerError as error:
        connection.close()
        raise ReplicaError(str(error))
    except Exception as error:  # driver errors
        connection.close()
        raise ReplicaError("Cannot read the version of %s: %s" % (login.describe(), error))
    return ReplicaServer(connection, sql, version, is_local=login.is_local, subject=subject)


def replica_manager_from_params(params: Dict[str, Any]) -> ReplicaManager:
    """Connect to the replica named by the login_* options and wire up primary and seeder."""
    login = MysqlConnectionSettings.from_login_params(params)
    try:
        replica = open_server(login)
    except MysqlConnectionError as error:
        raise ReplicaError(str(error))
    sql = replica.sql
    request_source = ReplicaRequest.from_params(params).source
    primary_tls = dict(
        tls=bool(request_source and request_source.ssl),
        ca_cert=params.get("primary_ssl_ca"),
        client_cert=params.get("primary_ssl_cert"),
        client_key=params.get("primary_ssl_key"),
        check_hostname=bool(params.get("primary_ssl_verify_server_cert")),
    )
    primary = MysqlConnectionSettings(
        host=params.get("primary_host") or "", port=params["primary_port"],
        user=params.get("primary_user") or "", password=params.get("primary_password"),
        connect_timeout=params["connect_timeout"], **primary_tls)
    seeder = None
    if params.get("seed") in ("auto", "force") and params.get("seed_user"):
        seed_account = MysqlConnectionSettings(
            host=primary.host, port=primary.port, user=params["seed_user"],
            password=params.get("seed_password"), connect_timeout=params["connect_timeout"],
            **primary_tls)
        seeder = ReplicaSeeder(sql, seed_account, login, float(params["seed_timeout"]),
                               verify_primary_identity=primary_tls["check_hostname"])
    return ReplicaManager(replica, PrimaryServer(primary, sql), seeder)
