"""Footprint benchmark: resident memory of every daemon of the stack, per host and per tier.

Usage: python tests/bench/footprint.py --inventory <lab inventory> [--output artifacts/bench/footprint.json]

For every host's container, each process's VmRSS (/proc/<pid>/status) and Pss
(/proc/<pid>/smaps_rollup) is read on the machine running the lab, and summed per systemd unit (from /proc/<pid>/cgroup), so a daemon's every process
counts: HAProxy's master and worker, keepalived's parent and VRRP child, nginx's workers,
gunicorn's arbiter and workers. RSS sums count pages shared between a daemon's processes
once per process (an upper bound); Pss splits them (what the daemon really costs).

Tiers: lb (haproxy, keepalived), web (nginx, the app's gunicorn), db (mariadbd or mysqld),
monitoring (Prometheus, Alertmanager, blackbox exporter) and exporters (node, mysqld,
nginx), each reported on its own. Everything else (systemd, journald, sshd) is "base".
Each host's cores and memory are recorded as Ansible sees them: the hardware facts, and
the sizes the common role publishes for the tier roles (webstack_cores, webstack_memory_mb).

Prints JSON. Exits non-zero when an LB's haproxy + keepalived RSS reaches 64 MiB, the
stated budget for the load balancer tier.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from lab_helpers import REPO_ROOT, VENV_BIN, Lab, plain_ansible_env, publish_report  # noqa: E402  pylint: disable=wrong-import-position

LB_BUDGET_KIB = 64 * 1024

# systemd unit -> (tier, daemon). The app's unit is named by app_service_name.
UNITS = {
    "haproxy.service": ("lb", "haproxy"),
    "keepalived.service": ("lb", "keepalived"),
    "nginx.service": ("web", "nginx"),
    "mariadb.service": ("db", "mariadbd"),
    "mysql.service": ("db", "mysqld"),
    "prometheus.service": ("monitoring", "prometheus"),
    "prometheus-alertmanager.service": ("monitoring", "alertmanager"),
    "prometheus-blackbox-exporter.service": ("monitoring", "blackbox_exporter"),
    "prometheus-node-exporter.service": ("exporters", "node_exporter"),
    "prometheus-mysqld-exporter.service": ("exporters", "mysqld_exporter"),
    "prometheus-nginx-exporter.service": ("exporters", "nginx_exporter"),
}
TIERS = ("lb", "web", "db", "monitoring", "exporters", "base")


def classify(unit: str, app_unit: str) -> tuple:
    """(tier, daemon) of a process's systemd unit."""
    if unit == app_unit:
        return "web", "gunicorn"
    return UNITS.get(unit, ("base", unit.removesuffix(".service")))


def summarize(processes: list, app_unit: str) -> dict:
    """Sum RSS and PSS (KiB) and count processes per daemon, grouped by tier."""
    tiers: dict = {}
    for process in processes:
        tier, daemon = classify(process["unit"], app_unit)
        entry = tiers.setdefault(tier, {}).setdefault(daemon, {"processes": 0, "rss_kib": 0, "pss_kib": 0})
        entry["processes"] += 1
        entry["rss_kib"] += process["rss_kib"]
        entry["pss_kib"] += process["pss_kib"]
    return {tier: dict(sorted(daemons.items())) for tier, daemons in sorted(tiers.items(), key=lambda i: TIERS.index(i[0]))}


def tier_totals(daemons: dict) -> dict:
    return {"rss_kib": sum(d["rss_kib"] for d in daemons.values()), "pss_kib": sum(d["pss_kib"] for d in daemons.values())}


def read_process(proc: Path) -> dict:
    """Memory and systemd unit of one process, read from the controller's /proc."""
    fields = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
    unit = (proc / "cgroup").read_text().strip().rsplit("/", 1)[-1]
    pss = sum(int(line.split()[1]) for line in (proc / "smaps_rollup").read_text().splitlines()
              if line.startswith("Pss:"))
    return {"pid": int(fields["NSpid"].split()[-1]), "comm": fields["Name"].strip(), "unit": unit,
            "rss_kib": int(fields.get("VmRSS", "0 kB").split()[0]), "pss_kib": pss}


def host_processes(lab: Lab, host: str) -> list:
    """Every process of a lab host's container. Read from this machine's /proc (the lab runs
    here), where root may read every process's smaps; inside a container it may not."""
    namespace = os.readlink(f"/proc/{lab.pid(host)}/ns/pid")
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "ns/pid") == namespace:
                found.append(read_process(proc))
        except (OSError, KeyError):
            continue  # the process ended while being read
    return found


def adhoc(lab: Lab, module: str, arguments: str) -> dict:
    """Run one ad-hoc module on every host; its result per host that succeeded."""
    result = subprocess.run([str(VENV_BIN / "ansible"), "all", "-i", lab.inventory, "-o", "-m", module,
                             "-a", arguments], capture_output=True, text=True, cwd=REPO_ROOT, check=False,
                            env=plain_ansible_env())
    # Hosts answer concurrently, so two answers can share a line: read each JSON
    # object from where its "host | SUCCESS =>" ends.
    decoder, found = json.JSONDecoder(), {}
    for match in re.finditer(r"(\S+) \| SUCCESS => ", result.stdout):
        found[match[1]] = decoder.raw_decode(result.stdout, match.end())[0]
    return found


def host_sizes(lab: Lab) -> dict:
    """Cores and memory per host as Ansible sees them: the hardware facts (a container sees
    the whole machine there), and the common role's webstack_cores and webstack_memory_mb
    (cgroup limits applied; read from the fact cache, null when no converge cached them)."""
    wanted = ["ansible_processor_vcpus", "ansible_processor_nproc", "ansible_processor_cores",
              "ansible_processor_count", "ansible_memtotal_mb"]
    hardware = adhoc(lab, "ansible.builtin.setup",
                     json.dumps({"gather_subset": ["!all", "!min", "hardware"], "filter": wanted}))
    # Under ansible_facts when facts are not injected as variables (the checkout's ansible.cfg).
    sizing = adhoc(lab, "ansible.builtin.debug",
                   "msg={{ {'webstack_cores': ansible_facts['webstack_cores'] | default(none), "
                   "'webstack_memory_mb': ansible_facts['webstack_memory_mb'] | default(none)} }}")
    sizes = {}
    for host in lab.hostvars:
        facts = (hardware.get(host) or {}).get("ansible_facts", {})
        sizes[host] = {key.removeprefix("ansible_"): facts.get(key) for key in wanted}
        sizes[host].update((sizing.get(host) or {}).get("msg") or {})
    return sizes


def budget_problems(hosts: dict, lb_hosts: list) -> list:
    problems = []
    for host in lb_hosts:
        used = tier_totals(hosts[host]["tiers"].get("lb", {}))["rss_kib"]
        if used >= LB_BUDGET_KIB:
            problems.append(f"{host}: haproxy + keepalived RSS {used / 1024:.1f} MiB >= {LB_BUDGET_KIB // 1024} MiB")
        if not hosts[host]["tiers"].get("lb"):
            problems.append(f"{host}: no haproxy or keepalived process found")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--output")
    options = parser.parse_args()
    lab = Lab(options.inventory)
    app_unit = lab.render("app_service_name | default('nospof-app')") + ".service"
    sizes = host_sizes(lab)
    hosts = {}
    for host in lab.hostvars:
        tiers = summarize(host_processes(lab, host), app_unit)
        hosts[host] = {"sizes": sizes[host], "tiers": tiers,
                       "tier_totals": {tier: tier_totals(daemons) for tier, daemons in tiers.items()}}
    per_tier: dict = {}
    for host, found in hosts.items():
        for tier, total in found["tier_totals"].items():
            if tier != "base":
                per_tier.setdefault(tier, {})[host] = total
    per_tier = {tier: per_tier[tier] for tier in TIERS if tier in per_tier}
    report = {
        "benchmark": "footprint",
        "units": "KiB",
        "lb_budget_kib": LB_BUDGET_KIB,
        "per_tier": per_tier,
        "hosts": hosts,
        "problems": budget_problems(hosts, lab.groups["loadbalancers"]),
    }
    report["correct"] = not report["problems"]
    publish_report(report, options.output)
    return 0 if report["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
