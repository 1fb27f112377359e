"""The checkout's strategy plugin, loaded from its file as Ansible loads it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

STRATEGY = Path(__file__).resolve().parents[3] / "scripts/ansible/strategy/nospof_linear.py"


@pytest.fixture(scope="module")
def strategy():
    spec = importlib.util.spec_from_file_location("nospof_linear_under_test", STRATEGY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session", autouse=True)
def cache_home_of_this_session(tmp_path_factory):
    """The strategy keeps compiled code under XDG_CACHE_HOME (KeptResults): each
    test session starts with none, so no test reads what an earlier run kept."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))
    yield
    patch.undo()
