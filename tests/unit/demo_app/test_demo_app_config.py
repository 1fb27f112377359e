"""The environment variable contract, and what the demo app may depend on (no database needed)."""

from __future__ import annotations

import ast
import importlib
import socket
import sys
from typing import Dict

import pytest

from demo_app_helpers import DEMO_APP_DIR
from nospof_demo_app.config import AppConfig, ConfigError, DBEndpoint, parse_endpoints, release_from_file

MINIMAL_ENV = {"APP_DB_WRITE_HOST": "db1", "APP_DB_NAME": "app", "APP_DB_USER": "app"}


def test_minimal_environment_and_defaults() -> None:
    """Only host, database and user are required; the rest have documented defaults."""
    config = AppConfig.from_env(MINIMAL_ENV)
    assert config.write_endpoint == DBEndpoint("db1", 3306)
    assert config.read_endpoints == ()
    assert config.password == ""
    assert config.served_by == socket.gethostname()
    assert config.release == "unknown"
    assert (config.connect_timeout, config.query_timeout, config.replica_retry_after) == (1.0, 5.0, 5.0)


def test_full_environment() -> None:
    """Every variable is read."""
    config = AppConfig.from_env({
        **MINIMAL_ENV,
        "APP_DB_WRITE_PORT": "3307",
        "APP_DB_READ_HOSTS": " db2 , db3:3308,,",
        "APP_DB_PASSWORD": " secret with spaces ",
        "APP_SERVED_BY": "web1",
        "APP_RELEASE": "20250101T120000",
        "APP_DB_CONNECT_TIMEOUT": "0.5",
        "APP_DB_QUERY_TIMEOUT": "3",
        "APP_DB_REPLICA_RETRY_AFTER": "10",
    })
    assert config.write_endpoint == DBEndpoint("db1", 3307)
    assert config.read_endpoints == (DBEndpoint("db2"), DBEndpoint("db3", 3308))
    assert config.password == " secret with spaces "
    assert (config.served_by, config.release) == ("web1", "20250101T120000")
    assert (config.connect_timeout, config.query_timeout, config.replica_retry_after) == (0.5, 3.0, 10.0)
    assert "secret" not in repr(config)


def test_endpoint_forms_and_labels() -> None:
    """host, host:port, [ipv6] and [ipv6]:port parse; labels drop the default port."""
    endpoints = parse_endpoints("db2,10.0.0.3:3307,[fd00::4],[fd00::5]:3310,fd00::6", "X")
    assert endpoints == (
        DBEndpoint("db2"), DBEndpoint("10.0.0.3", 3307), DBEndpoint("fd00::4"), DBEndpoint("fd00::5", 3310), DBEndpoint("fd00::6"),
    )
    assert [endpoint.label for endpoint in endpoints] == ["db2", "10.0.0.3:3307", "fd00::4", "[fd00::5]:3310", "fd00::6"]


def test_missing_required_variables_are_named() -> None:
    """The error names every missing variable."""
    with pytest.raises(ConfigError, match="APP_DB_WRITE_HOST, APP_DB_NAME, APP_DB_USER"):
        AppConfig.from_env({"APP_DB_WRITE_HOST": "  "})


@pytest.mark.parametrize("env", [
    {"APP_DB_WRITE_PORT": "0"},
    {"APP_DB_WRITE_PORT": "65536"},
    {"APP_DB_WRITE_PORT": "db"},
    {"APP_DB_READ_HOSTS": "db2:"},
    {"APP_DB_READ_HOSTS": "db2:x"},
    {"APP_DB_READ_HOSTS": "db2:\u00b2"},
    {"APP_DB_READ_HOSTS": "[fd00::1"},
    {"APP_DB_READ_HOSTS": "[fd00::1]x"},
    {"APP_DB_READ_HOSTS": "db 2"},
    {"APP_SERVED_BY": "web1\r\nSet-Cookie: x=1"},
    {"APP_RELEASE": "r\u00e9lease"},
    {"APP_DB_CONNECT_TIMEOUT": "0"},
    {"APP_DB_QUERY_TIMEOUT": "soon"},
    {"APP_DB_REPLICA_RETRY_AFTER": "-1"},
])
def test_malformed_values_fail_loudly(env: Dict[str, str]) -> None:
    """A malformed value raises ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=next(iter(env))):
        AppConfig.from_env({**MINIMAL_ENV, **env})


def test_wsgi_module_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """nospof_demo_app.wsgi builds application from os.environ, and refuses to load without it."""
    for name in MINIMAL_ENV:
        monkeypatch.delenv(name, raising=False)
    sys.modules.pop("nospof_demo_app.wsgi", None)
    with pytest.raises(ConfigError):
        importlib.import_module("nospof_demo_app.wsgi")
    for name, value in MINIMAL_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("APP_RELEASE", "r42")
    sys.modules.pop("nospof_demo_app.wsgi", None)
    wsgi = importlib.import_module("nospof_demo_app.wsgi")
    assert callable(wsgi.application) and wsgi.application.config.release == "r42"
    sys.modules.pop("nospof_demo_app.wsgi", None)


def test_requirements_name_only_pymysql() -> None:
    """requirements.txt lists PyMySQL and nothing else."""
    lines = (DEMO_APP_DIR / "requirements.txt").read_text().splitlines()
    assert [line.strip() for line in lines if line.strip() and not line.startswith("#")] == ["PyMySQL"]


def test_only_stdlib_and_pymysql_are_imported() -> None:
    """The package runs on Debian 12's python3 with python3-pymysql and nothing else."""
    imported = set()
    for path in (DEMO_APP_DIR / "nospof_demo_app").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) - {"__future__"} == {"pymysql"}


def test_release_comes_from_the_file_the_deploy_writes(tmp_path) -> None:
    """Without APP_RELEASE, the release id is read from RELEASE beside the package."""
    release_file = tmp_path / "RELEASE"
    assert release_from_file(release_file) == "unknown"
    release_file.write_text("3f2a9c1d0b7e\n", encoding="ascii")
    assert release_from_file(release_file) == "3f2a9c1d0b7e"
