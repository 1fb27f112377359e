"""Fixtures for the haproxy_backend tests: a fresh haproxy and HTTP servers for each test."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from haproxy_lab import SERVER_NAMES, HttpServer, Lab, Step, run_module, workdir_for_sockets

RunModule = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def lab() -> Iterator[Lab]:
    """haproxy on loopback with backend web: s1, s2 and s3, each a real HTTP server."""
    if not shutil.which("haproxy"):
        pytest.fail("haproxy is not installed: run scripts/setup-host.sh")
    workdir = workdir_for_sockets()
    root = workdir / "www"
    root.mkdir()
    (root / "index.html").write_text("ok\n")
    started = Lab(workdir, {name: HttpServer(root) for name in SERVER_NAMES})
    try:
        started.start()
        yield started
    finally:
        started.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def run(tmp_path: Path) -> RunModule:
    """Run module steps as Ansible tasks; each argument is a Step or a dict of module args."""

    def run_steps(*steps: Step | dict[str, Any]) -> list[dict[str, Any]]:
        return run_module(tmp_path, *(s if isinstance(s, Step) else Step(s) for s in steps))

    return run_steps


@pytest.fixture
def run_one(run: RunModule) -> Callable[..., dict[str, Any]]:
    """Run the module once and return its result."""
    return lambda args, check_mode=False: run(Step(args, check_mode))[0]
