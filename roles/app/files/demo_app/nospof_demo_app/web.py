"""Minimal WSGI plumbing on the standard library: requests, JSON responses, errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs

MAX_BODY_BYTES = 16 * 1024

Headers = List[Tuple[str, str]]


def is_ascii_number(text: str) -> bool:
    """Tell whether text is a non-negative integer in ASCII digits ("\u00b2".isdigit() is true too)."""
    return text.isascii() and text.isdigit()


@dataclass
class Response:
    """A status, an optional JSON body and extra headers."""

    status: int
    body: Any = None
    headers: Headers = field(default_factory=list)

    @property
    def status_line(self) -> str:
        """Return e.g. '404 Not Found'."""
        return f"{self.status} {HTTPStatus(self.status).phrase}"

    def encode(self) -> bytes:
        """Return the body as UTF-8 JSON, or b'' when there is none."""
        if self.body is None:
            return b""
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


class HttpError(Exception):
    """An error the client caused or must see; it becomes a JSON {"error": message}."""

    def __init__(self, status: int, message: str, headers: Optional[Headers] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []

    def response(self) -> Response:
        """Return the JSON error response."""
        return Response(self.status, {"error": self.message}, list(self.headers))


class Request:
    """The parts of a WSGI environ the app uses."""

    def __init__(self, environ: Dict[str, Any]) -> None:
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        self.path = str(environ.get("PATH_INFO", "") or "/")
        self.query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)

    def query_int(self, name: str, default: int, low: int, high: int) -> int:
        """Return query parameter name as an int in [low, high], default when absent."""
        values = self.query.get(name)
        if not values:
            return default
        text = values[-1].strip()
        if len(values) > 1 or not is_ascii_number(text) or not low <= int(text) <= high:
            raise HttpError(400, f"{name} must be one integer from {low} to {high}")
        return int(text)

    def read_body(self) -> bytes:
        """Return the body, sized by Content-Length or sent chunked; refuse more than MAX_BODY_BYTES."""
        length_text = str(self.environ.get("CONTENT_LENGTH", "") or "").strip()
        too_large = HttpError(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
        if not length_text and "chunked" in str(self.environ.get("HTTP_TRANSFER_ENCODING", "")).lower():
            body = self.environ["wsgi.input"].read(MAX_BODY_BYTES + 1)  # the server decodes the chunks
            if len(body) > MAX_BODY_BYTES:
                raise too_large
            return body
        if not is_ascii_number(length_text):
            raise HttpError(411, "Content-Length is required")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise too_large
        return self.environ["wsgi.input"].read(length) if length else b""

    def json_object(self) -> Dict[str, Any]:
        """Return the request body, which must be a JSON object sent as application/json."""
        media_type, *parameters = str(self.environ.get("CONTENT_TYPE", "")).split(";", 1)
        charset = "".join(parameters).strip().lower().replace(" ", "")
        if media_type.strip().lower() != "application/json":
            raise HttpError(415, "Content-Type must be application/json")
        if charset and charset not in ("charset=utf-8", "charset=utf8"):
            raise HttpError(415, "the request body must be UTF-8 JSON")
        raw = self.read_body()
        try:
            value = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            raise HttpError(400, "the request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise HttpError(400, "the request body must be a JSON object")
        return value
