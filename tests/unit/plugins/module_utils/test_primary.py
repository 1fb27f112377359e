"""Promotion and fencing plans, the waits before promotion, and the result, without a server."""

from __future__ import annotations

from dataclasses import replace

import pytest
from ansible_collections.nospof.webstack.plugins.module_utils import replication_sql as table
from ansible_collections.nospof.webstack.plugins.module_utils.primary import (
    PrimaryError,
    PrimaryManager,
    PrimaryRequest,
    RoleSettings,
    plan_primary,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replica import (
    ReplicaStatus,
    SourceSettings,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replication_sql import Statement

MARIADB = table.MARIADB_10_5
MYSQL = table.MYSQL_8_4
RUNNING = ReplicaStatus(source=SourceSettings(host="10.0.0.1", user="repl"), io_running="Yes",
                        sql_running="Yes", gtid_received="0-1-42")
ABSENT = ReplicaStatus()
MARIADB_REPLICA = RoleSettings({"read_only": "ON"}, True, False, True)
MARIADB_PRIMARY = RoleSettings({"read_only": "OFF"}, False, True, False)
MYSQL_REPLICA = RoleSettings({"read_only": "ON", "super_read_only": "ON"}, True, False, True)
PRESENT = PrimaryRequest(state="present")
FENCED = PrimaryRequest(state="fenced")


def shown(statements: list[Statement]) -> list[str]:
    return [statement.display() for statement in statements]


def test_promoting_a_mariadb_replica():
    plan = plan_primary(PRESENT, MARIADB_REPLICA, RUNNING, MARIADB)

    assert shown(plan.statements) == [
        "STOP REPLICA", "RESET REPLICA ALL", "SET GLOBAL rpl_semi_sync_slave_enabled = OFF",
        "SET GLOBAL rpl_semi_sync_master_enabled = ON", "SET GLOBAL read_only = OFF"]
    assert plan.after == MARIADB_PRIMARY


def test_promoting_a_mysql_replica_switches_read_only_off_in_reverse_order():
    stopped = replace(RUNNING, io_running="No", sql_running="No")

    plan = plan_primary(PRESENT, MYSQL_REPLICA, stopped, MYSQL)

    assert shown(plan.statements) == [
        "RESET REPLICA ALL", "SET GLOBAL rpl_semi_sync_replica_enabled = OFF",
        "SET GLOBAL rpl_semi_sync_source_enabled = ON", "SET GLOBAL super_read_only = OFF",
        "SET GLOBAL read_only = OFF"]
    assert plan.after.as_dict() == {
        "read_only": False, "read_only_variables": {"read_only": "OFF", "super_read_only": "OFF"},
        "replica_configured": False, "semi_sync_primary_enabled": True,
        "semi_sync_replica_enabled": False}


def test_a_primary_needs_no_promotion():
    plan = plan_primary(PRESENT, MARIADB_PRIMARY, ABSENT, MARIADB)

    assert not plan.changed and plan.after == MARIADB_PRIMARY


def test_promotion_without_semi_sync_leaves_its_switches():
    plan = plan_primary(replace(PRESENT, semi_sync=False), MARIADB_REPLICA, RUNNING, MARIADB)

    assert shown(plan.statements) == ["STOP REPLICA", "RESET REPLICA ALL", "SET GLOBAL read_only = OFF"]
    assert plan.after.semi_sync_replica is True


def test_promotion_with_semi_sync_needs_the_variables():
    no_plugin = replace(MYSQL_REPLICA, semi_sync_primary=None, semi_sync_replica=None)

    with pytest.raises(PrimaryError, match="no variable rpl_semi_sync_source_enabled.*Nothing was changed"):
        plan_primary(PRESENT, no_plugin, RUNNING, MYSQL)
    assert plan_primary(replace(PRESENT, semi_sync=False), no_plugin, RUNNING, MYSQL).changed


def test_fencing_a_mysql_primary_switches_read_only_on_in_order_and_kills_sessions():
    primary = RoleSettings({"read_only": "OFF", "super_read_only": "OFF"}, False, True, False)

    plan = plan_primary(FENCED, primary, ABSENT, MYSQL, session_ids=[12, 15])

    assert shown(plan.statements) == [
        "SET GLOBAL read_only = ON", "SET GLOBAL super_read_only = ON",
        "SET GLOBAL rpl_semi_sync_source_enabled = OFF"]
    assert shown(plan.kills) == ["KILL CONNECTION 12", "KILL CONNECTION 15"]
    assert plan.after.read_only_variables == {"read_only": "ON", "super_read_only": "ON"}
    assert plan.after.semi_sync_primary is False


def test_fencing_a_fenced_server_changes_nothing_and_keeps_replication():
    fenced = RoleSettings({"read_only": "ON"}, True, False, True)

    plan = plan_primary(FENCED, fenced, RUNNING, MARIADB)

    assert not plan.changed and plan.after == fenced


def test_request_from_params():
    params = {"state": "fenced", "apply_received": True, "wait_for_gtid": "", "semi_sync": True,
              "kill_user_sessions": ["app", "report"], "timeout": 5}

    request = PrimaryRequest.from_params(params)

    assert request == PrimaryRequest(state="fenced", kill_user_sessions=("app", "report"), timeout=5.0)


class FakeServer:
    """A ReplicaServer stand-in: settings change as statements run; GTID waits succeed up to applied."""

    sql = MARIADB
    version = "10.11.6-MariaDB"

    def __init__(self, status: ReplicaStatus, variables: dict[str, str], applied: int = 42,
                 sessions: dict[str, list[int]] | None = None, gone: tuple[int, ...] = ()) -> None:
        self._status = status
        self.variables = variables
        self.applied = applied
        self.sessions = sessions or {}
        self.gone = gone
        self.executed: list[str] = []
        self.waits: list[tuple[str, float]] = []

    def status(self) -> ReplicaStatus:
        return self._status

    def global_variables(self, names: tuple[str, ...]) -> dict[str, str]:
        return {name: self.variables[name] for name in names if name in self.variables}

    def query_rows(self, query: str, args: tuple) -> list[dict[str, int]]:
        assert query == MARIADB.user_sessions_query
        return [{"id": session} for session in self.sessions.get(args[0], [])]

    def execute(self, statement: Statement, ignore_errnos: tuple[int, ...] = ()) -> bool:
        text = statement.display()
        if text.startswith("KILL") and statement.args[0] in self.gone:
            assert 1094 in ignore_errnos
            return False
        self.executed.append(text)
        if text.startswith("SET GLOBAL"):
            name, value = text[len("SET GLOBAL "):].split(" = ")
            self.variables[name] = value
        if text == "RESET REPLICA ALL":
            self._status = ReplicaStatus()
        return True

    def wait_for_gtid(self, position: str, timeout: float) -> bool:
        self.waits.append((position, timeout))
        return int(position.rsplit("-", 1)[1]) <= self.applied

    def applied_gtid_position(self) -> str:
        return "0-1-%d" % self.applied

    def executed_gtid_state(self) -> str:
        return "0-1-%d" % self.applied

    def binlog_gtid_position(self) -> str:
        return "0-1-%d" % self.applied


REPLICA_VARIABLES = {"read_only": "ON", "rpl_semi_sync_master_enabled": "OFF",
                     "rpl_semi_sync_slave_enabled": "ON"}


def settings_changes(server: FakeServer) -> list[str]:
    return [command for command in server.executed if not command.startswith("SET SESSION")]


def test_promotion_waits_for_what_was_received_then_promotes():
    server = FakeServer(RUNNING, dict(REPLICA_VARIABLES))

    result = PrimaryManager(server).ensure(replace(PRESENT, wait_for_gtid="0-1-40", timeout=10))

    assert server.waits[0][0] == "0-1-42" and server.waits[1][0] == "0-1-40"
    assert all(0 < timeout <= 10 for _position, timeout in server.waits)
    assert server.executed[0] == "SET SESSION lock_wait_timeout = 10"
    assert settings_changes(server) == result["commands"]
    assert result["changed"] and result["gtid_received"] == "0-1-42"
    assert result["before"]["replica_configured"] and not result["after"]["replica_configured"]
    assert result["after"]["read_only"] is False
    assert result["diff"] == {"before": result["before"], "after": result["after"]}
    assert result["gtid_binlog_position"] == "0-1-42"


@pytest.mark.parametrize("request_, message", [
    (PRESENT, r"did not apply every transaction it received \(0-1-42\) within 30.0s"),
    (replace(PRESENT, apply_received=False, wait_for_gtid="0-1-50"),
     "did not apply GTID position 0-1-50 within 30.0s"),
])
def test_promotion_that_times_out_sends_nothing(request_, message):
    server = FakeServer(RUNNING, dict(REPLICA_VARIABLES), applied=40)

    with pytest.raises(PrimaryError, match=message) as failure:
        PrimaryManager(server).ensure(request_)

    assert "applied: 0-1-40" in str(failure.value)
    assert "It was not promoted; nothing was changed" in str(failure.value)
    assert server.executed == [] and failure.value.result["changed"] is False


def test_promotion_of_a_primary_waits_for_nothing_received_and_changes_nothing():
    server = FakeServer(ABSENT, {"read_only": "OFF", "rpl_semi_sync_master_enabled": "ON",
                                 "rpl_semi_sync_slave_enabled": "OFF"})

    result = PrimaryManager(server).ensure(PRESENT)

    assert server.waits == [] and not result["changed"] and result["commands"] == []
    assert result["gtid_received"] is None


def test_check_mode_predicts_without_waiting_or_changing():
    server = FakeServer(RUNNING, dict(REPLICA_VARIABLES), applied=1)

    result = PrimaryManager(server).ensure(PRESENT, check_mode=True)

    assert server.executed == [] and server.waits == []
    assert result["changed"] and result["commands"][:2] == ["STOP REPLICA", "RESET REPLICA ALL"]
    assert result["after"]["read_only"] is False and result["before"]["read_only"] is True


def test_fencing_kills_the_listed_accounts_sessions_and_counts_them():
    server = FakeServer(ABSENT, {"read_only": "OFF", "rpl_semi_sync_master_enabled": "ON"},
                        sessions={"app": [7, 9], "report": [11]}, gone=(9,))

    predicted = PrimaryManager(server).ensure(replace(FENCED, kill_user_sessions=("app", "report")),
                                              check_mode=True)
    result = PrimaryManager(server).ensure(replace(FENCED, kill_user_sessions=("app", "report")))

    assert predicted["sessions_killed"] == 3 and server.executed[1:] == result["commands"]
    assert result["commands"] == ["SET GLOBAL read_only = ON",
                                  "SET GLOBAL rpl_semi_sync_master_enabled = OFF",
                                  "KILL CONNECTION 7", "KILL CONNECTION 11"]
    assert result["sessions_killed"] == 2 and result["changed"]


def test_fencing_only_sessions_is_a_change():
    server = FakeServer(ABSENT, {"read_only": "ON"}, sessions={"app": [7]})

    result = PrimaryManager(server).ensure(replace(FENCED, kill_user_sessions=("app",)))
    again = PrimaryManager(FakeServer(ABSENT, {"read_only": "ON"})).ensure(
        replace(FENCED, kill_user_sessions=("app",)))

    assert result["changed"] and result["before"] == result["after"]
    assert not again["changed"] and again["sessions_killed"] == 0
