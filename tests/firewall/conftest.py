"""Fixtures for the firewall tests: the lab's rulesets, rendered once, and loaded into namespaces."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from firewall_helpers import (
    InventoryView,
    UPDATE_ONLY_PLAYBOOK,
    Rendered,
    Ruleset,
    SecondRenders,
    finish_render,
    lab_test_inventory,
    load_and_list,
    render,
    small_inventory_without_monitoring,
    start_render,
)


@pytest.fixture(scope="session")
def lab_rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """Render every stack host of the lab inventory (plus a test monitoring host) with connection local."""
    workdir = tmp_path_factory.mktemp("firewall-lab")
    inventory = lab_test_inventory(workdir)
    output = workdir / "rules"
    returncode, log = render(inventory, output)
    assert returncode == 0, log
    return Rendered(inventory, output, log, InventoryView.load(output / "inventory.json"))


@pytest.fixture(scope="session")
def second_renders(
    lab_rendered: Rendered, nft_in_namespaces: None, tmp_path_factory: pytest.TempPathFactory,
) -> SecondRenders:
    """Run the follow-up playbooks at once, to keep the tests quick."""
    hosts = [lab_rendered.view.hosts("databases")[0], lab_rendered.view.hosts("loadbalancers")[0]]
    workdir = tmp_path_factory.mktemp("firewall-no-monitoring")
    update_only_output = tmp_path_factory.mktemp("firewall-update-only")
    lab_again = start_render(lab_rendered.inventory, lab_rendered.output, "--limit", ",".join(hosts))
    no_monitoring = start_render(small_inventory_without_monitoring(workdir), workdir / "rules")
    # The main entry point, so: check mode, and its own network namespace, so that
    # nothing it might load could reach this machine's firewall. The second
    # database already runs the firewall (its ruleset is in place), the first not.
    # The apt and nftables.service tasks are left out: this machine is no target.
    running = lab_rendered.view.hosts("databases")[1]
    shutil.copy(lab_rendered.ruleset_file(running), update_only_output / f"{running}-nftables.conf")
    update_only = start_render(lab_rendered.inventory, update_only_output, "--check", "--skip-tags", "install,service",
                               playbook=UPDATE_ONLY_PLAYBOOK, wrapper=("unshare", "--net"))
    return SecondRenders(hosts, finish_render(lab_again), workdir / "rules", finish_render(no_monitoring),
                         update_only_output, finish_render(update_only))


@pytest.fixture(scope="session")
def nft_in_namespaces() -> None:
    """Skip, saying why, unless rules can be checked and loaded in a throwaway network namespace."""
    if os.geteuid() != 0:
        pytest.skip("needs root: nft -c and the namespaces that hold the test rules need CAP_NET_ADMIN")
    for tool, package in (("unshare", "util-linux"), ("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: apt-get install {package} (scripts/setup-host.sh installs it)")
    probe = subprocess.run(["unshare", "--net", "nft", "list", "ruleset"],
                           capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare --net cannot run nft here: {probe.stderr.strip()}")


@pytest.fixture(scope="session")
def lab_rulesets(lab_rendered: Rendered, nft_in_namespaces: None) -> dict[str, Ruleset]:
    """Each stack host's ruleset as the kernel holds it after nft -f, in its own namespace."""
    return {host: load_and_list(lab_rendered.ruleset_file(host)) for host in lab_rendered.view.stack_hosts}
