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
