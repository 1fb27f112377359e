"""Replica seeding: GTID position scanning, option files, and the dump | load pipe with stand-in programs."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
from ansible_collections.nospof.webstack.plugins.module_utils import replication_sql as table
from ansible_collections.nospof.webstack.plugins.module_utils.mysql_connection import (
    MysqlConnectionSettings,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replica_seed import (
    GtidPositionScanner,
    ReplicaSeeder,
    SeedError,
    option_file_text,
)
from ansible_collections.nospof.webstack.plugins.module_utils.replication_sql import Statement

PRIMARY = MysqlConnectionSettings(host="10.0.0.1", port=3306, user="seeder", password="dump-pw")
REPLICA = MysqlConnectionSettings(unix_socket="/run/mysqld/mysqld.sock", user="root")
DUMP_TEXT = (
    "-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;\n"
    "INSERT INTO t VALUES (1,'-- SET GLOBAL gtid_slave_pos=''9-9-9'';');\n"
    + "INSERT INTO t VALUES (2);\n" * 2000
    + "-- SET GLOBAL gtid_slave_pos='0-1-42';\n"
    "/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n"
)


def test_scanner_finds_the_position_across_chunk_boundaries():
    scanner = GtidPositionScanner(table.MARIADB_10_5.dump_gtid_position_pattern)
    data = DUMP_TEXT.encode()

    for start in range(0, len(data), 7):
        scanner.feed(data[start:start + 7])
    scanner.finish()

    assert scanner.position == "0-1-42"


def test_scanner_without_a_pattern_finds_nothing():
    scanner = GtidPositionScanner(table.MYSQL_8_4.dump_gtid_position_pattern)
    scanner.feed(DUMP_TEXT.encode())

    assert scanner.position is None


def test_option_file_escapes_the_password():
    assert option_file_text('a"b\\c') == '[client]\npassword="a\\"b\\\\c"\n'
    assert option_file_text(None) == "[client]\n"


MARK_STARTED = "CREATE DATABASE IF NOT EXISTS `nospof_seed_incomplete`"
MARK_FINISHED = ["SET SESSION sql_log_bin = 0", "DROP DATABASE IF EXISTS `nospof_seed_incomplete`",
                 "SET SESSION sql_log_bin = 1"]


def stand_in(tmp_path: Path, name: str, body: str) -> str:
    """An executable Python script standing in for a client program."""
    path = tmp_path / name
    path.write_text("#!%s\nimport sys, pathlib\n%s\n" % (sys.executable, body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def seeder_with(tmp_path: Path, dump_body: str, client_body: str,
                sql: table.ReplicationSql = table.MARIADB_10_5, timeout: float = 30) -> ReplicaSeeder:
    programs = {sql.dump_programs[0]: stand_in(tmp_path, "dump", dump_body),
                sql.client_programs[0]: stand_in(tmp_path, "client", client_body)}
    return ReplicaSeeder(sql, PRIMARY, REPLICA, timeout, find_program=programs.get)


DUMP_WRITES_TEXT = (
    "pathlib.Path(sys.argv[0] + '.args').write_text(' '.join(sys.argv[1:]))\n"
    "opts = [a for a in sys.argv if a.startswith('--defaults-file=')][0].split('=', 1)[1]\n"
    "pathlib.Path(sys.argv[0] + '.options').write_text(open(opts).read())\n"
    "sys.stdout.write(%r)\n" % DUMP_TEXT
)
CLIENT_SAVES_INPUT = "pathlib.Path(sys.argv[0] + '.input').write_bytes(sys.stdin.buffer.read())"


def test_seed_streams_the_dump_and_sets_the_position(tmp_path):
    seeder = seeder_with(tmp_path, DUMP_WRITES_TEXT, CLIENT_SAVES_INPUT)
    executed: list[str] = []
    ran: list[str] = []

    seeder.seed(lambda statement: executed.append(statement.display()), lambda names: {}, ran)

    loaded = (tmp_path / "client.input").read_text()
    assert loaded == "SET SESSION sql_log_bin = 0;\n" + DUMP_TEXT
    assert executed == [MARK_STARTED, "RESET MASTER", "SET GLOBAL gtid_slave_pos = '0-1-42'",
                        *MARK_FINISHED]
    assert ran[1] == "RESET MASTER" and ran[3] == "SET GLOBAL gtid_slave_pos = '0-1-42'"
    assert "| " in ran[2] and "dump-pw" not in ran[2]
    dump_args = (tmp_path / "dump.args").read_text()
    assert "--host=10.0.0.1 --port=3306 --user=seeder --skip-ssl --single-transaction" in dump_args
    assert "dump-pw" not in dump_args
    assert (tmp_path / "dump.options").read_text() == '[client]\npassword="dump-pw"\n'


def test_mysql_seed_lifts_super_read_only_and_restores_it(tmp_path):
    seeder = seeder_with(tmp_path, "sys.stdout.write('SET @@GLOBAL.GTID_PURGED=...;\\n')",
                         CLIENT_SAVES_INPUT, sql=table.MYSQL_8_4)
    executed: list[str] = []

    seeder.seed(lambda statement: executed.append(statement.display()),
                lambda names: {name: "ON" for name in names}, [])

    assert executed == ["SET GLOBAL super_read_only = OFF", MARK_STARTED, "RESET BINARY LOGS AND GTIDS",
                        *MARK_FINISHED, "SET GLOBAL super_read_only = ON"]


def test_failed_load_reports_the_clients_error_and_restores(tmp_path):
    seeder = seeder_with(tmp_path, DUMP_WRITES_TEXT,
                         "sys.stdin.read(10); sys.stderr.write('ERROR 1227: Access denied'); sys.exit(1)",
                         sql=table.MYSQL_8_0_26)
    executed: list[str] = []

    with pytest.raises(SeedError, match="the load step failed \\(exit 1\\): ERROR 1227: Access denied"):
        seeder.seed(lambda statement: executed.append(statement.display()),
                    lambda names: {"super_read_only": "ON"}, [])
    assert executed[-1] == "SET GLOBAL super_read_only = ON"


def test_failed_dump_reports_the_dump_error(tmp_path):
    seeder = seeder_with(tmp_path, "sys.stderr.write('Got error: 1045'); sys.exit(2)",
                         CLIENT_SAVES_INPUT)

    with pytest.raises(SeedError, match="the dump step failed \\(exit 2\\): Got error: 1045"):
        seeder.seed(lambda statement: None, lambda names: {}, [])


def test_dump_without_a_position_fails(tmp_path):
    seeder = seeder_with(tmp_path, "print('CREATE TABLE t (i INT);')", CLIENT_SAVES_INPUT)

    with pytest.raises(SeedError, match="states no GTID position"):
        seeder.seed(lambda statement: None, lambda names: {}, [])


def test_a_hanging_dump_is_killed_after_the_timeout(tmp_path):
    seeder = seeder_with(tmp_path, "import time; time.sleep(30)", CLIENT_SAVES_INPUT, timeout=0.5)

    with pytest.raises(SeedError, match="did not finish within 0.5s"):
        seeder.seed(lambda statement: None, lambda names: {}, [])


def test_missing_programs_name_the_package():
    seeder = ReplicaSeeder(table.MARIADB_10_5, PRIMARY, REPLICA, 30, find_program=lambda name: None)

    with pytest.raises(SeedError, match="mariadb-dump or mysqldump .*package mariadb-client"):
        seeder.seed(lambda statement: None, lambda names: {}, [])


def test_tls_options_for_the_dump():
    primary = MysqlConnectionSettings(host="db1", user="seeder", tls=True, ca_cert="/ca.pem")
    seeder = ReplicaSeeder(table.MYSQL_8_4, primary, REPLICA, 30, verify_primary_identity=True)

    command = seeder.dump_command("mysqldump", "/private/primary.cnf")

    assert command[:2] == ["mysqldump", "--defaults-file=/private/primary.cnf"]
    assert ["--ssl-mode=REQUIRED", "--ssl-ca=/ca.pem", "--ssl-mode=VERIFY_IDENTITY"] == command[5:8]


def test_planned_commands_for_check_mode():
    seeder = ReplicaSeeder(table.MARIADB_10_5, PRIMARY, REPLICA, 30)

    planned = seeder.planned_commands()

    assert planned[0] == MARK_STARTED
    assert planned[1] == Statement("RESET MASTER").display()
    assert planned[2].startswith("mariadb-dump") and " | mariadb " in planned[2]
    assert planned[3] == "SET GLOBAL gtid_slave_pos = '<GTID position from the dump>'"
    assert planned[4:] == MARK_FINISHED


def test_seed_force_drops_the_user_schemas_before_the_reset(tmp_path):
    seeder = seeder_with(tmp_path, DUMP_WRITES_TEXT, CLIENT_SAVES_INPUT, sql=table.MYSQL_8_4)
    executed: list[str] = []

    seeder.seed(lambda statement: executed.append(statement.display()),
                lambda names: {name: "ON" for name in names}, [], drop_schemas=["app", "a`b"])

    assert executed == ["SET GLOBAL super_read_only = OFF", "DROP DATABASE `app`",
                        "DROP DATABASE `a``b`", MARK_STARTED, "RESET BINARY LOGS AND GTIDS",
                        *MARK_FINISHED, "SET GLOBAL super_read_only = ON"]
    assert seeder.planned_commands(["app"])[:3] == ["DROP DATABASE `app`", MARK_STARTED,
                                                    "RESET BINARY LOGS AND GTIDS"]


def test_a_load_cut_off_leaves_the_marker_of_an_unfinished_seed(tmp_path):
    seeder = seeder_with(tmp_path, DUMP_WRITES_TEXT,
                         "sys.stdin.read(10); sys.stderr.write('ERROR 2013: Lost connection'); sys.exit(1)")
    executed: list[str] = []

    with pytest.raises(SeedError, match="ERROR 2013"):
        seeder.seed(lambda statement: executed.append(statement.display()), lambda names: {}, [])
    assert executed == [MARK_STARTED, "RESET MASTER"]
