"""Helpers for the demo app tests: a throwaway mariadbd on loopback and an in-process WSGI client."""

from __future__ import annotations

import getpass
import io
import json
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pymysql

REPO_ROOT = Path(__file__).resolve().parents[3]
DEMO_APP_DIR = REPO_ROOT / "roles" / "app" / "files" / "demo_app"

DB_NAME = "demo"
DB_USER = "demo"
DB_PASSWORD = "demo-Pa55"
# mariadbd listens on two loopback addresses, so two "replicas" can be told apart.
PRIMARY_ADDRESS = "127.0.0.1"
REPLICA_ADDRESSES = ("127.0.0.2", "127.0.0.3")


def free_port(address: str = "127.0.0.1") -> int:
    """Return a TCP port on which nothing listens at the moment."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def find_binary(*names: str) -> Optional[str]:
    """Return the first of names found on PATH or in /usr/sbin."""
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
        if found:
            return found
    return None


@dataclass
class MariaDB:
    """One mariadbd with its own data directory, on loopback TCP and a unix socket."""

    workdir: Path
    port: int = 0
    process: Optional[subprocess.Popen] = None

    @property
    def socket_path(self) -> Path:
        """Return the unix socket root connects through."""
        return self.workdir / "mariadbd.sock"

    @property
    def error_log(self) -> Path:
        """Return the server's error log."""
        return self.workdir / "error.log"

    def _user_option(self) -> List[str]:
        return [f"--user={getpass.getuser()}"]

    def start(self, timeout: float = 60.0) -> None:
        """Initialise the data directory, start the server, wait for it and add the app user."""
        install_db = find_binary("mariadb-install-db", "mysql_install_db")
        server = find_binary("mariadbd", "mysqld")
        if not install_db or not server:
            raise FileNotFoundError("mariadbd or mariadb-install-db not found")
        datadir = self.workdir / "data"
        common = ["--no-defaults", f"--datadir={datadir}", "--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M"]
        subprocess.run(
            [install_db, *common, *self._user_option(), "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
        )
        self.port = free_port()
        bind = ",".join((PRIMARY_ADDRESS, *REPLICA_ADDRESSES))
        self.process = subprocess.Popen(
            [
                server, *common, *self._user_option(),
                f"--socket={self.socket_path}", f"--port={self.port}", f"--bind-address={bind}",
                f"--pid-file={self.workdir / 'mariadbd.pid'}", f"--log-error={self.error_log}",
                "--skip-name-resolve", "--innodb-use-native-aio=0", "--max-connections=500",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_and_create_user(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_and_create_user(self, deadline: float) -> None:
        while True:
            try:
                with self.root() as connection, connection.cursor() as cursor:
                    cursor.execute(f"CREATE DATABASE {DB_NAME}")
                    cursor.execute(f"CREATE USER '{DB_USER}'@'%' IDENTIFIED BY '{DB_PASSWORD}'")
                    cursor.execute(f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'%'")
                return
            except pymysql.err.OperationalError:
                if self.process is None or self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd did not start:\n{self.error_log.read_text(errors='replace')}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def root(self) -> Any:
        """Return an autocommit root connection over the unix socket."""
        return pymysql.connect(unix_socket=str(self.socket_path), user="root", password="", autocommit=True)

    def query(self, sql: str, args: Any = None) -> List[Dict[str, Any]]:
        """Run one statement as root and return its rows as dicts."""
        with self.root() as connection, connection.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    def com_create_table(self) -> int:
        """Return how many CREATE TABLE statements the server has run."""
        return int(self.query("SHOW GLOBAL STATUS LIKE 'Com_create_table'")[0]["Value"])

    def app_env(self, **overrides: str) -> Dict[str, str]:
        """Return the environment the app needs for this server, with overrides."""
        env = {
            "APP_DB_WRITE_HOST": PRIMARY_ADDRESS,
            "APP_DB_WRITE_PORT": str(self.port),
            "APP_DB_READ_HOSTS": f"{REPLICA_ADDRESSES[0]}:{self.port}",
            "APP_DB_NAME": DB_NAME,
            "APP_DB_USER": DB_USER,
            "APP_DB_PASSWORD": DB_PASSWORD,
            "APP_SERVED_BY": "web-test-1",
            "APP_RELEASE": "20240101T000000-test",
        }
        env.update(overrides)
        return env


@dataclass
class Reply:
    """What the app answered."""

    status: int
    headers: Dict[str, str]
    body: bytes
    header_list: List[Any] = field(default_factory=list)

    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.body)


_NO_JSON = object()


def call(
    app: Callable[..., Any],
    method: str,
    path: str,
    json_body: Any = _NO_JSON,
    *,
    body: Optional[bytes] = None,
    query: str = "",
    content_type: Optional[str] = None,
    content_length: Optional[str] = None,
    validate: bool = True,
    extra_environ: Optional[Dict[str, str]] = None,
) -> Reply:
    """Call a WSGI app in-process, through wsgiref's validator unless validate is False."""
    data = body if body is not None else b""
    if json_body is not _NO_JSON:
        data = json.dumps(json_body).encode()
        content_type = content_type or "application/json"
    environ: Dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(data),
    }
    environ.update(extra_environ or {})
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    elif data:
        environ["CONTENT_LENGTH"] = str(len(data))
    setup_testing_defaults(environ)
    captured: Dict[str, Any] = {}

    def start_response(status: str, headers: List[Any], exc_info: Any = None) -> Callable[[bytes], None]:
        captured["status"], captured["headers"] = status, headers
        return lambda _data: None

    wrapped = validator(app) if validate else app
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the validator warns about methods it does not know
        result = wrapped(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
    headers = captured["headers"]
    return Reply(int(captured["status"].split()[0]), {name.lower(): value for name, value in headers}, payload, headers)
