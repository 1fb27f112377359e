"""Real MariaDB servers on loopback for the mysql_replica tests, and a runner for the module."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

REPO_ROOT = Path(__file__).resolve().parents[3]
ANSIBLE = Path(sys.executable).parent / "ansible"
REPLICATION_USER = "repl"
REPLICATION_PASSWORD = "Repl-S3cret-9q"
SEED_USER = "seeder"
SEED_PASSWORD = "Seed-S3cret-7w"
# the application's account: no SUPER, so read_only stops its writes
APP_USER = "app"
APP_PASSWORD = "App-S3cret-4k"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class MariadbServer:
    """One mariadbd with its own datadir, socket and loopback port, run as root."""

    name: str
    workdir: Path
    server_id: int
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def datadir(self) -> Path:
        return self.workdir / self.name / "data"

    @property
    def socket(self) -> str:
        return str(self.workdir / self.name / "mysqld.sock")

    @property
    def error_log(self) -> Path:
        return self.workdir / self.name / "error.log"

    def install(self) -> None:
        """Create the system tables in a fresh datadir."""
        self.datadir.mkdir(parents=True)
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={self.datadir}",
             "--auth-root-authentication-method=socket", "--skip-test-db"],
            check=True, capture_output=True)

    def start(self) -> None:
        """Start mariadbd with GTID binary logging and wait until it accepts connections."""
        log = self.error_log.open("ab")
        self.process = subprocess.Popen(
            ["mariadbd", "--no-defaults", "--user=root", f"--datadir={self.datadir}",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--server-id={self.server_id}", "--log-bin=binlog", "--relay-log=relay-bin",
             "--binlog-format=ROW", "--gtid-strict-mode=1", "--log-slave-updates=1",
             "--skip-name-resolve", f"--log-error={self.error_log}",
             f"--pid-file={self.workdir / self.name / 'mysqld.pid'}",
             "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2",
             "--sync-binlog=0", "--innodb-doublewrite=0",
             # a semi-sync primary without semi-sync replicas waits this long per write, then goes async
             "--rpl-semi-sync-master-timeout=1000"],
            stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.error_log.read_text()[-2000:]}")
            try:
                self.connect().close()
                return
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Shut mariadbd down, killing it if it takes too long."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def connect(self) -> Any:
        return pymysql.connect(unix_socket=self.socket, user="root", autocommit=True,
                               cursorclass=pymysql.cursors.DictCursor, connect_timeout=5)

    def sql(self, *statements: str) -> list[dict[str, Any]]:
        """Run statements as root; return the rows of the last one."""
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def value(self, statement: str) -> Any:
        rows = self.sql(statement)
        return next(iter(rows[0].values())) if rows else None

    def replica_status(self) -> dict[str, Any] | None:
        rows = self.sql("SHOW REPLICA STATUS")
        return rows[0] if rows else None

    def reset_replication(self) -> None:
        """Back to 'no replication configured' (data and gtid_slave_pos stay)."""
        self.sql("STOP REPLICA", "RESET REPLICA ALL")


def start_primary(workdir: Path) -> MariadbServer:
    """A primary with the replication account and the dump account, and an app schema."""
    primary = MariadbServer("primary", workdir, server_id=1)
    primary.install()
    primary.start()
    primary.sql(
        f"CREATE USER '{REPLICATION_USER}'@'127.0.0.1' IDENTIFIED BY '{REPLICATION_PASSWORD}'",
        f"GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'127.0.0.1'",
        f"CREATE USER '{SEED_USER}'@'127.0.0.1' IDENTIFIED BY '{SEED_PASSWORD}'",
        f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, RELOAD, BINLOG MONITOR ON *.* "
        f"TO '{SEED_USER}'@'127.0.0.1'",
        "CREATE DATABASE app",
        "CREATE TABLE app.items (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(64))",
    )
    return primary


def start_replica(workdir: Path, name: str, server_id: int) -> MariadbServer:
    """An empty server, ready to be made a replica."""
    replica = MariadbServer(name, workdir, server_id=server_id)
    replica.install()
    replica.start()
    return replica


@dataclass
class ModuleRun:
    """One module run: its result, and everything Ansible printed."""

    result: dict[str, Any]
    output: str

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed"))

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))


def run_module(args: dict[str, Any], check: bool = False, diff: bool = False,
               module: str = "mysql_replica") -> ModuleRun:
    """Run a nospof.webstack module (mysql_replica by default) as an ad-hoc task on localhost."""
    command = [str(ANSIBLE), "localhost", "-i", "localhost,", "-c", "local",
               "-e", f"ansible_python_interpreter={sys.executable}",
               "-m", f"nospof.webstack.{module}", "-a", json.dumps(args)]
    if check:
        command.append("--check")
    if diff:
        command.append("--diff")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_NOCOLOR="1")
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True,
                               text=True, timeout=300, check=False)
    output = completed.stdout + completed.stderr
    # the json callback's document; other callbacks may print around it
    start = completed.stdout.index("\n{") + 1 if not completed.stdout.startswith("{") else 0
    document = json.JSONDecoder().raw_decode(completed.stdout[start:])[0]
    result = document["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return ModuleRun(result, output)


def replica_args(replica: MariadbServer, primary: MariadbServer, **overrides: Any) -> dict[str, Any]:
    """Module arguments that make replica replicate from primary."""
    args = {
        "login_unix_socket": replica.socket,
        "primary_host": "127.0.0.1",
        "primary_port": primary.port,
        "primary_user": REPLICATION_USER,
        "primary_password": REPLICATION_PASSWORD,
        "timeout": 20,
    }
    args.update(overrides)
    return args


class InsertLoad:
    """A thread that keeps inserting rows on the primary, and measures its longest stall."""

    def __init__(self, server: MariadbServer) -> None:
        self.server = server
        self.inserted = 0
        self.longest_gap = 0.0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        connection = self.server.connect()
        last = time.monotonic()
        try:
            with connection.cursor() as cursor:
                while not self._stop.is_set():
                    try:
                        cursor.execute("INSERT INTO app.items (note) VALUES ('during seeding')")
                        self.inserted += 1
                    except pymysql.err.MySQLError as error:
                        self.errors.append(str(error))
                    now = time.monotonic()
                    self.longest_gap = max(self.longest_gap, now - last)
                    last = now
                    time.sleep(0.002)
        finally:
            connection.close()

    def __enter__(self) -> "InsertLoad":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join(10)


def _close_quietly(connection: Any) -> None:
    """Close a connection that may already be dead."""
    if connection is not None:
        try:
            connection.close()
        except pymysql.err.Error:
            pass


class FollowingWriter:
    """A thread inserting through the app account into whichever server switch_to() named last.

    It counts the inserts each server acknowledged, and reconnects after any error.
    """

    def __init__(self, server: MariadbServer, note: str) -> None:
        self.target = server
        self.note = note
        self.committed: dict[str, int] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def switch_to(self, server: MariadbServer, note: str) -> None:
        self.target, self.note = server, note

    def wait_for_commits(self, server: MariadbServer, count: int, timeout: float = 20) -> None:
        """Block until server acknowledged count inserts of this writer."""
        deadline = time.monotonic() + timeout
        while self.committed.get(server.name, 0) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{server.name} took {self.committed} inserts in {timeout}s; "
                                     f"errors: {self.errors[-3:]}")
            time.sleep(0.05)

    def _run(self) -> None:
        connection, connected_to = None, None
        while not self._stop.is_set():
            target, note = self.target, self.note
            try:
                if connected_to is not target:
                    _close_quietly(connection)
                    connection, connected_to = None, None
                    connection = pymysql.connect(host="127.0.0.1", port=target.port, user=APP_USER,
                                                 password=APP_PASSWORD, autocommit=True,
                                                 connect_timeout=2)
                    connected_to = target
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO app.items (note) VALUES (%s)", (note,))
                self.committed[target.name] = self.committed.get(target.name, 0) + 1
            except pymysql.err.MySQLError as error:
                self.errors.append(f"{target.name}: {error}")
                _close_quietly(connection)
                connection, connected_to = None, None
                time.sleep(0.05)
            time.sleep(0.005)
        _close_quietly(connection)

    def __enter__(self) -> "FollowingWriter":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join(10)


def wait_until(condition: Any, timeout: float = 20, what: str = "condition") -> None:
    """Poll condition() until it is true, or fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def remove_workdir(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
