"""Helpers for the firewall tests: a test inventory, the render run, and nft's own view of the rules."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
RENDER_PLAYBOOK = HERE / "render.yml"
UPDATE_ONLY_PLAYBOOK = HERE / "update_only.yml"
TRAFFIC_SCRIPT = HERE / "netns_traffic.py"

# What the test inventory adds to the lab: two monitoring hosts, admin networks, the
# controller's SSH_CLIENT, an extra rule, and logging on one host.
CONTROLLER = "10.89.20.1"
SSH_CLIENT = f"{CONTROLLER} 51234 22"
ADMIN_CIDRS = ["192.0.2.0/24", "2001:db8::/32"]
TEST_MONITORING_HOSTS = {"fwtest-mon1": "10.89.20.48", "fwtest-mon2": "10.89.20.49"}
EXTRA_RULE = {
    "port": [9200, 9300],
    "from_cidrs": ["203.0.113.0/24"],
    "from_groups": ["monitoring", "no_such_group"],
    "comment": "Search API from the monitoring hosts and 203.0.113.0/24",
}

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def local_connection_vars() -> dict[str, Any]:
    """Vars that keep every test host on the controller: nothing is contacted."""
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


def lab_test_inventory(workdir: Path) -> Path:
    """Copy inventories/lab and add the test's monitoring host and firewall variables."""
    inventory = workdir / "inventory"
    shutil.copytree(REPO_ROOT / "inventories" / "lab", inventory)
    additions = {
        "all": {
            "vars": {**local_connection_vars(), "firewall_admin_cidrs": ADMIN_CIDRS},
            "children": {
                "monitoring": {"hosts": {name: {"ansible_host": address} for name, address in TEST_MONITORING_HOSTS.items()}},
                "databases": {"vars": {"firewall_extra_rules": [EXTRA_RULE]}},
            },
        }
    }
    (inventory / "zz_firewall_test.yml").write_text(yaml.safe_dump(additions, sort_keys=False))
    # One host also logs what it drops, so that rule's syntax is checked too.
    web2_vars = inventory / "host_vars" / "web2.yml"
    web2 = (yaml.safe_load(web2_vars.read_text()) if web2_vars.exists() else None) or {}
    web2_vars.write_text(yaml.safe_dump({**web2, "firewall_log_dropped": True}))
    return inventory


def small_inventory_without_monitoring(workdir: Path) -> Path:
    """A stack with no monitoring group at all, written from scratch."""
    hosts = {
        "loadbalancers": {"lb1": "10.77.0.11", "lb2": "10.77.0.12"},
        "webservers": {"web1": "10.77.0.21"},
        "databases": {"db1": "10.77.0.31"},
    }
    inventory = {
        "all": {
            "vars": {**local_connection_vars(), "webstack_vip": "10.77.0.100", "firewall_admin_cidrs": ADMIN_CIDRS},
            "children": {
                group: {"hosts": {host: {"ansible_host": address} for host, address in members.items()}}
                for group, members in hosts.items()
            },
        }
    }
    path = workdir / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def start_render(
    inventory: Path, output: Path, *extra: str, playbook: Path = RENDER_PLAYBOOK, wrapper: tuple[str, ...] = (),
) -> subprocess.Popen:
    """Start the render playbook (or another test playbook) on an inventory, writing to output."""
    output.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        # Test hosts share names with the lab's: keep their facts out of the lab's fact cache.
        "ANSIBLE_CACHE_PLUGIN": "memory",
        "SSH_CLIENT": SSH_CLIENT,
    }
    return subprocess.Popen(
        [*wrapper, str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(playbook),
         "-e", f"firewall_test_output={output}", *extra],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finish_render(process: subprocess.Popen) -> tuple[int, str]:
    """Wait for a started render: its exit status and output."""
    output = process.communicate(timeout=300)[0]
    return process.returncode, output


def render(inventory: Path, output: Path, *extra: str) -> tuple[int, str]:
    """Run the render playbook and wait for it."""
    return finish_render(start_render(inventory, output, *extra))


@dataclass
class InventoryView:
    """Groups and service addresses of the rendered inventory, as the tests expect them."""

    groups: dict[str, list[str]]
    addresses: dict[str, str]
    vip: str

    @classmethod
    def load(cls, path: Path) -> "InventoryView":
        data = json.loads(path.read_text())
        # The documented rule: webstack_address, else ansible_host.
        addresses = {host: data["webstack_address"][host] or data["ansible_host"][host]
                     for host in data["groups"]["all"]}
        return cls(data["groups"], addresses, data["webstack_vip"])

    def hosts(self, group: str) -> list[str]:
        return self.groups.get(group, [])

    def addresses_of(self, *groups: str, without: str = "") -> set[Network]:
        return {ipaddress.ip_network(self.addresses[host])
                for group in groups for host in self.hosts(group) if host != without}

    @property
    def stack_hosts(self) -> list[str]:
        return sorted({host for group in ("loadbalancers", "webservers", "databases", "monitoring")
                       for host in self.hosts(group)})


@dataclass
class Rendered:
    """One run of the render playbook: where the rules went and what the inventory held."""

    inventory: Path
    output: Path
    log: str
    view: InventoryView

    def ruleset_file(self, host: str) -> Path:
        return self.output / f"{host}.nft"


@dataclass
class SecondRenders:
    """The lab rendered again for two hosts, a stack without a monitoring group, and the main entry point in
    update-only mode on hosts without the firewall: exit status and output of each."""

    lab_again_hosts: list[str]
    lab_again: tuple[int, str]
    no_monitoring_rules: Path
    no_monitoring: tuple[int, str]
    update_only_output: Path
    update_only: tuple[int, str]


ANY = "any"


@dataclass
class Rule:
    """One rule of the input chain, as nft -j lists it."""

    comment: str
    verdict: Optional[str]
    counter: bool
    sources: Optional[set[Network]] = None  # None: from anywhere
    proto: Optional[str] = None  # tcp, udp, vrrp
    ports: set[int] = field(default_factory=set)
    other_matches: list[dict] = field(default_factory=list)


def _networks(value: Any) -> set[Network]:
    """nft's JSON for an address, prefix, range or set of them, as networks."""
    if isinstance(value, str):
        return {ipaddress.ip_network(value)}
    if "prefix" in value:
        return {ipaddress.ip_network(f"{value['prefix']['addr']}/{value['prefix']['len']}")}
    if "range" in value:
        first, last = (ipaddress.ip_address(end) for end in value["range"])
        return set(ipaddress.summarize_address_range(first, last))
    if "set" in value:
        return set().union(*(_networks(element) for element in value["set"]))
    raise ValueError(f"unexpected address expression {value}")


def _ports(value: Any) -> set[int]:
    if isinstance(value, int):
        return {value}
    if isinstance(value, dict) and "set" in value:
        return set().union(*(_ports(element) for element in value["set"]))
    if isinstance(value, dict) and "range" in value:
        return set(range(value["range"][0], value["range"][1] + 1))
    raise ValueError(f"unexpected port expression {value}")


def parse_rule(rule: dict[str, Any]) -> Rule:
    parsed = Rule(comment=rule.get("comment", ""), verdict=None, counter=False)
    for expression in rule["expr"]:
        if "counter" in expression:
            parsed.counter = True
        elif "accept" in expression or "drop" in expression:
            parsed.verdict = next(iter(expression))
        elif "match" in expression:
            left, right = expression["match"]["left"], expression["match"]["right"]
            payload = left.get("payload", {}) if isinstance(left, dict) else {}
            meta = left.get("meta", {}) if isinstance(left, dict) else {}
            if payload.get("field") == "saddr" and payload.get("protocol") in ("ip", "ip6"):
                parsed.sources = _networks(right)
            elif payload.get("field") == "dport" and payload.get("protocol") in ("tcp", "udp"):
                parsed.proto, parsed.ports = payload["protocol"], _ports(right)
            elif meta.get("key") == "l4proto" and right in ("vrrp", 112):
                parsed.proto = "vrrp"
            else:
                parsed.other_matches.append(expression["match"])
        else:
            parsed.other_matches.append(expression)
    return parsed


@dataclass
class Ruleset:
    """The table as the kernel holds it after nft -f, read back with nft -j list."""

    chains: list[dict[str, Any]]
    rules: list[Rule]
    tables: list[tuple[str, str]]

    @classmethod
    def from_json(cls, text: str, table: str = "nospof") -> "Ruleset":
        items = json.loads(text)["nftables"]
        return cls(
            chains=[item["chain"] for item in items if "chain" in item and item["chain"]["table"] == table],
            rules=[parse_rule(item["rule"]) for item in items if "rule" in item and item["rule"]["table"] == table],
            tables=[(item["table"]["family"], item["table"]["name"]) for item in items if "table" in item],
        )

    def service_rules(self) -> list[Rule]:
        """Accept rules for a protocol (and ports), not the always-on loopback, conntrack and ICMP ones."""
        return [rule for rule in self.rules
                if rule.verdict == "accept" and rule.proto and not rule.other_matches]

    def sources_for(self, proto: str, port: Optional[int] = None) -> Union[set[Network], str]:
        """Who may reach proto/port: a set of networks, ANY, or an empty set."""
        found: set[Network] = set()
        for rule in self.service_rules():
            if rule.proto == proto and (port is None or port in rule.ports):
                if rule.sources is None:
                    return ANY
                found |= rule.sources
        return found

    def open_ports(self, proto: str = "tcp") -> set[int]:
        return {port for rule in self.service_rules() if rule.proto == proto for port in rule.ports}


def networks(*values: str) -> set[Network]:
    return {ipaddress.ip_network(value) for value in values}


def collapsed(sources: Union[set[Network], str]) -> Union[frozenset[Network], str]:
    """The addresses a set of networks covers, in one canonical form (.48 and .49 are 10.89.20.48/31)."""
    if sources == ANY:
        return ANY
    return frozenset(network for version in (4, 6) for network in ipaddress.collapse_addresses(
        source for source in sources if source.version == version))


def run(*command: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess:
    """Run a command; on failure the assertion shows its output."""
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=60, check=False, **kwargs)
    if check:
        assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}"
    return result


def load_and_list(*rulesets: Path, before: str = "") -> Ruleset:
    """In a throwaway network namespace: run `before`, load each file with nft -f, list the ruleset."""
    script = "set -e\n" + before + "".join(f"nft -f '{path}'\n" for path in rulesets) + "nft -j list ruleset\n"
    return Ruleset.from_json(run("unshare", "--net", "sh", "-c", script).stdout)
