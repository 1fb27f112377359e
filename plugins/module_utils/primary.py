# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make a MySQL/MariaDB server the primary, or fence it, and report what changed.

present: wait, with a timeout, until the server applied what it received (and any
requested GTID position), then remove its replica configuration, switch semi-sync
to the primary side and the read-only variables off. fenced: read-only on,
semi-sync primary side off, and the given accounts' connections ended.
Read the settings, plan only what differs, apply, read them again and compare.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

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
from ansible_collections.nospof.webstack.plugins.module_utils.replication_info import switch_value
from ansible_collections.nospof.webstack.plugins.module_utils.replication_sql import (
    ReplicationSql,
    Statement,
)

KILL_CONNECTION = "KILL CONNECTION %s"
# bounds SET GLOBAL read_only, which waits for running write statements
SESSION_LOCK_WAIT_TIMEOUT = "SET SESSION lock_wait_timeout = %s"
# the connection ended between listing and KILL
UNKNOWN_THREAD_ERRNO = 1094


class PrimaryError(Exception):
    """A failure with a message for the user and the result gathered so far."""

    def __init__(self, message: str, result: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.result: Dict[str, Any] = result or {"changed": False, "commands": []}


@dataclass(frozen=True)
class PrimaryRequest:
    """The desired role, from the module options."""

    state: str
    apply_received: bool = True
    wait_for_gtid: Optional[str] = None
    semi_sync: bool = True
    kill_user_sessions: Tuple[str, ...] = ()
    timeout: float = 30.0

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> "PrimaryRequest":
        """Build the request from mysql_primary's options."""
        return cls(
            state=params["state"],
            apply_received=bool(params.get("apply_received", True)),
            wait_for_gtid=params.get("wait_for_gtid") or None,
            semi_sync=bool(params.get("semi_sync", True)),
            kill_user_sessions=tuple(params.get("kill_user_sessions") or ()),
            timeout=float(params.get("timeout") or 30),
        )


@dataclass(frozen=True)
class RoleSettings:
    """The settings mysql_primary changes; None for a semi-sync variable the server lacks."""

    read_only_variables: Dict[str, str]
    replica_configured: bool
    semi_sync_primary: Optional[bool]
    semi_sync_replica: Optional[bool]

    def as_dict(self) -> Dict[str, Any]:
        """For before, after and the diff."""
        return {
            "read_only": "ON" in self.read_only_variables.values(),
            "read_only_variables": dict(self.read_only_variables),
            "replica_configured": self.replica_configured,
            "semi_sync_primary_enabled": self.semi_sync_primary,
            "semi_sync_replica_enabled": self.semi_sync_replica,
        }


@dataclass
class PrimaryPlan:
    """Statements that change settings, connections to end, and the settings expected after."""

    statements: List[Statement] = field(default_factory=list)
    kills: List[Statement] = field(default_factory=list)
    after: Optional[RoleSettings] = None

    @property
    def changed(self) -> bool:
        """Whether applying the plan changes the server."""
        return bool(self.statements or self.kills)


def _set_global(name: str, switched_on: bool) -> Statement:
    return Statement("SET GLOBAL %s = %s" % (name, "ON" if switched_on else "OFF"))


def plan_primary(request: PrimaryRequest, before: RoleSettings, replica: ReplicaStatus,
                 sql: ReplicationSql, session_ids: Sequence[int] = ()) -> PrimaryPlan:
    """The statements that give the server the requested role, in order."""
    plan = PrimaryPlan()
    read_only = dict(before.read_only_variables)
    semi_sync_primary, semi_sync_replica = before.semi_sync_primary, before.semi_sync_replica
    semi_sync = sql.semi_sync
    if request.state == "present":
        if replica.configured:
            if replica.any_thread_running:
                plan.statements.append(Statement(sql.stop_replica))
            plan.statements.append(Statement(sql.reset_replica_all))
        if request.semi_sync:
            if semi_sync_primary is None:
                raise PrimaryError(
                    "semi_sync=true, but the server has no variable %s; load the semi-sync "
                    "plugins or set semi_sync=false. Nothing was changed." % semi_sync.primary_enabled)
            if semi_sync_replica:
                plan.statements.append(_set_global(semi_sync.replica_enabled, False))
                semi_sync_replica = False
            if not semi_sync_primary:
                plan.statements.append(_set_global(semi_sync.primary_enabled, True))
                semi_sync_primary = True
        # writes are allowed last, so the first ones are already semi-synchronous
        for name in reversed(sql.read_only_variables):
            if read_only.get(name) == "ON":
                plan.statements.append(_set_global(name, False))
                read_only[name] = "OFF"
        configured = False
    else:
        for name in sql.read_only_variables:
            if name in read_only and read_only[name] != "ON":
                plan.statements.append(_set_global(name, True))
                read_only[name] = "ON"
        if semi_sync_primary:
            plan.statements.append(_set_global(semi_sync.primary_enabled, False))
            semi_sync_primary = False
        plan.kills = [Statement(KILL_CONNECTION, (session_id,)) for session_id in session_ids]
        configured = before.replica_configured
    plan.after = replace(before, read_only_variables=read_only, replica_configured=configured,
                         semi_sync_primary=semi_sync_primary, semi_sync_replica=semi_sync_replica)
    return plan


class PrimaryManager:
    """Plans and applies a PrimaryRequest on one server, and builds the module result."""

    def __init__(self, server: ReplicaServer, clock: Callable[[], float] = time.monotonic) -> None:
        self.server = server
        self.clock = clock

    def read_settings(self) -> Tuple[RoleSettings, ReplicaStatus]:
        """The role settings now, and the replica status they came from."""
        sql = self.server.sql
        status = self.server.status()
        variables = self.server.global_variables(
            sql.read_only_variables + (sql.semi_sync.primary_enabled, sql.semi_sync.replica_enabled))
        settings = RoleSettings(
            read_only_variables={name: "ON" if switch_value(variables[name]) else "OFF"
                                 for name in sql.read_only_variables if name in variables},
            replica_configured=status.configured,
            semi_sync_primary=switch_value(variables.get(sql.semi_sync.primary_enabled)),
            semi_sync_replica=switch_value(variables.get(sql.semi_sync.replica_enabled)),
        )
        return settings, status

    def user_session_ids(self, users: Sequence[str]) -> List[int]:
        """Connection ids of the given accounts, ours excluded."""
        ids: List[int] = []
        for user in users:
            rows = self.server.query_rows(self.server.sql.user_sessions_query, (user,))
            ids.extend(int(row["id"]) for row in rows)
        return sorted(set(ids))

    def ensure(self, request: PrimaryRequest, check_mode: bool = False) -> Dict[str, Any]:
        """Give the server the requested role (or only predict, in check mode); the result."""
        before, status = self.read_settings()
        sessions = self.user_session_ids(request.kill_user_sessions) if request.state == "fenced" else []
        plan = plan_primary(request, before, status, self.server.sql, sessions)
        if check_mode:
            planned = [statement.display() for statement in plan.statements + plan.kills]
            return self.result(request, before, plan.after, planned, plan.changed,
                               len(plan.kills), None)
        received = None
        if request.state == "present":
            received = self.wait_before_promotion(request, status)
        ran: List[str] = []
        killed = 0
        try:
            self.server.execute(Statement(SESSION_LOCK_WAIT_TIMEOUT, (max(1, int(request.timeout)),)))
            for statement in plan.statements:
                self.server.execute(statement)
                ran.append(statement.display())
            for statement in plan.kills:
                if self.server.execute(statement, ignore_errnos=(UNKNOWN_THREAD_ERRNO,)):
                    ran.append(statement.display())
                    killed += 1
            after = self.read_settings()[0]
        except ReplicaError as error:
            raise PrimaryError("%s (statements that ran: %s)" % (error, ran or "none"),
                               {"changed": bool(ran), "commands": ran,
                                "before": before.as_dict(), "sessions_killed": killed})
        changed = after != before or killed > 0
        return self.result(request, before, after, ran, changed, killed, received)

    def wait_before_promotion(self, request: PrimaryRequest, status: ReplicaStatus) -> Optional[str]:
        """Wait, within one timeout, for the received and the requested positions; nothing changes."""
        deadline = self.clock() + request.timeout
        received = status.gtid_received if status.configured and request.apply_received else ""
        waits = [(received, "every transaction it received (%s)" % received),
                 (request.wait_for_gtid or "", "GTID position %s" % request.wait_for_gtid)]
        for position, what in waits:
            if not position:
                continue
            if not self.server.wait_for_gtid(position, max(0.0, deadline - self.clock())):
                now = self.server.status()
                raise PrimaryError(
                    "The server did not apply %s within %ss (applied: %s; SQL thread %s; %s). "
                    "It was not promoted; nothing was changed."
                    % (what, request.timeout, self.server.applied_gtid_position() or "nothing",
                       now.sql_running, now.errors_text()))
        return received or None

    def gtid_text(self, position: str) -> str:
        """A GTID position as gtid.py prints it."""
        try:
            return str(parse_gtid(position, self.server.sql.gtid_format))
        except GtidError:
            return position

    def result(self, request: PrimaryRequest, before: RoleSettings, after: Optional[RoleSettings],
               commands: List[str], changed: bool, killed: int,
               received: Optional[str]) -> Dict[str, Any]:
        """The module result."""
        after_dict = (after or before).as_dict()
        return {
            "changed": changed,
            "state": request.state,
            "commands": commands,
            "before": before.as_dict(),
            "after": after_dict,
            "sessions_killed": killed,
            "gtid_received": received,
            "gtid_executed": self.server.executed_gtid_state(),
            "gtid_binlog_position": self.gtid_text(self.server.binlog_gtid_position()),
            "server_version": self.server.version,
            "sql_flavour": self.server.sql.label,
            "diff": {"before": before.as_dict(), "after": after_dict},
        }


def primary_manager_from_params(params: Dict[str, Any]) -> PrimaryManager:
    """Connect to the server named by the login_* options."""
    login = MysqlConnectionSettings.from_login_params(params)
    try:
        server = open_server(login, subject="the server")
    except (MysqlConnectionError, ReplicaError) as error:
        raise PrimaryError("%s. Nothing was changed." % error)
    return PrimaryManager(server)
