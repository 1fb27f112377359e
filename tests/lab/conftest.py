"""Tests against a running lab: NOSPOF_LAB_INVENTORY names its inventory."""

import os

import pytest

from lab_helpers import Lab


@pytest.fixture(scope="session")
def lab() -> Lab:
    inventory = os.environ.get("NOSPOF_LAB_INVENTORY")
    if not inventory:
        pytest.skip("NOSPOF_LAB_INVENTORY is not set: these tests run from Molecule verify against a lab")
    return Lab(inventory)
