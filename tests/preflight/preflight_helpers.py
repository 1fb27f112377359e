"""Helpers for the preflight tests: a good inventory to break, and a playbook runner."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

# Distinctive values, so a leak into the output is easy to spot.
SECRETS = {
    "mysql_replication_password": "S3cr3t-repl-XYZ",
    "mysql_app_password": "S3cr3t-app-XYZ",
    "mysql_monitor_password": "S3cr3t-mon-XYZ",
    "haproxy_stats_password": "S3cr3t-stats-XYZ",
}

# Test traffic may only go to loopback: every host is 127.0.0.1:9 over ssh, where
# nothing listens, or a ConnectionCounter's port, so any real connection fails as
# UNREACHABLE. The service addresses (webstack_address) are never contacted.
CONNECTION_VARS = {
    "ansible_host": "127.0.0.1",
    "ansible_port": 9,
    "ansible_connection": "ssh",
}


class VaultedString(str):
    """A value written to the inventory as an ansible-vault encrypted string."""


def vaulted(value: str, password: str = "not-given-to-ansible") -> VaultedString:
    """Return value encrypted with a vault password that the test runs never pass on."""
    vault = VaultLib([("default", VaultSecret(password.encode()))])
    return VaultedString(vault.encrypt(value).decode())


yaml.SafeDumper.add_representer(
    VaultedString,
    lambda dumper, value: dumper.represent_scalar("!vault", str(value), style="|"),
)


def loopback_host(address: str, **host_vars: Any) -> dict[str, Any]:
    """Return the vars of a host that ansible can only try to reach on loopback."""
    return {**CONNECTION_VARS, "webstack_address": address, **host_vars}


_GOOD_INVENTORY: dict[str, Any] = {
    "all": {
        "vars": {
            "webstack_vip": "10.99.0.10",
            "webstack_lb_network": "10.99.0.0/24",
            "mysql_flavor": "mariadb",
            **SECRETS,
        },
        "children": {
            "loadbalancers": {
                "hosts": {
                    "lb1": loopback_host("10.99.0.11", keepalived_priority=150),
                    "lb2": loopback_host("10.99.0.12", keepalived_priority=100),
                },
            },
            "webservers": {
                "hosts": {
                    "web1": loopback_host("10.99.1.21", haproxy_backend_weight=100),
                    "web2": loopback_host("10.99.1.22", haproxy_backend_weight=50),
                },
            },
            "databases": {
                "children": {
                    "db_primary": {
                        "hosts": {
                            "db1": loopback_host("10.99.2.31", mysql_server_id=1)
                        },
                    },
                    "db_replicas": {
                        "hosts": {
                            "db2": loopback_host("10.99.2.32", mysql_server_id=2),
                            "db3": loopback_host("10.99.2.33", mysql_server_id=3),
                        },
                    },
                },
            },
        },
    },
}


def good_inventory() -> dict[str, Any]:
    """Return a fresh copy of the valid inventory that every bad case mutates."""
    return copy.deepcopy(_GOOD_INVENTORY)


def site_vars(inventory: dict[str, Any]) -> dict[str, Any]:
    """Return the site-wide variables (all.vars) of a test inventory."""
    return inventory["all"]["vars"]


def hosts_of(inventory: dict[str, Any], group: str) -> dict[str, Any]:
    """Return the hosts dict of a group of a test inventory."""
    children = inventory["all"]["children"]
    if group in ("db_primary", "db_replicas"):
        children = children["databases"]["children"]
    return children[group].setdefault("hosts", {})


def _groups(group: dict[str, Any]):
    """Yield a group and, depth first, every group below it."""
    yield group
    for child in (group.get("children") or {}).values():
        yield from _groups(child or {})


def _all_host_vars(inventory: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Merge the vars of every host listed anywhere in the inventory, by host name."""
    found: dict[str, dict[str, Any]] = {}
    for group in _groups(inventory["all"]):
        for name, host_vars in (group.get("hosts") or {}).items():
            found.setdefault(name, {}).update(host_vars or {})
    return found


def assert_loopback_only(inventory: dict[str, Any]) -> None:
    """Refuse an inventory in which ansible could try to reach anything but loopback."""
    for name, host_vars in _all_host_vars(inventory).items():
        for key in ("ansible_host", "ansible_connection"):
            assert (
                host_vars.get(key) == CONNECTION_VARS[key]
            ), f"test host {name} must set {key}: {CONNECTION_VARS[key]}"
        assert isinstance(
            host_vars.get("ansible_port"), int
        ), f"test host {name} must set ansible_port"


class ConnectionCounter:
    """A TCP listener on loopback that counts and drops every connection made to it."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._count, daemon=True).start()

    def _count(self) -> None:
        while True:
            try:
                connection = self._socket.accept()[0]
            except OSError:
                return
            self.connections += 1
            connection.close()

    def point_hosts_here(self, inventory: dict[str, Any]) -> None:
        """Make every host of the inventory ansible's ssh target on this listener."""
        for group in _groups(inventory["all"]):
            for host_vars in (group.get("hosts") or {}).values():
                if host_vars is not None:
                    host_vars["ansible_port"] = self.port

    def close(self) -> None:
        self._socket.close()


@dataclass
class PlaybookRun:
    """Outcome of one ansible-playbook run."""

    rc: int
    output: str

    @property
    def flat_output(self) -> str:
        """Output with whitespace runs collapsed, as ansible may wrap long messages."""
        return " ".join(self.output.split())


RunPlaybook = Callable[[dict[str, Any], Path], PlaybookRun]


def run_ansible_playbook(
    inventory: dict[str, Any], playbook: Path, workdir: Path
) -> PlaybookRun:
    """Write the inventory to YAML in workdir and run the playbook on it from the repo root."""
    assert_loopback_only(inventory)
    inventory_file = workdir / "inventory.yml"
    inventory_file.write_text(yaml.safe_dump(inventory, sort_keys=False))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_TIMEOUT": "5",
    }
    completed = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory_file), str(playbook)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return PlaybookRun(completed.returncode, completed.stdout + completed.stderr)
