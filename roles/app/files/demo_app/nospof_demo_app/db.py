"""Database routing: writes on the primary, reads round robin over the replicas."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generic, List, Optional, TypeVar

import pymysql
import pymysql.cursors

from .config import AppConfig, DBEndpoint

T = TypeVar("T")
Work = Callable[[Any], T]

SCHEMA_STATEMENTS = (
    """
    CREATE TABLE IF NOT EXISTS users (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
        name VARCHAR(64) NOT NULL,
        email VARCHAR(254) NULL,
        created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        PRIMARY KEY (id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
    """,
)

# Server error codes that mean "this session cannot be used", unlike a bad statement:
# too many connections, access denied, unknown database, shutdown, network errors,
# host blocked or not allowed, user limits, connection killed, idle disconnect.
SESSION_ERROR_CODES = frozenset(
    {1040, 1044, 1045, 1049, 1053, 1129, 1130, 1152, 1153, 1154, 1155, 1156, 1157, 1158, 1159, 1160, 1161, 1203, 1226, 1927, 4031}
)


class DatabaseUnavailable(Exception):
    """No database server could serve the request."""


class ServerUnreachable(Exception):
    """One server could not be connected to, or the connection broke."""


def is_connection_error(exc: pymysql.MySQLError) -> bool:
    """Tell whether exc means the connection is unusable (client errors 2xxx, session errors)."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    return isinstance(exc, pymysql.err.OperationalError) and (2000 <= code < 3000 or code in SESSION_ERROR_CODES)


@dataclass(frozen=True)
class Result(Generic[T]):
    """What a piece of work returned, and which server ran it."""

    value: T
    endpoint: DBEndpoint
    from_replica: bool


class Database:
    """Connections to the primary and the replicas, kept one per thread and server."""

    def __init__(
        self,
        config: AppConfig,
        connect: Callable[..., Any] = pymysql.connect,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._connect = connect
        self._clock = clock
        self._local = threading.local()
        self._rotation = itertools.count()
        self._lock = threading.Lock()
        self._down_until: Dict[DBEndpoint, float] = {}
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    # -- connections -----------------------------------------------------

    def open(self, endpoint: DBEndpoint, timeout: Optional[float] = None) -> Any:
        """Open a new autocommit connection to endpoint; timeout bounds connect and queries."""
        return self._connect(
            host=endpoint.host,
            port=endpoint.port,
            user=self.config.user,
            password=self.config.password,
            database=self.config.database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=timeout or self.config.connect_timeout,
            read_timeout=timeout or self.config.query_timeout,
            write_timeout=timeout or self.config.query_timeout,
            cursorclass=pymysql.cursors.DictCursor,
            init_command="SET time_zone = '+00:00'",
            # PyMySQL 1.1+ would try TLS unverified by default, and building that
            # context costs ~40 ms per connection; 1.0 (Debian 12) never does.
            ssl_disabled=True,
        )

    def _pool(self) -> Dict[DBEndpoint, Any]:
        pool = getattr(self._local, "connections", None)
        if pool is None:
            pool = self._local.connections = {}
        return pool

    def _discard(self, endpoint: DBEndpoint) -> None:
        connection = self._pool().pop(endpoint, None)
        if connection is not None:
            try:
                connection.close()
            except Exception:  # the socket is already gone; nothing to tell anyone
                pass

    def _run(self, endpoint: DBEndpoint, work: Work[T], retry_stale: bool) -> T:
        """Run work on this thread's connection to endpoint, opening one if needed.

        A kept connection may have died while idle (server restart, wait_timeout).
        With retry_stale, work that fails on a kept connection runs once more on a
        fresh one (safe only for reads); without it, a kept connection is pinged first.
        Raises ServerUnreachable when the server cannot be used.
        """
        pool = self._pool()
        connection = pool.get(endpoint)
        if connection is not None and not retry_stale:
            try:
                connection.ping(reconnect=False)
            except pymysql.MySQLError:
                self._discard(endpoint)
                connection = None
        if connection is not None:
            try:
                return run_on(connection, work)
            except ServerUnreachable:
                self._discard(endpoint)
                if not retry_stale:
                    raise
        try:
            connection = self.open(endpoint)
        except pymysql.MySQLError as exc:
            raise ServerUnreachable(describe(exc)) from exc
        pool[endpoint] = connection
        try:
            return run_on(connection, work)
        except ServerUnreachable:
            self._discard(endpoint)
            raise

    def close_thread_connections(self) -> None:
        """Close the connections this thread keeps (for tests and worker shutdown hooks)."""
        for endpoint in list(self._pool()):
            self._discard(endpoint)

    # -- replicas --------------------------------------------------------

    def _is_down(self, endpoint: DBEndpoint) -> bool:
        with self._lock:
            until = self._down_until.get(endpoint)
            if until is not None and until <= self._clock():
                del self._down_until[endpoint]
                until = None
        return until is not None

    def mark_down(self, endpoint: DBEndpoint) -> None:
        """Skip endpoint for reads for replica_retry_after seconds."""
        with self._lock:
            self._down_until[endpoint] = self._clock() + self.config.replica_retry_after

    def read_candidates(self) -> List[DBEndpoint]:
        """Return the replicas to try, in round robin order, without the ones marked down."""
        replicas = self.config.read_endpoints
        if not replicas:
            return []
        with self._lock:
            start = next(self._rotation) % len(replicas)
        ordered = replicas[start:] + replicas[:start]
        return [endpoint for endpoint in ordered if not self._is_down(endpoint)]

    # -- public API --------------------------------------------------------

    def write(self, work: Work[T]) -> Result[T]:
        """Run work on the primary, after the schema exists."""
        primary = self.config.write_endpoint
        try:
            self.ensure_schema()
            return Result(self._run(primary, work, retry_stale=False), primary, False)
        except ServerUnreachable as exc:
            raise DatabaseUnavailable(f"primary {primary.label}: {exc}") from exc

    def read(self, work: Work[T]) -> Result[T]:
        """Run work on the next replica that answers, else on the primary."""
        failures = []
        for endpoint in self.read_candidates():
            try:
                return Result(self._run(endpoint, work, retry_stale=True), endpoint, True)
            except ServerUnreachable as exc:
                self.mark_down(endpoint)
                failures.append(f"replica {endpoint.label}: {exc}")
        primary = self.config.write_endpoint
        try:
            return Result(self._run(primary, work, retry_stale=True), primary, False)
        except ServerUnreachable as exc:
            failures.append(f"primary {primary.label}: {exc}")
            raise DatabaseUnavailable("; ".join(failures)) from exc

    def ensure_schema(self, connection: Any = None) -> None:
        """Create the tables on the primary, once per process."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            if connection is None:
                self._run(self.config.write_endpoint, create_schema, retry_stale=False)
            else:
                with connection.cursor() as cursor:
                    create_schema(cursor)
            self._schema_ready = True

    def check_primary(self, timeout: float = 1.0) -> None:
        """Raise DatabaseUnavailable unless the primary answers SELECT 1 within about timeout."""
        primary = self.config.write_endpoint
        connection = None
        try:
            connection = self.open(primary, timeout=timeout)
            self.ensure_schema(connection)
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 AS ok")
                cursor.fetchall()
        except pymysql.MySQLError as exc:
            raise DatabaseUnavailable(f"primary {primary.label}: {describe(exc)}") from exc
        finally:
            if connection is not None:
                try:
                    connection.close()
                except Exception:  # closing a broken connection; the check already failed
                    pass


def run_on(connection: Any, work: Work[T]) -> T:
    """Run work with a cursor on connection; raise ServerUnreachable if the connection broke."""
    try:
        with connection.cursor() as cursor:
            return work(cursor)
    except pymysql.MySQLError as exc:
        if is_connection_error(exc):
            raise ServerUnreachable(describe(exc)) from exc
        raise


def create_schema(cursor: Any) -> None:
    """Run the CREATE TABLE IF NOT EXISTS statements."""
    for statement in SCHEMA_STATEMENTS:
        cursor.execute(statement)


def describe(exc: BaseException) -> str:
    """Return a one-line description of a pymysql error."""
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return f"({args[0]}) {args[1]}"
    return str(exc) or type(exc).__name__
