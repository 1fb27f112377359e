"""Fixtures for the mysql_replica tests: a MariaDB primary and replica on loopback, shared per module."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from mariadb_lab import MariadbServer, remove_workdir, start_primary, start_replica


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A short private directory for datadirs and sockets (socket paths must stay short)."""
    for program in ("mariadbd", "mariadb-install-db", "mariadb-dump", "mariadb"):
        if not shutil.which(program):
            pytest.fail(f"{program} is not installed: run scripts/setup-host.sh")
    path = Path(tempfile.mkdtemp(prefix="nospof-mariadb-"))
    try:
        yield path
    finally:
        remove_workdir(path)


@pytest.fixture(scope="module")
def primary(workdir: Path) -> Iterator[MariadbServer]:
    """The primary: server_id 1, replication and seed accounts, an app.items table."""
    server = start_primary(workdir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def replica_server(workdir: Path, primary: MariadbServer) -> Iterator[MariadbServer]:
    """The replica: server_id 2, started empty; tests share it."""
    server = start_replica(workdir, "replica", server_id=2)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def replica(replica_server: MariadbServer) -> MariadbServer:
    """The shared replica with no replication configured (its data stays)."""
    replica_server.reset_replication()
    return replica_server
