"""Make the benchmark scripts in tests/bench importable, and find the recorded outputs."""

import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def recorded():
    """The text of a recorded tool output in fixtures/."""
    return lambda name: (FIXTURES / name).read_text()
