"""Replica planning, status parsing and the wait logic, without a server."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import socket

import pytest
from ansible_collections.nospof.webstack.plugins.module_utils import replication_sql as table
from ansible_collections.nospof.webstack.plugins.module_utils.mysql_connection import (
    MysqlConnectionSettings,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replica import (
    PrimaryServer,
    ReplicaError,
    ReplicaManager,
    ReplicaRequest,
    ReplicaStatus,
    ServerHistory,
    SourceSettings,
    password_from_master_info,
    password_needs_update,
    plan_replica,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replica_seed import ReplicaSeeder
from ansible_collections.nospof.webstack.plugins.module_utils.replication_sql import Statement

MARIADB = table.MARIADB_10_5
SOURCE = SourceSettings(host="10.0.0.1", port=3306, user="repl")
REQUEST = ReplicaRequest(state="running", source=SOURCE, password="pw")
RUNNING = ReplicaStatus(source=SOURCE, io_running="Yes", sql_running="Yes", seconds_behind=0)
STOPPED = replace(RUNNING, io_running="No", sql_running="No", seconds_behind=None)
ABSENT = ReplicaStatus()


def kinds(plan) -> list[str]:
    """First word of each planned statement, e.g. ['STOP', 'CHANGE', 'START']."""
    return [statement.sql.split(" ")[0] for statement in plan.statements]


def test_status_from_a_mariadb_row():
    row = {"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Master_Host": "10.0.0.1",
           "Master_Port": 3306, "Master_User": "repl", "Seconds_Behind_Master": 0,
           "Last_IO_Errno": 0, "Last_IO_Error": "", "Last_SQL_Errno": 0, "Last_SQL_Error": "",
           "Master_SSL_Allowed": "No", "Master_SSL_CA_File": "", "Master_SSL_Cert": "",
           "Master_SSL_Key": "", "Master_SSL_Verify_Server_Cert": "No", "Using_Gtid": "Slave_Pos",
           "Gtid_IO_Pos": "0-1-5"}

    status = ReplicaStatus.from_row(row, MARIADB)

    assert status == replace(RUNNING, gtid_received="0-1-5")
    assert status.state == "running"


def test_status_from_a_mysql_8_4_row_with_tls_and_an_error():
    row = {"Replica_IO_Running": "Connecting", "Replica_SQL_Running": "Yes",
           "Source_Host": "db1", "Source_Port": "3307", "Source_User": "repl",
           "Seconds_Behind_Source": None, "Last_IO_Errno": 2003, "Last_IO_Error": "Can't connect",
           "Last_SQL_Errno": 0, "Last_SQL_Error": "", "Source_SSL_Allowed": "Yes",
           "Source_SSL_CA_File": "/ca.pem", "Source_SSL_Cert": "", "Source_SSL_Key": "",
           "Source_SSL_Verify_Server_Cert": "Yes", "Auto_Position": 1, "Retrieved_Gtid_Set": ""}

    status = ReplicaStatus.from_row(row, table.MYSQL_8_4)

    assert status.source == SourceSettings(host="db1", port=3307, user="repl", ssl=True,
                                           ssl_ca="/ca.pem", ssl_verify_server_cert=True)
    assert status.state == "running" and not status.threads_running
    assert status.errors_text() == "Last_IO_Error 2003: Can't connect"


def test_status_without_a_row_or_host_is_absent():
    assert ReplicaStatus.from_row(None, MARIADB).state == "absent"
    assert ReplicaStatus.from_row({"Master_Host": ""}, MARIADB).state == "absent"


def test_new_source_is_configured_with_password_and_started():
    plan = plan_replica(REQUEST, ABSENT, MARIADB)

    assert kinds(plan) == ["CHANGE", "START"]
    assert plan.password_updated and plan.contacts_primary
    assert plan.statements[0].args[3] == "pw"
    assert "'********'" in plan.statements[0].display()
    assert plan.diff["before"] == {"state": "absent"}
    assert plan.diff["after"]["primary_password"] == "******** (changed)"


def test_converged_replica_needs_nothing():
    plan = plan_replica(REQUEST, RUNNING, MARIADB, stored_password="pw")

    assert not plan.changed and not plan.contacts_primary
    assert plan.diff["before"] == plan.diff["after"]


def test_changed_host_stops_changes_without_password_and_starts():
    request = replace(REQUEST, source=replace(SOURCE, host="10.0.0.2"))

    plan = plan_replica(request, RUNNING, MARIADB, stored_password="pw")

    assert kinds(plan) == ["STOP", "CHANGE", "START"]
    assert "pw" not in plan.statements[1].args
    assert plan.diff["after"]["primary_host"] == "10.0.0.2"
    assert plan.diff["after"]["primary_password"] == "********"


def test_stopped_threads_are_only_started():
    assert kinds(plan_replica(REQUEST, STOPPED, MARIADB, stored_password="pw")) == ["START"]


def test_sql_thread_stopped_by_an_error_is_restarted():
    broken = replace(RUNNING, sql_running="No", last_sql_errno=1062, last_sql_error="Duplicate")

    assert kinds(plan_replica(REQUEST, broken, MARIADB, stored_password="pw")) == ["START"]


@pytest.mark.parametrize("update, stored, errno, user, expected", [
    ("always", "pw", 0, "repl", False),
    ("always", "old", 0, "repl", True),
    ("always", None, 0, "repl", False),
    ("always", None, 1045, "repl", True),
    ("always", "pw", 0, "other", True),
    ("on_create", "old", 1045, "repl", False),
])
def test_password_update_rules(update, stored, errno, user, expected):
    request = replace(REQUEST, password_update=update)
    status = replace(RUNNING, last_io_errno=errno, source=replace(SOURCE, user=user))

    assert password_needs_update(request, status, stored) is expected


def test_password_is_never_sent_when_not_given():
    assert not password_needs_update(replace(REQUEST, password=None), ABSENT, None)


def test_stopped_state_stops_running_threads_once():
    request = ReplicaRequest(state="stopped")

    assert kinds(plan_replica(request, RUNNING, MARIADB)) == ["STOP"]
    assert kinds(plan_replica(request, STOPPED, MARIADB)) == []


def test_stopped_state_with_a_new_source_configures_without_starting():
    request = replace(REQUEST, state="stopped")

    assert kinds(plan_replica(request, ABSENT, MARIADB)) == ["CHANGE"]
    assert kinds(plan_replica(request, RUNNING, MARIADB, "pw")) == ["STOP"]


def test_absent_stops_and_resets_once():
    request = ReplicaRequest(state="absent")

    plan = plan_replica(request, RUNNING, table.MYSQL_8_4)

    assert [statement.sql for statement in plan.statements] == ["STOP REPLICA", "RESET REPLICA ALL"]
    assert plan.diff["after"] == {"state": "absent"}
    assert kinds(plan_replica(request, STOPPED, MARIADB)) == ["RESET"]
    assert not plan_replica(request, ABSENT, MARIADB).changed


@pytest.mark.parametrize("seed, status, empty, expected", [
    ("auto", ABSENT, True, True),
    ("auto", ABSENT, False, False),
    ("auto", STOPPED, True, False),
    ("never", ABSENT, True, False),
])
def test_seeding_only_an_unconfigured_empty_replica(seed, status, empty, expected):
    plan = plan_replica(replace(REQUEST, seed=seed), status, MARIADB, "pw", replica_is_empty=empty)

    assert plan.seed is expected


def test_request_from_params_implies_tls_from_files():
    params = {"state": "running", "primary_host": "db1", "primary_port": 3306,
              "primary_user": "repl", "primary_password": None, "primary_ssl": False,
              "primary_ssl_ca": "/ca.pem", "primary_ssl_cert": None, "primary_ssl_key": None,
              "primary_ssl_verify_server_cert": False, "primary_password_update": "always",
              "seed": "never", "wait_for_sync": False, "timeout": 5}

    request = ReplicaRequest.from_params(params)

    assert request.source == SourceSettings(host="db1", user="repl", ssl=True, ssl_ca="/ca.pem")
    assert request.timeout == 5.0


def test_password_from_master_info():
    text = "33\n\n4\n127.0.0.1\nrepl\ns3 cret\n33061\n60\n0\n"

    assert password_from_master_info(text) == "s3 cret"
    assert password_from_master_info("binlog.000001\n4\n") is None


class FakeReplica:
    """A ReplicaServer stand-in that replays statuses and records statements."""

    sql = MARIADB
    version = "10.11.6-MariaDB"

    def __init__(self, statuses: list[ReplicaStatus], stored_password: str | None = "pw") -> None:
        self.statuses = statuses
        self.executed: list[str] = []
        self._stored_password = stored_password
        self.schemas = ["app"]

    def status(self) -> ReplicaStatus:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def stored_password(self) -> str | None:
        return self._stored_password

    def user_schemas(self) -> list[str]:
        return list(self.schemas)

    def has_user_schemas(self) -> bool:
        return bool(self.schemas)

    def executed_gtid_state(self) -> str:
        return ""

    def execute(self, statement: Statement) -> None:
        self.executed.append(statement.display())

    def applied_gtid_position(self) -> str:
        return "0-1-5"

    def wait_for_gtid(self, position: str, timeout: float) -> bool:
        return position == "0-1-5"

    def global_variables(self, names: tuple[str, ...]) -> dict[str, str]:
        return {"read_only": "ON"}


class FakePrimary:
    def __init__(self, reachable: bool = True, position: str = "0-1-5") -> None:
        self.reachable = reachable
        self.position = position

    def check_reachable(self) -> None:
        if not self.reachable:
            raise ReplicaError("Cannot reach the primary 10.0.0.1:3306 from this host")

    def gtid_position(self) -> str:
        return self.position


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def manager(replica: FakeReplica, primary: Any = None) -> tuple[ReplicaManager, FakeClock]:
    clock = FakeClock()
    return ReplicaManager(replica, primary or FakePrimary(), clock=clock, sleep=clock.sleep), clock


def test_check_mode_runs_nothing_and_predicts():
    replica = FakeReplica([ABSENT])
    result = manager(replica)[0].ensure(REQUEST, check_mode=True)

    assert result["changed"] and replica.executed == []
    assert result["commands"][0].startswith("CHANGE MASTER TO")
    assert result["read_only"] == {"read_only": True}


def test_apply_then_wait_until_threads_run():
    connecting = replace(RUNNING, io_running="Connecting")
    replica = FakeReplica([ABSENT, connecting, connecting, RUNNING])

    result = manager(replica)[0].ensure(REQUEST)

    assert result["changed"] and result["io_thread"] == "Yes"
    assert [command.split(" ")[0] for command in replica.executed] == ["CHANGE", "START"]
    assert result["commands"] == replica.executed


def test_unreachable_primary_changes_nothing():
    replica = FakeReplica([ABSENT])

    with pytest.raises(ReplicaError, match="Cannot reach the primary") as failure:
        manager(replica, FakePrimary(reachable=False))[0].ensure(REQUEST)

    assert replica.executed == []
    assert failure.value.result["changed"] is False


def test_fresh_io_error_fails_at_once_with_the_replicas_text():
    denied = replace(RUNNING, io_running="Connecting", last_io_errno=1045,
                     last_io_error="Access denied for user 'repl'@'10.0.0.2'")
    replica = FakeReplica([ABSENT, denied])
    run, clock = manager(replica)

    with pytest.raises(ReplicaError, match="Access denied for user 'repl'") as failure:
        run.ensure(REQUEST)

    assert clock.now == 0.0
    assert failure.value.result["changed"] is True
    assert failure.value.result["last_io_errno"] == 1045


def test_stale_io_error_gets_a_grace_period_to_clear():
    stale = replace(STOPPED, last_io_errno=2003, last_io_error="Can't connect")
    still_connecting = replace(stale, io_running="Connecting", sql_running="Yes")
    replica = FakeReplica([stale, still_connecting, still_connecting, RUNNING])
    run, clock = manager(replica)

    result = run.ensure(REQUEST)

    assert result["io_thread"] == "Yes" and 0 < clock.now < 3


def test_stale_io_error_that_persists_fails_after_the_grace_period():
    stale = replace(STOPPED, last_io_errno=2003, last_io_error="Can't connect")
    replica = FakeReplica([stale, replace(stale, io_running="Connecting", sql_running="Yes")])
    run, clock = manager(replica)

    with pytest.raises(ReplicaError, match="Last_IO_Error 2003: Can't connect"):
        run.ensure(REQUEST)
    assert clock.now >= 3


def test_sql_thread_that_stops_fails_with_its_error():
    broken = replace(RUNNING, sql_running="No", last_sql_errno=1062, last_sql_error="Duplicate entry")
    replica = FakeReplica([STOPPED, broken])

    with pytest.raises(ReplicaError, match="Last_SQL_Error 1062: Duplicate entry"):
        manager(replica)[0].ensure(REQUEST)


def test_threads_that_never_connect_fail_after_the_timeout():
    connecting = replace(RUNNING, io_running="Connecting")
    replica = FakeReplica([STOPPED, connecting])
    run, clock = manager(replica)

    with pytest.raises(ReplicaError, match="not running after 5.0s: IO thread Connecting"):
        run.ensure(replace(REQUEST, timeout=5.0))
    assert 5.0 <= clock.now < 6.0


def test_wait_for_sync_reports_the_position_or_fails():
    converged = manager(FakeReplica([RUNNING]))[0].ensure(replace(REQUEST, wait_for_sync=True))
    primary_ahead = FakePrimary(position="0-1-9")

    with pytest.raises(ReplicaError, match="did not reach the primary's GTID position 0-1-9"):
        manager(FakeReplica([RUNNING]), primary_ahead)[0].ensure(replace(REQUEST, wait_for_sync=True))
    assert converged["primary_gtid_position"] == "0-1-5" and not converged["changed"]


def test_seeding_planned_without_a_seeder_fails_before_any_change():
    replica = FakeReplica([ABSENT])
    replica.schemas = []

    with pytest.raises(ReplicaError, match="no seed account"):
        manager(replica)[0].ensure(replace(REQUEST, seed="auto"))
    assert replica.executed == []


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_primary_reachability_check_uses_tcp(closed_port: int):
    settings = MysqlConnectionSettings(host="127.0.0.1", port=closed_port, connect_timeout=2)

    with pytest.raises(ReplicaError, match="Cannot reach the primary 127.0.0.1:%d" % closed_port):
        PrimaryServer(settings, MARIADB).check_reachable()


# A server with data but no replication configured: a former primary joins a new one.

FORMER_PRIMARY = ServerHistory(holds_data=True, executed="0-1-50,0-2-10", originated="0-1-50",
                               binlog_ahead_of_applied=True)


def test_former_primary_adopts_its_binlog_position_before_the_source_change():
    plan = plan_replica(REQUEST, ABSENT, MARIADB, history=FORMER_PRIMARY)

    assert plan.former_primary and not plan.seed
    assert [statement.display() for statement in plan.statements][:1] == [
        "SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos"]
    assert kinds(plan) == ["SET", "CHANGE", "START"]


@pytest.mark.parametrize("history, sql", [
    (replace(FORMER_PRIMARY, binlog_ahead_of_applied=False), MARIADB),  # a former replica
    (FORMER_PRIMARY, table.MYSQL_8_4),  # auto-positioning needs no start position
])
def test_former_primary_keeps_its_start_position_when_nothing_to_adopt(history, sql):
    plan = plan_replica(REQUEST, ABSENT, sql, history=history)

    assert plan.former_primary and kinds(plan) == ["CHANGE", "START"]


@pytest.mark.parametrize("history, status, expected", [
    (ServerHistory(holds_data=True), ABSENT, False),  # data, no GTID history
    (ServerHistory(holds_data=True, executed="0-2-9"), ABSENT, False),  # a former replica
    (ServerHistory(executed="0-1-5", originated="0-1-5"), ABSENT, False),
    (FORMER_PRIMARY, STOPPED, False),  # already configured
    (None, ABSENT, False),
])
def test_only_an_unconfigured_server_with_data_and_history_is_a_former_primary(history, status, expected):
    assert plan_replica(REQUEST, status, MARIADB, "pw", history=history).former_primary is expected


@pytest.mark.parametrize("status, empty, expected", [
    (ABSENT, False, True),
    (ABSENT, True, True),
    (STOPPED, False, False),
])
def test_seed_force_seeds_any_unconfigured_server(status, empty, expected):
    plan = plan_replica(replace(REQUEST, seed="force"), status, MARIADB, "pw",
                        replica_is_empty=empty, history=FORMER_PRIMARY)

    assert plan.seed is expected and not plan.former_primary


class FormerPrimary(FakeReplica):
    """An unconfigured server (server_id 1) that holds data and its own GTID history."""

    def __init__(self, executed: str = "0-1-50", binlog: str = "0-1-50", applied: str = "") -> None:
        super().__init__([ABSENT])
        self.positions = (executed, binlog, applied)

    def query_value(self, query: str) -> str:
        assert query == MARIADB.gtid_origin
        return "1"

    def executed_gtid_state(self) -> str:
        return self.positions[0]

    def binlog_gtid_position(self) -> str:
        return self.positions[1]

    def applied_gtid_position(self) -> str:
        return self.positions[2]

    def user_schemas(self) -> list[str]:
        return ["app", "odd`name"]


class NewPrimary(FakePrimary):
    settings = MysqlConnectionSettings(host="10.0.0.1", port=3306)

    def __init__(self, executed: str = "0-1-50,0-2-60", readable: bool = True) -> None:
        super().__init__(position=executed)
        self.executed = executed
        self.readable = readable

    def executed_gtid_state(self) -> str:
        if not self.readable:
            raise ReplicaError("Cannot read the primary's GTID history: Access denied")
        return self.executed


def test_former_primary_with_errant_transactions_is_refused_naming_them():
    replica = FormerPrimary(executed="0-1-51,0-2-3")

    for check_mode in (True, False):
        with pytest.raises(ReplicaError, match=r"errant GTIDs: 0-1-51\).*seed=force") as failure:
            manager(replica, NewPrimary())[0].ensure(REQUEST, check_mode=check_mode)
        assert failure.value.result["errant_gtids"] == "0-1-51"
        assert failure.value.result["changed"] is False and failure.value.result["commands"] == []
    assert replica.executed == []


def test_former_primary_whose_history_the_primary_has_joins_from_its_own_position():
    replica = FormerPrimary()
    replica.statuses = [ABSENT, RUNNING]

    result = manager(replica, NewPrimary())[0].ensure(REQUEST)

    assert result["former_primary"] and result["changed"]
    assert replica.executed[0] == "SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos"
    assert [command.split(" ")[0] for command in replica.executed] == ["SET", "CHANGE", "START"]


def test_former_primary_is_not_joined_when_the_primary_history_is_unreadable():
    replica = FormerPrimary()

    with pytest.raises(ReplicaError, match="must be checked against the primary.*Access denied"
                                           ".*Nothing was changed"):
        manager(replica, NewPrimary(readable=False))[0].ensure(REQUEST)
    assert replica.executed == []


def seeding_manager(replica: FakeReplica, primary: Any) -> ReplicaManager:
    """A manager with a seeder, for check-mode plans that seed."""
    settings = MysqlConnectionSettings(host="10.0.0.1", user="seeder")
    clock = FakeClock()
    return ReplicaManager(replica, primary, ReplicaSeeder(MARIADB, settings, settings, 30),
                          clock=clock, sleep=clock.sleep)


def test_seed_force_check_mode_plans_to_drop_the_user_schemas_first():
    replica = FormerPrimary(executed="0-1-51")
    run = seeding_manager(replica, NewPrimary())

    result = run.ensure(replace(REQUEST, seed="force"), check_mode=True)

    assert result["changed"] and result["seeded"] and not result["former_primary"]
    assert result["commands"][:4] == ["DROP DATABASE `app`", "DROP DATABASE `odd``name`",
                                      "CREATE DATABASE IF NOT EXISTS `nospof_seed_incomplete`",
                                      "RESET MASTER"]
    assert replica.executed == []


def test_a_former_replica_that_wrote_nothing_joins_without_a_history_check():
    replica = FormerPrimary(executed="0-2-60", binlog="0-2-60", applied="0-2-60")
    replica.statuses = [ABSENT, RUNNING]

    result = manager(replica, NewPrimary(readable=False))[0].ensure(REQUEST)

    assert not result["former_primary"]
    assert [command.split(" ")[0] for command in replica.executed] == ["CHANGE", "START"]


def incomplete_seed_manager() -> tuple[FakeReplica, ReplicaManager]:
    """A server a cut-off seed left with part of the dump and the marker schema."""
    replica = FakeReplica([ABSENT])
    replica.schemas = ["app", "nospof_seed_incomplete"]
    return replica, seeding_manager(replica, FakePrimary())


def test_a_seed_that_never_finished_is_dropped_and_seeded_again():
    replica, run = incomplete_seed_manager()

    result = run.ensure(replace(REQUEST, seed="auto"), check_mode=True)

    assert result["changed"] and result["seeded"] and not result["former_primary"]
    assert result["commands"][:4] == ["DROP DATABASE `app`", "DROP DATABASE `nospof_seed_incomplete`",
                                      "CREATE DATABASE IF NOT EXISTS `nospof_seed_incomplete`",
                                      "RESET MASTER"]
    assert replica.executed == []


def test_a_seed_that_never_finished_is_not_replicated_from_without_a_seed():
    replica, run = incomplete_seed_manager()

    with pytest.raises(ReplicaError, match="holds part of a seed that never finished.*seed=auto"):
        run.ensure(replace(REQUEST, seed="never"))
    assert replica.executed == []
