"""The WSGI application: routes, handlers and the headers every response carries."""

from __future__ import annotations

import re
import sys
import time
import traceback
from typing import Any, Callable, Dict, Iterable, List, Optional, Pattern, TextIO, Tuple

import pymysql

from . import users
from .config import AppConfig
from .db import Database, DatabaseUnavailable, Result, describe
from .web import HttpError, Request, Response

Handler = Callable[[Request, Tuple[str, ...]], Response]

MAX_ID = 2**63 - 1
READY_TIMEOUT_SECONDS = 1.0


def _log_safe(text: str, limit: int = 200) -> str:
    """Return text with control characters escaped, so one request stays one log line."""
    return text[:limit].encode("unicode_escape").decode("ascii")


class DemoApp:
    """The users API behind gunicorn; see the package docstring for the contract."""

    def __init__(self, config: AppConfig, database: Optional[Database] = None, log_stream: Optional[TextIO] = None) -> None:
        self.config = config
        self.database = database or Database(config)
        self.log_stream = log_stream
        self.routes: List[Tuple[Pattern[str], Dict[str, Handler]]] = [
            (re.compile(r"/"), {"GET": self.index}),
            (re.compile(r"/healthz"), {"GET": self.healthz}),
            (re.compile(r"/readyz"), {"GET": self.readyz}),
            (re.compile(r"/api/users/?"), {"GET": self.list_users, "POST": self.create_user}),
            (re.compile(r"/api/users/([0-9]{1,19})/?"), {"GET": self.get_user, "DELETE": self.delete_user}),
        ]

    # -- WSGI --------------------------------------------------------------

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve one request: every response is JSON (or empty) and carries X-Served-By."""
        started = time.perf_counter()
        request = Request(environ)
        response = self.respond(request)
        body = response.encode()
        headers = [
            ("X-Served-By", self.config.served_by),
            ("X-App-Release", self.config.release),
            ("Cache-Control", "no-store"),
        ]
        if body:
            headers += [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(body)))]
        headers += response.headers
        start_response(response.status_line, headers)
        self.log(request, response, (time.perf_counter() - started) * 1000)
        return [b""] if request.method == "HEAD" else [body]

    def respond(self, request: Request) -> Response:
        """Route the request and turn every failure into a JSON response."""
        try:
            return self.dispatch(request)
        except HttpError as exc:
            return exc.response()
        except DatabaseUnavailable as exc:
            self.log_error(f"database unavailable: {exc}")
            return Response(503, {"error": "database unavailable"}, [("Retry-After", "1")])
        except pymysql.MySQLError as exc:
            self.log_error(f"database error: {describe(exc)}")
            return Response(503, {"error": "database error"}, [("Retry-After", "1")])
        except Exception:  # a bug: log it in full, answer without the stack trace
            self.log_error(traceback.format_exc().rstrip())
            return Response(500, {"error": "internal error"})

    def dispatch(self, request: Request) -> Response:
        """Find the handler for the path and method."""
        for pattern, handlers in self.routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            allowed = sorted({*handlers, "OPTIONS", *(("HEAD",) if "GET" in handlers else ())})
            method = "GET" if request.method == "HEAD" else request.method
            if method == "OPTIONS":
                return Response(204, headers=[("Allow", ", ".join(allowed))])
            if method not in handlers:
                raise HttpError(405, f"method {request.method} is not allowed here", [("Allow", ", ".join(allowed))])
            return handlers[method](request, match.groups())
        raise HttpError(404, "not found")

    # -- logging -----------------------------------------------------------

    def _stream(self) -> TextIO:
        return self.log_stream or sys.stderr

    def log(self, request: Request, response: Response, elapsed_ms: float) -> None:
        """Write one line for the request: method, path, status, milliseconds."""
        read_host = dict(response.headers).get("X-DB-Read-Host")
        extra = f" db_read={read_host}" if read_host else ""
        line = f"{_log_safe(request.method, 16)} {_log_safe(request.path)} {response.status} {elapsed_ms:.1f}ms{extra}\n"
        stream = self._stream()
        stream.write(line)
        stream.flush()

    def log_error(self, message: str) -> None:
        """Write an error message, each line prefixed so it stands out from request lines."""
        stream = self._stream()
        stream.write("".join(f"ERROR {line}\n" for line in message.splitlines()))
        stream.flush()

    # -- handlers ----------------------------------------------------------

    def index(self, request: Request, args: Tuple[str, ...]) -> Response:
        """Name the app and its endpoints."""
        return Response(200, {
            "app": "nospof-demo-app",
            "release": self.config.release,
            "served_by": self.config.served_by,
            "endpoints": ["/healthz", "/readyz", "/api/users", "/api/users/<id>"],
        })

    def healthz(self, request: Request, args: Tuple[str, ...]) -> Response:
        """Liveness: the process answers; the database is not touched."""
        return Response(200, {"status": "ok", "release": self.config.release, "served_by": self.config.served_by})

    def readyz(self, request: Request, args: Tuple[str, ...]) -> Response:
        """Readiness: the primary answers SELECT 1 within about a second."""
        try:
            self.database.check_primary(READY_TIMEOUT_SECONDS)
        except DatabaseUnavailable as exc:
            return Response(503, {"status": "unavailable", "error": str(exc), "release": self.config.release})
        return Response(200, {
            "status": "ready",
            "release": self.config.release,
            "db_write_host": self.config.write_endpoint.label,
        })

    def list_users(self, request: Request, args: Tuple[str, ...]) -> Response:
        """GET /api/users?limit=N: newest first."""
        limit = request.query_int("limit", users.LIST_DEFAULT_LIMIT, 1, users.LIST_MAX_LIMIT)
        result = self.database.read(lambda cursor: users.list_newest(cursor, limit))
        return Response(200, {"users": result.value}, read_headers(result))

    def get_user(self, request: Request, args: Tuple[str, ...]) -> Response:
        """GET /api/users/<id>."""
        user_id = parse_id(args[0])
        result = self.database.read(lambda cursor: users.get(cursor, user_id))
        if result.value is None:
            return Response(404, {"error": f"user {user_id} not found"}, read_headers(result))
        return Response(200, result.value, read_headers(result))

    def create_user(self, request: Request, args: Tuple[str, ...]) -> Response:
        """POST /api/users {"name": ..., "email": ...}."""
        name, email = validate_user(request.json_object())
        result = self.database.write(lambda cursor: users.create(cursor, name, email))
        user = result.value
        return Response(201, user, [("Location", f"/api/users/{user['id']}")] + write_headers(result))

    def delete_user(self, request: Request, args: Tuple[str, ...]) -> Response:
        """DELETE /api/users/<id>."""
        user_id = parse_id(args[0])
        result = self.database.write(lambda cursor: users.delete(cursor, user_id))
        if not result.value:
            return Response(404, {"error": f"user {user_id} not found"}, write_headers(result))
        return Response(204, headers=write_headers(result))


def read_headers(result: Result[Any]) -> List[Tuple[str, str]]:
    """Return the headers that say which server served a read."""
    return [
        ("X-DB-Read-Host", result.endpoint.label),
        ("X-DB-Read-Role", "replica" if result.from_replica else "primary"),
    ]


def write_headers(result: Result[Any]) -> List[Tuple[str, str]]:
    """Return the header that says which server took a write."""
    return [("X-DB-Write-Host", result.endpoint.label)]


def parse_id(text: str) -> int:
    """Return a user id from the path; ids outside BIGINT range cannot exist."""
    user_id = int(text)
    if not 1 <= user_id <= MAX_ID:
        raise HttpError(404, f"user {text} not found")
    return user_id


def _checked_text(key: str, value: Any, max_chars: int, strip: bool = False) -> str:
    """Return value (stripped if asked) if it is a string of at most max_chars characters in UTF-8."""
    if not isinstance(value, str):
        raise HttpError(400, f"{key} must be a string")
    if strip:
        value = value.strip()
    if len(value) > max_chars:
        raise HttpError(400, f"{key} is longer than {max_chars} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise HttpError(400, f"{key} is not valid Unicode text") from None
    return value


def validate_user(body: Dict[str, Any]) -> Tuple[str, Optional[str]]:
    """Return (name, email) from a create request, or raise a 400."""
    if body.get("name") is None:
        raise HttpError(400, "name is required")
    name = _checked_text("name", body["name"], users.NAME_MAX_CHARS, strip=True)
    if not name:
        raise HttpError(400, "name must not be empty")
    email = body.get("email")
    if email is not None:
        email = _checked_text("email", email, users.EMAIL_MAX_CHARS)
    return name, email


def create_app(environ: Optional[Dict[str, str]] = None, log_stream: Optional[TextIO] = None) -> DemoApp:
    """Build the app from environment variables (default os.environ)."""
    return DemoApp(AppConfig.from_env(environ), log_stream=log_stream)
