"""Fixtures for the monitoring tests: the tools, and the templates rendered with default and lab intervals."""

from __future__ import annotations

from pathlib import Path

import pytest
from monitoring_helpers import (
    LAB_SHORT_INTERVALS,
    Rendered,
    ToolsUnavailable,
    render_templates,
    role_defaults,
    unpack_tools,
)


@pytest.fixture(scope="session")
def tools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """promtool, amtool and prometheus-blackbox-exporter, unpacked from Debian's packages into a temp dir."""
    try:
        return unpack_tools(tmp_path_factory.mktemp("monitoring-tools"))
    except ToolsUnavailable as error:
        pytest.skip(f"cannot get promtool and amtool from Debian's packages: {error}")


@pytest.fixture(scope="session")
def lab_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the lab CA the haproxy role generates: the configurations only name its path."""
    ca_file = tmp_path_factory.mktemp("lab-ca") / "ca.crt"
    ca_file.write_text("placeholder for the lab CA certificate\n")
    return ca_file


@pytest.fixture(scope="session", params=["defaults", "lab-short-intervals"])
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, lab_ca: Path) -> Rendered:
    """Both roles' templates for the lab inventory plus mon1: with the defaults, and with the lab's short intervals."""
    if request.param == "lab-short-intervals":
        overrides = LAB_SHORT_INTERVALS
    else:
        # The lab inventory sets short intervals itself; put the role's defaults back.
        defaults = role_defaults()
        overrides = {name: defaults[name] for name in LAB_SHORT_INTERVALS}
    return render_templates(tmp_path_factory.mktemp(f"rendered-{request.param}"), lab_ca, overrides)
