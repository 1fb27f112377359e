"""Fixtures for the demo app tests: one real mariadbd on loopback for the session."""

from __future__ import annotations

import io
import sys
from typing import Any, Callable, Iterator, List

import pytest

from demo_app_helpers import DB_NAME, DEMO_APP_DIR, MariaDB, find_binary

if str(DEMO_APP_DIR) not in sys.path:
    sys.path.insert(0, str(DEMO_APP_DIR))

# pylint: disable-next=wrong-import-position
from nospof_demo_app.app import DemoApp, create_app  # noqa: E402


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """Start one mariadbd for the whole session, with an app database and user."""
    if not find_binary("mariadbd", "mysqld"):
        pytest.skip("mariadbd is not installed (scripts/setup-host.sh installs mariadb-server)")
    server = MariaDB(tmp_path_factory.mktemp("mariadb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_app(mariadb: MariaDB) -> Iterator[Callable[..., DemoApp]]:
    """Return a factory of apps on an empty database; env overrides are keyword arguments."""
    mariadb.query(f"DROP TABLE IF EXISTS {DB_NAME}.users")
    apps: List[DemoApp] = []

    def factory(**overrides: Any) -> DemoApp:
        app = create_app(mariadb.app_env(**overrides), log_stream=io.StringIO())
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.database.close_thread_connections()


@pytest.fixture
def app(make_app: Callable[..., DemoApp]) -> DemoApp:
    """Return an app with the primary on 127.0.0.1 and one replica entry on 127.0.0.2."""
    return make_app()
