"""The users API against a real MariaDB: create, list, get, delete, and every kind of bad input."""

from __future__ import annotations

import re
from typing import Any, Dict

import pytest

from demo_app_helpers import PRIMARY_ADDRESS, REPLICA_ADDRESSES, call


def test_create_get_list_delete(app: Any, mariadb: Any) -> None:
    """A user goes through its whole life, each step answered with the right status and JSON."""
    created = call(app, "POST", "/api/users", {"name": "Ada Lovelace", "email": "ada@example.org"})
    assert created.status == 201
    user = created.json()
    assert user["name"] == "Ada Lovelace" and user["email"] == "ada@example.org"
    assert isinstance(user["id"], int) and user["id"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", user["created_at"])
    assert created.headers["location"] == f"/api/users/{user['id']}"
    assert created.headers["x-db-write-host"] == f"{PRIMARY_ADDRESS}:{mariadb.port}"

    fetched = call(app, "GET", f"/api/users/{user['id']}")
    assert fetched.status == 200 and fetched.json() == user

    second = call(app, "POST", "/api/users", {"name": "Grace Hopper"}).json()
    listed = call(app, "GET", "/api/users")
    assert listed.status == 200
    assert [entry["id"] for entry in listed.json()["users"]] == [second["id"], user["id"]]
    assert listed.json()["users"][0]["email"] is None

    deleted = call(app, "DELETE", f"/api/users/{user['id']}")
    assert deleted.status == 204 and deleted.body == b"" and "content-type" not in deleted.headers
    gone = call(app, "GET", f"/api/users/{user['id']}")
    assert gone.status == 404 and "error" in gone.json()
    assert call(app, "DELETE", f"/api/users/{user['id']}").status == 404
    assert [entry["id"] for entry in call(app, "GET", "/api/users").json()["users"]] == [second["id"]]


def test_rows_are_stored_as_sent(app: Any, mariadb: Any) -> None:
    """Names are stripped, 4-byte UTF-8 survives, and the row in the database matches the reply."""
    name = "\U0001F680" * 64
    created = call(app, "POST", "/api/users", {"name": f"  {name}  ", "email": None})
    assert created.status == 201, created.body
    rows = mariadb.query("SELECT name, email FROM demo.users WHERE id = %s", (created.json()["id"],))
    assert rows == [{"name": name, "email": None}]


def test_list_is_newest_first_with_a_limit(app: Any) -> None:
    """The list defaults to 20 entries, newest first, and ?limit= takes 1 to 100."""
    ids = [call(app, "POST", "/api/users", {"name": f"user {index}"}).json()["id"] for index in range(25)]
    newest_first = list(reversed(ids))
    assert [user["id"] for user in call(app, "GET", "/api/users").json()["users"]] == newest_first[:20]
    assert [user["id"] for user in call(app, "GET", "/api/users", query="limit=3").json()["users"]] == newest_first[:3]
    assert len(call(app, "GET", "/api/users", query="limit=100").json()["users"]) == 25


def test_chunked_body(app: Any) -> None:
    """A body sent chunked, which gunicorn decodes and passes on without Content-Length, is read."""
    reply = call(app, "POST", "/api/users", body=b'{"name": "chunked"}', content_type="application/json", content_length="",
                 extra_environ={"HTTP_TRANSFER_ENCODING": "chunked"})
    assert reply.status == 201 and reply.json()["name"] == "chunked"


def test_sql_injection_is_data(app: Any, mariadb: Any) -> None:
    """Quotes in input are stored as text: the SQL is parameterised."""
    name = "Robert'); DROP TABLE users; --"
    assert call(app, "POST", "/api/users", {"name": name}).status == 201
    assert mariadb.query("SELECT name FROM demo.users") == [{"name": name}]


BAD_REQUESTS: Dict[str, Dict[str, Any]] = {
    "missing name": {"method": "POST", "path": "/api/users", "json_body": {"email": "a@b.c"}, "status": 400},
    "null name": {"method": "POST", "path": "/api/users", "json_body": {"name": None}, "status": 400},
    "empty name": {"method": "POST", "path": "/api/users", "json_body": {"name": ""}, "status": 400},
    "blank name": {"method": "POST", "path": "/api/users", "json_body": {"name": "   "}, "status": 400},
    "name too long": {"method": "POST", "path": "/api/users", "json_body": {"name": "x" * 65}, "status": 400},
    "name not a string": {"method": "POST", "path": "/api/users", "json_body": {"name": 42}, "status": 400},
    "name a list": {"method": "POST", "path": "/api/users", "json_body": {"name": ["a"]}, "status": 400},
    "name lone surrogate": {"method": "POST", "path": "/api/users", "json_body": {"name": "a\ud800"}, "status": 400},
    "email too long": {"method": "POST", "path": "/api/users", "json_body": {"name": "a", "email": "e" * 255}, "status": 400},
    "email not a string": {"method": "POST", "path": "/api/users", "json_body": {"name": "a", "email": 5}, "status": 400},
    "json array": {"method": "POST", "path": "/api/users", "json_body": [{"name": "a"}], "status": 400},
    "json string": {"method": "POST", "path": "/api/users", "json_body": "a", "status": 400},
    "bad json": {"method": "POST", "path": "/api/users", "body": b'{"name": ', "content_type": "application/json", "status": 400},
    "not utf-8": {"method": "POST", "path": "/api/users", "body": b'{"name": "\xff"}', "content_type": "application/json", "status": 400},
    "deeply nested json": {"method": "POST", "path": "/api/users", "body": b"[" * 5000, "content_type": "application/json", "status": 400},
    "empty body": {"method": "POST", "path": "/api/users", "body": b"", "content_type": "application/json", "content_length": "0",
                   "status": 400},
    "text/plain": {"method": "POST", "path": "/api/users", "body": b'{"name": "a"}', "content_type": "text/plain", "status": 415},
    "form post": {"method": "POST", "path": "/api/users", "body": b"name=a", "content_type": "application/x-www-form-urlencoded",
                  "status": 415},
    "no content type": {"method": "POST", "path": "/api/users", "body": b'{"name": "a"}', "status": 415},
    "latin-1 charset": {"method": "POST", "path": "/api/users", "body": b'{"name": "a"}', "content_type": "application/json; charset=latin-1",
                        "status": 415},
    "no content length": {"method": "POST", "path": "/api/users", "body": b'{"name": "a"}', "content_type": "application/json",
                          "content_length": "", "status": 411},
    "chunked body too large": {"method": "POST", "path": "/api/users", "body": b'{"name": "a", "pad": "' + b"x" * 20000 + b'"}',
                               "content_type": "application/json", "content_length": "",
                               "extra_environ": {"HTTP_TRANSFER_ENCODING": "chunked"}, "status": 413},
    "bad content length": {"method": "POST", "path": "/api/users", "body": b'{"name": "a"}', "content_type": "application/json",
                           "content_length": "abc", "validate": False, "status": 411},
    "body too large": {"method": "POST", "path": "/api/users", "json_body": {"name": "a", "pad": "x" * 20000}, "status": 413},
    "unknown id": {"method": "GET", "path": "/api/users/987654321", "status": 404},
    "id zero": {"method": "GET", "path": "/api/users/0", "status": 404},
    "id beyond bigint": {"method": "GET", "path": "/api/users/9223372036854775808", "status": 404},
    "id too many digits": {"method": "GET", "path": "/api/users/12345678901234567890", "status": 404},
    "id not a number": {"method": "GET", "path": "/api/users/abc", "status": 404},
    "delete unknown id": {"method": "DELETE", "path": "/api/users/987654321", "status": 404},
    "unknown route": {"method": "GET", "path": "/api/nothing", "status": 404},
    "put on the list": {"method": "PUT", "path": "/api/users", "json_body": {"name": "a"}, "status": 405},
    "delete on the list": {"method": "DELETE", "path": "/api/users", "status": 405},
    "post on a user": {"method": "POST", "path": "/api/users/1", "json_body": {"name": "a"}, "status": 405},
    "post on healthz": {"method": "POST", "path": "/healthz", "json_body": {}, "status": 405},
    "unknown method": {"method": "BREW", "path": "/api/users", "status": 405},
    "limit zero": {"method": "GET", "path": "/api/users", "query": "limit=0", "status": 400},
    "limit above 100": {"method": "GET", "path": "/api/users", "query": "limit=101", "status": 400},
    "limit negative": {"method": "GET", "path": "/api/users", "query": "limit=-1", "status": 400},
    "limit not a number": {"method": "GET", "path": "/api/users", "query": "limit=ten", "status": 400},
    "limit superscript": {"method": "GET", "path": "/api/users", "query": "limit=%C2%B2", "status": 400},
    "limit arabic digit": {"method": "GET", "path": "/api/users", "query": "limit=%D9%A3", "status": 400},
    "superscript content length": {"method": "POST", "path": "/api/users", "body": b'{"name": "a"}', "content_type": "application/json",
                                   "content_length": "\u00b2", "validate": False, "status": 411},
    "limit twice": {"method": "GET", "path": "/api/users", "query": "limit=1&limit=2", "status": 400},
}


@pytest.mark.parametrize("case", BAD_REQUESTS.values(), ids=list(BAD_REQUESTS))
def test_bad_input_gets_a_json_4xx(app: Any, case: Dict[str, Any]) -> None:
    """Every kind of bad request is answered with its 4xx and a JSON error, never a 500."""
    case = dict(case)
    expected = case.pop("status")
    reply = call(app, case.pop("method"), case.pop("path"), **case)
    assert reply.status == expected, reply.body
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    assert isinstance(reply.json()["error"], str) and reply.json()["error"]
    assert reply.headers["x-served-by"] == "web-test-1"
    if expected == 405:
        assert "GET" in reply.headers["allow"] or "DELETE" in reply.headers["allow"]


def test_bad_input_writes_nothing(app: Any, mariadb: Any) -> None:
    """Rejected creates leave the table empty."""
    assert call(app, "GET", "/readyz").status == 200  # creates the table
    for case in BAD_REQUESTS.values():
        case = dict(case)
        case.pop("status")
        call(app, case.pop("method"), case.pop("path"), **case)
    assert mariadb.query("SELECT COUNT(*) AS n FROM demo.users") == [{"n": 0}]


def test_every_response_carries_served_by_and_release(app: Any) -> None:
    """X-Served-By and X-App-Release are on successes, errors, 204s, HEAD and OPTIONS alike."""
    user_id = call(app, "POST", "/api/users", {"name": "a"}).json()["id"]
    replies = [
        call(app, "GET", "/"),
        call(app, "GET", "/healthz"),
        call(app, "GET", "/readyz"),
        call(app, "GET", "/api/users"),
        call(app, "GET", f"/api/users/{user_id}"),
        call(app, "HEAD", "/api/users"),
        call(app, "OPTIONS", "/api/users"),
        call(app, "DELETE", f"/api/users/{user_id}"),
        call(app, "GET", "/missing"),
        call(app, "POST", "/api/users", {"name": ""}),
    ]
    assert [reply.status for reply in replies] == [200, 200, 200, 200, 200, 200, 204, 204, 404, 400]
    for reply in replies:
        assert reply.headers["x-served-by"] == "web-test-1"
        assert reply.headers["x-app-release"] == "20240101T000000-test"


def test_reads_name_the_server_that_served_them(app: Any, mariadb: Any) -> None:
    """X-DB-Read-Host is on reads (including a 404 read) and names the replica; writes do not carry it."""
    replica = f"{REPLICA_ADDRESSES[0]}:{mariadb.port}"
    created = call(app, "POST", "/api/users", {"name": "a"})
    assert "x-db-read-host" not in created.headers
    for path in ("/api/users", f"/api/users/{created.json()['id']}", "/api/users/987654321"):
        reply = call(app, "GET", path)
        assert reply.headers["x-db-read-host"] == replica
        assert reply.headers["x-db-read-role"] == "replica"
    assert "x-db-read-host" not in call(app, "GET", "/healthz").headers


def test_head_and_options(app: Any) -> None:
    """HEAD answers like GET without a body; OPTIONS lists the methods."""
    head = call(app, "HEAD", "/healthz")
    assert head.status == 200 and head.body == b"" and int(head.headers["content-length"]) > 0
    options = call(app, "OPTIONS", "/api/users")
    assert options.status == 204 and options.headers["allow"] == "GET, HEAD, OPTIONS, POST"


def test_index_and_healthz_bodies(app: Any) -> None:
    """/ names the app; /healthz reports ok and the release."""
    assert call(app, "GET", "/").json()["app"] == "nospof-demo-app"
    assert call(app, "GET", "/healthz").json() == {"status": "ok", "release": "20240101T000000-test", "served_by": "web-test-1"}


def test_one_log_line_per_request(app: Any) -> None:
    """Each request writes one line with method, path, status and milliseconds; control characters are escaped."""
    call(app, "GET", "/healthz")
    call(app, "POST", "/api/users", {"name": ""})
    call(app, "GET", "/api/users")
    call(app, "GET", "/evil\nGET /healthz 200 0.0ms")
    lines = app.log_stream.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert re.fullmatch(r"GET /healthz 200 \d+\.\dms", lines[0])
    assert re.fullmatch(r"POST /api/users 400 \d+\.\dms", lines[1])
    assert re.fullmatch(r"GET /api/users 200 \d+\.\dms db_read=127\.0\.0\.2:\d+", lines[2])
    assert lines[3].startswith("GET /evil\\nGET /healthz") and " 404 " in lines[3]
