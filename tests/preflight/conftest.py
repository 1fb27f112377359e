"""Fixtures for the preflight tests."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from preflight_helpers import (
    REPO_ROOT,
    ConnectionCounter,
    RunPlaybook,
    run_ansible_playbook,
)


@pytest.fixture
def run_playbook(tmp_path: Path) -> RunPlaybook:
    """Return a function that runs a playbook on an inventory dict, written to tmp_path."""
    return lambda inventory, playbook: run_ansible_playbook(
        inventory, playbook, tmp_path
    )


@pytest.fixture
def preflight_playbook() -> Path:
    """Return playbooks/preflight.yml."""
    return REPO_ROOT / "playbooks" / "preflight.yml"


@pytest.fixture
def guard_playbook() -> Path:
    """Return the test playbook that runs preflight and then pings every host."""
    return Path(__file__).resolve().parent / "guard.yml"


@pytest.fixture
def chained_playbook(guard_playbook: Path) -> Path:
    """Return a playbook that runs preflight and then contacts hosts: site.yml, else the guard."""
    site = REPO_ROOT / "site.yml"
    return site if site.exists() else guard_playbook


@pytest.fixture
def connection_counter() -> Iterator[ConnectionCounter]:
    """Return a loopback listener that counts the connections ansible makes to hosts."""
    counter = ConnectionCounter()
    yield counter
    counter.close()
