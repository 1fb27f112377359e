"""Configuration of the demo app, read once from environment variables."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

DEFAULT_DB_PORT = 3306
# A deploy writes the release id here, beside the package, so that workers
# started after a release switch report the release they run.
RELEASE_FILE = Path(__file__).resolve().parent.parent / "RELEASE"


class ConfigError(ValueError):
    """The environment does not describe a usable configuration."""


@dataclass(frozen=True)
class DBEndpoint:
    """One database server address."""

    host: str
    port: int = DEFAULT_DB_PORT

    @property
    def label(self) -> str:
        """Return the address as shown in headers and logs: host, or host:port off 3306."""
        if self.port == DEFAULT_DB_PORT:
            return self.host
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class AppConfig:
    """Everything the app needs to know, see the package docstring for the variables."""

    write_endpoint: DBEndpoint
    read_endpoints: tuple[DBEndpoint, ...]
    database: str
    user: str
    password: str = field(repr=False)
    served_by: str
    release: str
    connect_timeout: float = 1.0
    query_timeout: float = 5.0
    replica_retry_after: float = 5.0

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> AppConfig:
        """Build the config from environ (default os.environ); raise ConfigError on bad values."""
        env = os.environ if environ is None else environ
        missing = [name for name in ("APP_DB_WRITE_HOST", "APP_DB_NAME", "APP_DB_USER") if not env.get(name, "").strip()]
        if missing:
            raise ConfigError(f"required environment variables are not set: {', '.join(missing)}")
        write_port = parse_port(env.get("APP_DB_WRITE_PORT", ""), "APP_DB_WRITE_PORT")
        return cls(
            write_endpoint=DBEndpoint(env["APP_DB_WRITE_HOST"].strip(), write_port),
            read_endpoints=parse_endpoints(env.get("APP_DB_READ_HOSTS", ""), "APP_DB_READ_HOSTS"),
            database=env["APP_DB_NAME"].strip(),
            user=env["APP_DB_USER"].strip(),
            password=env.get("APP_DB_PASSWORD", ""),
            served_by=header_value(env.get("APP_SERVED_BY", "").strip() or socket.gethostname(), "APP_SERVED_BY"),
            release=header_value(env.get("APP_RELEASE", "").strip() or release_from_file(), "APP_RELEASE"),
            connect_timeout=parse_seconds(env.get("APP_DB_CONNECT_TIMEOUT", ""), "APP_DB_CONNECT_TIMEOUT", 1.0),
            query_timeout=parse_seconds(env.get("APP_DB_QUERY_TIMEOUT", ""), "APP_DB_QUERY_TIMEOUT", 5.0),
            replica_retry_after=parse_seconds(
                env.get("APP_DB_REPLICA_RETRY_AFTER", ""), "APP_DB_REPLICA_RETRY_AFTER", 5.0
            ),
        )


def release_from_file(path: Path = RELEASE_FILE) -> str:
    """Return the release id the deploy recorded beside the code, or 'unknown'."""
    try:
        return path.read_text(encoding="ascii").strip() or "unknown"
    except (OSError, UnicodeDecodeError):
        return "unknown"


def header_value(text: str, variable: str) -> str:
    """Return text if it can go into an HTTP header as is: printable ASCII, at most 200 characters."""
    if not (text.isascii() and text.isprintable()) or len(text) > 200:
        raise ConfigError(f"{variable}: {text!r} must be printable ASCII, at most 200 characters")
    return text


def parse_port(text: str, variable: str, default: int = DEFAULT_DB_PORT) -> int:
    """Return text as a TCP port, default when empty."""
    text = text.strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise ConfigError(f"{variable}: {text!r} is not a TCP port (1-65535)")
    return int(text)


def parse_seconds(text: str, variable: str, default: float) -> float:
    """Return text as a positive number of seconds, default when empty."""
    text = text.strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise ConfigError(f"{variable}: {text!r} is not a number of seconds (0-3600)")
    return value


def parse_endpoint(text: str, variable: str) -> DBEndpoint:
    """Parse host, host:port, [ipv6] or [ipv6]:port."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ConfigError(f"{variable}: {text!r} is not host[:port]")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":", 1)
        if not port_text:
            raise ConfigError(f"{variable}: {text!r} has an empty port")
    if not host or any(char.isspace() or char in "/,[]" for char in host):
        raise ConfigError(f"{variable}: {text!r} is not host[:port]")
    return DBEndpoint(host, parse_port(port_text, variable))


def parse_endpoints(text: str, variable: str) -> tuple[DBEndpoint, ...]:
    """Parse a comma separated list of host[:port]; empty entries are ignored."""
    return tuple(parse_endpoint(item, variable) for item in text.split(",") if item.strip())
