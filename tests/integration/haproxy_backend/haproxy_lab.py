"""A real haproxy on loopback with real HTTP servers behind it, and a runner for the module."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import yaml
from ansible_collections.nospof.webstack.plugins.module_utils.haproxy_runtime import RuntimeClient, ServerState

REPO_ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
SERVER_NAMES = ("s1", "s2", "s3")
SERVER_WEIGHTS = {"s1": 100, "s2": 50, "s3": 1}

HAPROXY_CFG = """\
global
  stats socket {workdir}/admin.sock mode 600 level admin
  stats socket {workdir}/user.sock mode 600 level user
  stats socket ipv4@127.0.0.1:{stats_port} level admin
  stats timeout 30s

defaults
  mode tcp
  timeout connect 1s
  timeout client 30s
  timeout server 30s

frontend fe
  bind 127.0.0.1:{frontend_port}
  default_backend web

backend web
  balance roundrobin
  option httpchk GET /
  default-server inter 200ms fall 2 rise 2
{web_servers}

backend static
  balance source
  server a 127.0.0.1:{static_port} check inter 200ms
"""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll condition until true; fail the test naming what did not happen."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def accepts_connections(port: int) -> bool:
    """True when something listens on 127.0.0.1:port."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class HttpServer:
    """python -m http.server in its own process, so it can be killed for real."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    def spawn(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1", "--directory", str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_ready(self) -> None:
        wait_until(lambda: accepts_connections(self.port), 10, f"http.server on port {self.port}")

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@dataclass
class Lab:
    """haproxy with backend web (s1, s2, s3 on their own HTTP servers) and backend static."""

    workdir: Path
    http: dict[str, HttpServer]
    stats_port: int = field(default_factory=free_port)
    frontend_port: int = field(default_factory=free_port)
    haproxy: subprocess.Popen | None = None

    @property
    def admin_socket(self) -> str:
        return str(self.workdir / "admin.sock")

    @property
    def user_socket(self) -> str:
        return str(self.workdir / "user.sock")

    @property
    def tcp_socket(self) -> str:
        return f"127.0.0.1:{self.stats_port}"

    def start(self) -> None:
        for server in self.http.values():
            server.spawn()
        for server in self.http.values():
            server.wait_ready()
        web_servers = "\n".join(
            f"  server {name} 127.0.0.1:{self.http[name].port} check weight {SERVER_WEIGHTS[name]}" for name in SERVER_NAMES
        )
        config = self.workdir / "haproxy.cfg"
        config.write_text(
            HAPROXY_CFG.format(
                workdir=self.workdir, stats_port=self.stats_port, frontend_port=self.frontend_port,
                web_servers=web_servers, static_port=self.http["s1"].port,
            )
        )
        log = (self.workdir / "haproxy.log").open("w")
        self.haproxy = subprocess.Popen(["haproxy", "-f", str(config), "-db"], stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._all_checked_up, 10, "haproxy with every server UP after a passed check")

    def stop(self) -> None:
        if self.haproxy and self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(5)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait(5)
        for server in self.http.values():
            server.kill()

    def _all_checked_up(self) -> bool:
        if self.haproxy.poll() is not None:
            raise AssertionError(f"haproxy exited: {(self.workdir / 'haproxy.log').read_text()}")
        if not os.path.exists(self.admin_socket):
            return False
        servers = self.client().snapshot("web").backend("web").servers
        return all(s.is_up and s.check_status == "L7OK" for s in servers)

    def client(self) -> RuntimeClient:
        return RuntimeClient(self.admin_socket, timeout=2)

    def server(self, name: str, backend: str = "web") -> ServerState:
        """The server as HAProxy reports it now, read directly from the socket."""
        return self.client().snapshot(backend).server(backend, name)

    def admin_views(self) -> dict[str, dict[str, Any]]:
        """Admin state and weight of every web server."""
        return {name: self.server(name).admin_view() for name in SERVER_NAMES}

    def open_session(self) -> tuple[socket.socket, str]:
        """Hold a TCP session through the frontend; return it and the server it landed on."""
        client = socket.create_connection(("127.0.0.1", self.frontend_port), timeout=5)
        landed: list[str] = []

        def found() -> bool:
            landed.extend(s.server for s in self.client().snapshot("web").backend("web").servers if s.sessions)
            return bool(landed)

        wait_until(found, 5, "the session to reach a server")
        return client, landed[0]


def workdir_for_sockets() -> Path:
    """A short directory: unix socket paths must stay under 108 bytes."""
    return Path(tempfile.mkdtemp(prefix="hxb-", dir="/tmp"))


@dataclass
class Step:
    """One task of the module: its arguments, and whether it runs in check mode."""

    args: dict[str, Any]
    check_mode: bool = False


def run_module(workdir: Path, *steps: Step) -> list[dict[str, Any]]:
    """Run the module as Ansible does, one task per step, and return each task's result.

    Every task has ignore_errors, so a failing step is returned like the others, and
    `duration_s` is added to each result: the task's wall time as Ansible measured it.
    """
    tasks = [
        {
            "name": f"step {index}",
            "nospof.webstack.haproxy_backend": step.args,
            "check_mode": step.check_mode,
            "diff": True,
            "ignore_errors": True,
        }
        for index, step in enumerate(steps)
    ]
    playbook = workdir / "playbook.yml"
    playbook.write_text(
        yaml.safe_dump(
            [{"hosts": "localhost", "gather_facts": False, "connection": "local",
              "vars": {"ansible_python_interpreter": sys.executable}, "tasks": tasks}],
            sort_keys=False,
        )
    )
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    completed = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(playbook)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    output = completed.stdout
    start = re.search(r"^\{$", output, re.MULTILINE)
    assert start, f"no JSON from ansible-playbook (rc {completed.returncode}):\n{output}\n{completed.stderr}"
    report = json.JSONDecoder().raw_decode(output[start.start():])[0]
    results = []
    for task in report["plays"][0]["tasks"]:
        result = task["hosts"]["localhost"]
        duration = task["task"]["duration"]
        result["duration_s"] = (_timestamp(duration["end"]) - _timestamp(duration["start"])).total_seconds()
        results.append(result)
    assert len(results) == len(steps), output
    return results


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
