"""Read/write split, replica fallback and round robin, liveness against readiness, schema creation."""

from __future__ import annotations

import collections
import io
import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pymysql

from demo_app_helpers import PRIMARY_ADDRESS, REPLICA_ADDRESSES, call, free_port
from nospof_demo_app.app import DemoApp
from nospof_demo_app.config import AppConfig
from nospof_demo_app.db import Database, is_connection_error


class CountingConnect:
    """pymysql.connect that records every host:port it is asked to connect to."""

    def __init__(self) -> None:
        self.attempts: List[str] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.attempts.append(f"{kwargs['host']}:{kwargs['port']}")
        return pymysql.connect(**kwargs)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def instrumented_app(env: Dict[str, str], connect: CountingConnect, clock: Optional[Callable[[], float]] = None) -> DemoApp:
    """Return an app whose database layer records its connection attempts."""
    config = AppConfig.from_env(env)
    return DemoApp(config, Database(config, connect=connect, clock=clock or FakeClock()), log_stream=io.StringIO())


def test_connection_errors_are_told_from_statement_errors() -> None:
    """Lost or refused sessions count as a server that does not answer; a bad statement does not."""
    err = pymysql.err
    assert is_connection_error(err.OperationalError(2003, "Can't connect"))
    assert is_connection_error(err.OperationalError(2013, "Lost connection to MySQL server during query"))
    assert is_connection_error(err.OperationalError(1045, "Access denied"))
    assert is_connection_error(err.OperationalError(1927, "Connection was killed"))
    assert is_connection_error(err.InterfaceError(0, ""))
    assert not is_connection_error(err.OperationalError(1054, "Unknown column"))
    assert not is_connection_error(err.OperationalError(1213, "Deadlock found"))
    assert not is_connection_error(err.ProgrammingError(1146, "Table doesn't exist"))
    assert not is_connection_error(err.IntegrityError(1062, "Duplicate entry"))


def test_writes_go_to_the_primary_and_reads_to_the_replica(mariadb: Any, make_app: Any) -> None:
    """A create connects only to the primary; the read after it only to the replica."""
    make_app()  # only to start from an empty database
    connect = CountingConnect()
    app = instrumented_app(mariadb.app_env(), connect)
    created = call(app, "POST", "/api/users", {"name": "split"})
    assert created.status == 201
    assert connect.attempts == [f"{PRIMARY_ADDRESS}:{mariadb.port}"]
    fetched = call(app, "GET", f"/api/users/{created.json()['id']}")
    assert fetched.status == 200
    assert connect.attempts[1:] == [f"{REPLICA_ADDRESSES[0]}:{mariadb.port}"]
    assert fetched.headers["x-db-read-host"] == f"{REPLICA_ADDRESSES[0]}:{mariadb.port}"


def test_reads_fall_back_to_the_primary_when_the_replica_is_down(mariadb: Any, make_app: Any) -> None:
    """With the only replica on a closed port, reads are served by the primary and say so."""
    closed = free_port()
    app = make_app(APP_DB_READ_HOSTS=f"{PRIMARY_ADDRESS}:{closed}")
    user_id = call(app, "POST", "/api/users", {"name": "fallback"}).json()["id"]
    for path in ("/api/users", f"/api/users/{user_id}"):
        reply = call(app, "GET", path)
        assert reply.status == 200
        assert reply.headers["x-db-read-host"] == f"{PRIMARY_ADDRESS}:{mariadb.port}"
        assert reply.headers["x-db-read-role"] == "primary"


def test_a_failed_replica_is_skipped_for_a_while(mariadb: Any, make_app: Any) -> None:
    """After a failed connect the replica is not tried again until the retry delay has passed."""
    closed = f"{PRIMARY_ADDRESS}:{free_port()}"
    make_app()
    connect, clock = CountingConnect(), FakeClock()
    app = instrumented_app(mariadb.app_env(APP_DB_READ_HOSTS=closed, APP_DB_REPLICA_RETRY_AFTER="5"), connect, clock)
    for attempt in range(3):
        assert call(app, "GET", "/api/users").status == 200
    assert connect.attempts.count(closed) == 1
    clock.now += 4.9
    assert call(app, "GET", "/api/users").status == 200
    assert connect.attempts.count(closed) == 1
    clock.now += 0.2
    assert call(app, "GET", "/api/users").status == 200
    assert connect.attempts.count(closed) == 2


def test_round_robin_across_two_replicas(mariadb: Any, make_app: Any) -> None:
    """Reads alternate between the two replica entries and never touch the primary."""
    replicas = [f"{address}:{mariadb.port}" for address in REPLICA_ADDRESSES]
    app = make_app(APP_DB_READ_HOSTS=",".join(replicas))
    call(app, "POST", "/api/users", {"name": "rr"})
    served = [call(app, "GET", "/api/users").headers["x-db-read-host"] for request_number in range(8)]
    assert collections.Counter(served) == {replicas[0]: 4, replicas[1]: 4}
    assert all(first != second for first, second in zip(served, served[1:]))


def test_round_robin_skips_a_dead_replica(mariadb: Any, make_app: Any) -> None:
    """With one of two replicas down, every read lands on the live one."""
    live = f"{REPLICA_ADDRESSES[0]}:{mariadb.port}"
    app = make_app(APP_DB_READ_HOSTS=f"{PRIMARY_ADDRESS}:{free_port()},{live}")
    served = [call(app, "GET", "/api/users") for request_number in range(6)]
    assert all(reply.status == 200 for reply in served)
    assert {reply.headers["x-db-read-host"] for reply in served} == {live}


def test_without_replicas_reads_use_the_primary(mariadb: Any, make_app: Any) -> None:
    """An empty APP_DB_READ_HOSTS sends reads to the primary."""
    reply = call(make_app(APP_DB_READ_HOSTS=""), "GET", "/api/users")
    assert reply.status == 200 and reply.headers["x-db-read-role"] == "primary"


def test_replica_reads_work_while_the_primary_is_down(mariadb: Any, make_app: Any) -> None:
    """Reads need no primary: before the table exists they answer empty, not with an error."""
    app = make_app(APP_DB_WRITE_PORT=str(free_port()))
    listed = call(app, "GET", "/api/users")
    assert listed.status == 200 and listed.json() == {"users": []}
    assert listed.headers["x-db-read-role"] == "replica"
    assert call(app, "GET", "/api/users/1").status == 404
    assert call(app, "POST", "/api/users", {"name": "x"}).status == 503


def test_liveness_does_not_touch_the_database(mariadb: Any, make_app: Any) -> None:
    """/healthz is 200 with every database down, and makes no connection attempt."""
    down = str(free_port())
    connect = CountingConnect()
    app = instrumented_app(mariadb.app_env(APP_DB_WRITE_PORT=down, APP_DB_READ_HOSTS=f"{PRIMARY_ADDRESS}:{down}"), connect)
    reply = call(app, "GET", "/healthz")
    assert reply.status == 200 and reply.json()["status"] == "ok"
    assert reply.json()["release"] == "20240101T000000-test"
    assert connect.attempts == []


def test_readiness_follows_the_primary(mariadb: Any, make_app: Any) -> None:
    """/readyz is 200 when the primary answers and 503 with the reason when it does not."""
    ready = call(make_app(), "GET", "/readyz")
    assert ready.status == 200 and ready.json()["status"] == "ready"
    down_port = free_port()
    not_ready = call(make_app(APP_DB_WRITE_PORT=str(down_port)), "GET", "/readyz")
    assert not_ready.status == 503
    assert not_ready.json()["status"] == "unavailable"
    assert f"{PRIMARY_ADDRESS}:{down_port}" in not_ready.json()["error"]


def test_database_down_gets_a_json_503(mariadb: Any, make_app: Any) -> None:
    """With no database at all, API calls get 503 JSON without internals; the log has the detail."""
    down = str(free_port())
    app = make_app(APP_DB_WRITE_PORT=down, APP_DB_READ_HOSTS=f"{PRIMARY_ADDRESS}:{down}")
    for method, path, body in (("POST", "/api/users", {"name": "a"}), ("GET", "/api/users", None),
                               ("GET", "/api/users/1", None), ("DELETE", "/api/users/1", None)):
        reply = call(app, method, path) if body is None else call(app, method, path, body)
        assert reply.status == 503
        assert reply.json() == {"error": "database unavailable"}
        assert reply.headers["x-served-by"] == "web-test-1"
    assert "Can't connect" in app.log_stream.getvalue()
    assert "Traceback" not in app.log_stream.getvalue()


def test_a_database_error_gets_a_json_503(mariadb: Any, make_app: Any) -> None:
    """A statement the server rejects (here: a foreign users table) is a 503 JSON, logged, not a 500."""
    app = make_app()
    mariadb.query("CREATE TABLE demo.users (id INT PRIMARY KEY)")
    reply = call(app, "POST", "/api/users", {"name": "a"})
    assert reply.status == 503 and reply.json() == {"error": "database error"}
    assert "Unknown column" in app.log_stream.getvalue()


def test_schema_is_created_once_per_process(mariadb: Any, make_app: Any) -> None:
    """Many concurrent first requests run CREATE TABLE once; a second web node runs it once more."""
    before = mariadb.com_create_table()
    app = make_app()

    def first_requests(index: int) -> int:
        if index % 3 == 0:
            return call(app, "GET", "/readyz").status
        return call(app, "POST", "/api/users", {"name": f"n{index}"}).status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(first_requests, range(24)))
    assert set(statuses) == {200, 201}
    assert mariadb.com_create_table() - before == 1
    second = make_app(APP_SERVED_BY="web-test-2")
    assert call(second, "POST", "/api/users", {"name": "second node"}).status == 201
    assert call(second, "POST", "/api/users", {"name": "again"}).status == 201
    assert mariadb.com_create_table() - before == 2
    assert len(call(app, "GET", "/api/users", query="limit=100").json()["users"]) == 18


def test_web_nodes_starting_together(mariadb: Any, make_app: Any) -> None:
    """Several apps creating the schema at the same moment all succeed."""
    apps = [make_app(APP_SERVED_BY=f"web{index}") for index in range(4)]
    barrier = threading.Barrier(len(apps))

    def create(app: DemoApp) -> int:
        barrier.wait()
        status = call(app, "POST", "/api/users", {"name": "together"}).status
        app.database.close_thread_connections()
        return status

    with ThreadPoolExecutor(max_workers=len(apps)) as pool:
        assert list(pool.map(create, apps)) == [201] * len(apps)


def test_kept_connections_survive_a_server_side_kill(mariadb: Any, make_app: Any) -> None:
    """When the server drops the app's idle connections, the next write and read still succeed."""
    app = make_app()
    assert call(app, "POST", "/api/users", {"name": "before"}).status == 201
    assert call(app, "GET", "/api/users").status == 200
    for row in mariadb.query("SELECT id FROM information_schema.processlist WHERE user = 'demo'"):
        mariadb.query(f"KILL CONNECTION {int(row['id'])}")
    assert call(app, "POST", "/api/users", {"name": "after"}).status == 201
    reply = call(app, "GET", "/api/users")
    assert reply.status == 200 and reply.headers["x-db-read-role"] == "replica"
    assert [user["name"] for user in reply.json()["users"]] == ["after", "before"]


class QuietHandler(WSGIRequestHandler):
    """wsgiref's handler without its access log on stderr."""

    def log_message(self, *args: Any) -> None:  # pylint: disable=arguments-differ
        pass


def test_over_real_http(app: Any) -> None:
    """Through a real HTTP server on loopback the API behaves the same."""
    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        request = urllib.request.Request(
            f"{base}/api/users", data=json.dumps({"name": "http"}).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
            user_id = json.load(response)["id"]
        with urllib.request.urlopen(f"{base}/api/users/{user_id}", timeout=10) as response:
            assert response.headers["X-Served-By"] == "web-test-1"
            assert response.headers["X-DB-Read-Host"].startswith(REPLICA_ADDRESSES[0])
        try:
            bad = urllib.request.Request(f"{base}/api/users", data=b"{", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(bad, timeout=10):
                pass
        except urllib.error.HTTPError as error:
            assert error.code == 400 and json.load(error)["error"]
            assert error.headers["X-Served-By"] == "web-test-1"
        else:
            raise AssertionError("bad JSON was accepted")
    finally:
        server.shutdown()
        server.server_close()
