"""Issue 5: scale-out. A third DB host added to the inventory seeds itself and
joins replication with no manual step, while the primary keeps taking writes."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import yaml

from lab_helpers import Lab, TrafficLoop


def sql(lab: Lab, host: str, query: str) -> str:
    return lab.exec(host, "mariadb", "-N", "-B", "-e", query).stdout.strip()


def inventory_with_extra_replica(lab: Lab, workdir: Path, name: str) -> tuple:
    """Copy the lab inventory and add one replica at the next free address."""
    source = Path(lab.inventory)
    hosts = yaml.safe_load((source / "hosts.yml").read_text())
    used = {ipaddress.ip_address(vars_["ansible_host"]) for vars_ in lab.hostvars.values()}
    address = str(max(ipaddress.ip_address(lab.address(host)) for host in lab.groups["databases"]) + 1)
    assert ipaddress.ip_address(address) not in used
    server_ids = [int(lab.hostvars[host]["mysql_server_id"]) for host in lab.groups["databases"]]
    replicas = hosts["all"]["children"]["databases"]["children"]["db_replicas"]["hosts"]
    replicas[name] = {"ansible_host": address, "mysql_server_id": max(server_ids) + 1}
    inventory = workdir / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    for vars_dir in ("group_vars", "host_vars"):
        (inventory / vars_dir).symlink_to((source / vars_dir).resolve())
    return str(inventory), address


def test_a_new_replica_seeds_and_joins_while_the_primary_takes_writes(lab: Lab, tmp_path: Path) -> None:
    primary = lab.live_primary()
    new_replica = "db9"
    inventory, _address = inventory_with_extra_replica(lab, tmp_path, new_replica)
    grown = Lab(inventory)
    try:
        grown.restore()  # starts the new host's container
        with TrafficLoop(lab) as traffic:
            converge = grown.ansible_playbook("site.yml", "--limit", "databases")
        assert converge.returncode == 0, converge.stdout[-4000:]
        assert not traffic.non_2xx and not traffic.socket_errors, (traffic.non_2xx[:3], traffic.socket_errors[:3])
        assert traffic.ok > 50, "the primary did not take writes during the scale-out"

        status = lab.engine_cmd("exec", grown.container(new_replica), "mariadb", "-e", "SHOW SLAVE STATUS\\G").stdout
        assert "Slave_IO_Running: Yes" in status and "Slave_SQL_Running: Yes" in status, status
        assert lab.engine_cmd("exec", grown.container(new_replica), "mariadb", "-N", "-e",
                              "SELECT @@read_only").stdout.strip() == "1"
        expected = sql(lab, primary, "SELECT COUNT(*), COALESCE(SUM(id), 0) FROM app.users")
        deadline = time.monotonic() + 10
        while True:
            seen = lab.engine_cmd("exec", grown.container(new_replica), "mariadb", "-N", "-B", "-e",
                                  "SELECT COUNT(*), COALESCE(SUM(id), 0) FROM app.users").stdout.strip()
            if seen == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert seen == expected, f"rows on {new_replica}: {seen}, on the primary: {expected}"

        again = grown.ansible_playbook("site.yml", "--limit", "databases")
        assert again.returncode == 0 and "changed=0" in again.stdout.split("PLAY RECAP")[-1], again.stdout[-2000:]
    finally:
        lab.engine_cmd("rm", "-f", grown.container(new_replica), check=False)
        # Scale back in: a converge with the lab's own inventory drops the
        # accounts the primary granted to the removed replica's address.
        shrink = lab.ansible_playbook("site.yml", "--limit", "databases")
        assert shrink.returncode == 0, shrink.stdout[-2000:]
