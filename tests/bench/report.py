"""Benchmark report: merge the JSON of every benchmark into one file and a Markdown page.

Usage: python tests/bench/report.py [--artifacts artifacts] [--json artifacts/bench/benchmarks.json]
       [--markdown docs/benchmarks.md]

Reads artifacts/bench/{converge_cold,converge_warm,datapath,footprint,lb_failover,
replication,rolling_deploy}.json and artifacts/chaos/chaos.json; a missing one is
reported as "not run". Describes this machine (CPU, cores, memory, kernel, Debian,
container engine, ansible-core) and writes benchmarks.json and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from lab_helpers import REPO_ROOT, container_engine  # noqa: E402  pylint: disable=wrong-import-position

# Input name -> path under the artifacts directory.
INPUTS = {
    "converge_cold": "bench/converge_cold.json",
    "converge_warm": "bench/converge_warm.json",
    "datapath": "bench/datapath.json",
    "footprint": "bench/footprint.json",
    "lb_failover": "bench/lb_failover.json",
    "rolling_deploy": "bench/rolling_deploy.json",
    "replication": "bench/replication.json",
    "chaos": "chaos/chaos.json",
}
NOT_RUN = "not run"


def load_inputs(artifacts: Path) -> dict:
    """Every known input (None when absent), plus any other JSON in artifacts/bench."""
    results: dict = {}
    for name, relative in INPUTS.items():
        path = artifacts / relative
        if path.exists():
            modified = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
            results[name] = {"file": relative, "written": modified.isoformat(timespec="seconds"),
                             "data": json.loads(path.read_text())}
        else:
            results[name] = None
    known = set(INPUTS.values()) | {"bench/benchmarks.json"}
    for path in sorted((artifacts / "bench").glob("*.json")):
        relative = f"bench/{path.name}"
        if relative not in known:
            results[path.stem] = {"file": relative, "data": json.loads(path.read_text())}
    return results


def command_output(*command: str) -> Optional[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict:
    """The machine the lab runs on; every lab host is a container sharing it."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), None)
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    debian = Path("/etc/debian_version")
    engine = container_engine()
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_mib": int(meminfo["MemTotal"].split()[0]) // 1024,
        "kernel": platform.release(),
        "debian": debian.read_text().strip() if debian.exists() else None,
        "container_engine": command_output(engine, "--version") or engine,
        "ansible_core": metadata.version("ansible-core"),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _column in header) + "|"]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def mib(kib: Optional[int]) -> Optional[str]:
    return None if kib is None else f"{kib / 1024:.1f}"


def section_machine(info: dict) -> str:
    rows = [["CPU", info["cpu_model"]], ["cores", info["cores"]], ["memory", f"{info['memory_mib']} MiB"],
            ["kernel", info["kernel"]], ["Debian", info["debian"]], ["container engine", info["container_engine"]],
            ["ansible-core", info["ansible_core"]], ["Python", info["python"]], ["report date (UTC)", info["date"]]]
    return ("## Machine\n\nEvery lab host is a container on this one machine: load generators, load balancers, "
            "web nodes and databases share its cores and memory.\n\n" + table(["", ""], rows))


def section_converge(cold: Optional[dict], warm: Optional[dict]) -> str:
    runs = {"cold": cold["data"] if cold else None, "warm": warm["data"] if warm else None}
    rows = []
    for mode, data in runs.items():
        if data is None:
            rows.append([mode, NOT_RUN, "", "", "", "", "", ""])
            continue
        lab = data.get("lab", {})
        failed = sum(c.get("failed", 0) + c.get("unreachable", 0) for c in data["recap"].values())
        rows.append([mode, data["wall_s"], data["hosts"], data["changed_total"], failed,
                     f"{fmt(lab.get('lab_down_s'))} / {fmt(lab.get('lab_up_s'))}" if lab else "-",
                     fmt(data.get("cpu_probe_s")),
                     "yes" if data["correct"] else "NO: " + "; ".join(data["problems"])])
    text = ("## Converge\n\n`ansible-playbook site.yml` on the lab. Cold: new containers from the bare image "
            "(`lab.py down`, `up`, fact cache cleared; the container steps are timed apart). Warm: the deployed lab "
            "again; it must change nothing. CPU probe: seconds a fixed Python loop took just before the run. "
            "This machine's speed varies over a day and the probe does not follow it well, so compare "
            "interleaved runs, not figures from different times.\n\n"
            + table(["run", "wall s", "hosts", "changed", "failed", "lab down / up s", "CPU probe s", "correct"],
                    rows))
    roles = sorted({role for data in runs.values() if data for role in data["roles_s"]},
                   key=lambda role: -max((data or {}).get("roles_s", {}).get(role, 0) for data in runs.values()))
    if roles:
        text += ("\n\nSeconds per role (profile_roles). The tiers run at the same time, and each interval "
                 "counts for the role whose task started last, so this only roughly shows where the time "
                 "goes:\n\n") + table(
            ["role", "cold s", "warm s"],
            [[role] + [(data["roles_s"].get(role) if data else None) for data in runs.values()] for role in roles])
    for mode, data in runs.items():
        if data and data["top_tasks"]:
            text += f"\n\nSlowest tasks, {mode} (profile_tasks):\n\n" + table(
                ["task", "s"], [[task["task"], task["seconds"]] for task in data["top_tasks"][:10]])
    return text


def section_datapath(entry: Optional[dict]) -> str:
    text = "## Data path\n\n"
    if entry is None:
        return text + NOT_RUN + "."
    data = entry["data"]
    settings = data["settings"]
    split = ", ".join(f"{name} weight {part['haproxy_weight']}: {part['wrk_threads']} of the threads"
                      for name, part in data["direct_split"].items())
    text += (f"wrk with `--latency`, {settings['threads']} threads, {settings['connections']} keep-alive "
             f"connections, {fmt(settings['duration_s'], 0)} s per run after a {fmt(settings['warmup_s'], 0)} s "
             f"warm-up. Static: `{data['paths']['static']}` ({data['paths']['static_bytes']} bytes, a file nginx "
             f"serves). App: `GET {data['paths']['app']}` (nginx to the app in gunicorn).\n\n"
             f"HAProxy keeps cacheable responses under /static/ in its small-object cache, so the `static` VIP "
             f"runs are answered from the LB's memory. The `static_uncached` rows send the same requests with "
             f"`Cache-Control: no-cache`, which HAProxy neither answers from nor stores in its cache: those VIP "
             f"runs cross to nginx every time, and measure the proxy path itself.\n\n"
             f"Fairness: both runs of a pair start on the same load host, {data['load_host']}, the LB that does not "
             f"hold the VIP (the firewall opens the web nodes' nginx port to the LBs only; no rule was changed). "
             f"Direct runs use plain HTTP to nginx with wrk's threads split over the web nodes by their live HAProxy "
             f"weights ({split}), so each node carries the share the LB gives it. VIP runs use HTTPS to "
             f"{data['vip_holder']}'s HAProxy, which terminates TLS. Every container shares the machine's cores, so "
             f"the LB's work (and the client's TLS) competes with nginx and the app, as it would on one box. The "
             f"rows from {data['outside_client'] or '-'} are the VIP seen from outside every tier, for "
             f"reference.\n\n")
    rows = []
    for name, run in data["runs"].items():
        latency = run.get("latency_ms", {})
        errors = sum(run.get("socket_errors", {}).values())
        rows.append([name, run["from"], latency.get("p50"), latency.get("p75"), latency.get("p90"),
                     latency.get("p99"), run.get("requests_per_second"),
                     mib(run["transfer_bytes_per_second"] // 1024) if run.get("transfer_bytes_per_second") else None,
                     f"{errors} / {run.get('non_2xx_or_3xx', '-')}"])
    text += table(["run", "from", "p50 ms", "p75 ms", "p90 ms", "p99 ms", "req/s", "MiB/s",
                   "socket errors / non-2xx"], rows)
    cost_rows = [[kind, *(cost[key] if cost else None for key in
                          ("added_p50_ms", "added_p99_ms", "throughput_ratio_vip_to_direct"))]
                 for kind, cost in data["lb_cost"].items()]
    text += ("\n\nWhat the LB path adds (VIP minus direct; throughput VIP / direct). The `one_connection` rows "
             "are one wrk connection, so nothing queues: their added latency is the LB's own cost per request. "
             "The other rows saturate the machine's cores:\n\n"
             + table(["page", "added p50 ms", "added p99 ms", "throughput VIP / direct"], cost_rows))
    text += ("\n\nReading it: wrk is closed-loop (each connection sends its next request when the answer "
             "arrives), so a slower path also offers less load. Where the backend saturates (the app GET), the "
             "tail measures queueing at different request rates, and the added p99 can even be negative; the "
             "static pair and the p50s are the cleaner measure of the LB's own cost.")
    text += "\n\nCorrect (no socket error, no non-2xx): " + ("yes" if data["correct"] else f"NO {data['problems']}")
    return text


def section_footprint(entry: Optional[dict]) -> str:
    text = "## Memory footprint\n\n"
    if entry is None:
        return text + NOT_RUN + "."
    data = entry["data"]
    text += ("RSS is summed over all of a daemon's processes (pages they share count once per process, an upper "
             "bound); PSS shares them out. MiB.\n\n")
    rows = []
    rank = {tier: index for index, tier in enumerate(("lb", "web", "db", "monitoring", "exporters"))}
    for tier, per_host in sorted(data["per_tier"].items(), key=lambda item: rank.get(item[0], len(rank))):
        for host, total in per_host.items():
            daemons = data["hosts"][host]["tiers"][tier]
            names = ", ".join(f"{name} ({d['processes']})" for name, d in daemons.items())
            rows.append([tier, host, names, mib(total["rss_kib"]), mib(total["pss_kib"])])
    text += table(["tier", "host", "daemons (processes)", "RSS", "PSS"], rows)
    lb_rows = [[host, mib(total["rss_kib"]), mib(data["lb_budget_kib"])] for host, total in
               data["per_tier"].get("lb", {}).items()]
    text += "\n\nLoad balancer budget (haproxy + keepalived RSS):\n\n" + table(["LB", "RSS MiB", "budget MiB"], lb_rows)
    text += "\n\nWithin budget: " + ("yes" if data["correct"] else f"NO {data['problems']}")
    sizes = [[host, found["sizes"].get("processor_vcpus"), found["sizes"].get("memtotal_mb"),
              found["sizes"].get("webstack_cores"), found["sizes"].get("webstack_memory_mb")]
             for host, found in data["hosts"].items()]
    text += ("\n\nCores and memory per host as Ansible sees them: the hardware facts (a container sees the whole "
             "machine) and what the common role publishes for the tier roles to size their daemons by "
             "(`webstack_cores`, `webstack_memory_mb`: cgroup limits applied; `-` when no converge cached them):\n\n"
             + table(["host", "facts vCPUs", "facts memory MB", "webstack_cores", "webstack_memory_mb"], sizes))
    return text


def section_lb_failover(entry: Optional[dict]) -> str:
    text = "## Load balancer failover\n\n"
    if entry is None:
        return text + NOT_RUN + "."
    data = entry["data"]
    rows = [[fault, f["vip_move_s"]["median"], f["vip_move_s"]["max"], f["longest_client_gap_s"]["median"],
             f["longest_client_gap_s"]["max"], len(f["samples"])] for fault, f in data["faults"].items()]
    soak = data["soak"]
    return (text + f"Clients open a new HTTPS connection per request ({data['clients']} clients, "
            f"{data['client_timeout_s']} s timeout). Seconds.\n\n"
            + table(["fault", "VIP move median", "VIP move max", "client gap median", "client gap max", "samples"], rows)
            + f"\n\nSoak: {soak['seconds']} s, {soak['vip_flaps']} VIP flaps, {soak['requests_ok']} requests ok, "
            f"{soak['failed_requests']} failed, longest gap {soak['longest_client_gap_s']} s.")


def section_rolling_deploy(entry: Optional[dict]) -> str:
    text = "## Rolling deploy\n\n"
    if entry is None:
        return text + NOT_RUN + "."
    data = entry["data"]
    rows = [[name, run["seconds"], run["requests_ok"], run["requests_per_second"], run["non_2xx"],
             run["socket_errors"], run["ok"]] for name, run in (("deploy", data["deploy"]), ("rollback", data["rollback"]))]
    return (text + f"{data['web_nodes']} web nodes under a GET/POST load through the VIP (baseline "
            f"{data['baseline_requests_per_second']} req/s).\n\n"
            + table(["playbook", "s", "requests ok", "req/s", "non-2xx", "socket errors", "passed"], rows))


def section_replication(entry: Optional[dict]) -> str:
    text = "## Replication\n\n"
    if entry is None:
        return text + NOT_RUN + "."
    data = entry["data"]
    lag, seed = data["lag_under_load"], data["seed"]
    rows = [["inserts/s", lag["inserts_per_second"]], ["replica lag p50 s", lag["lag_p50_s"]],
            ["replica lag p99 s", lag["lag_p99_s"]], ["replica lag max s", lag["lag_max_s"]],
            ["rows seeded", seed["rows"]], ["new replica converge s", seed["new_replica_converge_s"]],
            ["seed and start s", seed["seed_and_start_s"]], ["rows on the new replica", seed["rows_on_new_replica"]]]
    return (text + f"Semi-sync {data['semi_sync']}; {lag['writers']} writers for {lag['seconds']} s.\n\n"
            + table(["", ""], rows))


def section_chaos(entry: Optional[dict]) -> str:
    text = "## Chaos suite\n\n"
    if entry is None:
        return text + NOT_RUN + "."
    figures = {"lb": ("client_gap_s", "vip_move_s"), "web": ("failed_gets", "requests_ok"),
               "switchover": ("write_unavailable_s", "lost_acknowledged_writes"),
               "failover": ("writes_resumed_after_s", "write_unavailable_s", "lost_acknowledged_writes")}
    rows = []
    for name, case in entry["data"]["cases"].items():
        shown = ", ".join(f"{key} {fmt(case.get(key))}" for key in figures.get(name, ()))
        rows.append([name, shown, case["case_seconds"], case["passed"]])
    return text + table(["case", "figures", "case s", "passed"], rows)


def markdown(report: dict) -> str:
    results = report["results"]
    ran = {name: entry["written"] for name, entry in results.items() if entry and "written" in entry}
    sources = "\n".join(f"- `{INPUTS[name]}`: {when}" for name, when in ran.items()) or "- none"
    parts = [
        "# Benchmarks\n\nGenerated by `tests/bench/report.py` from the JSON the benchmarks wrote under `artifacts/` "
        "(merged into `artifacts/bench/benchmarks.json`). Figures come from the demo lab, one run each; they show "
        "the order of magnitude on this machine, not a guarantee. Inputs and when they were written (UTC):\n\n"
        + sources,
        section_machine(report["machine"]),
        section_converge(results["converge_cold"], results["converge_warm"]),
        section_datapath(results["datapath"]),
        section_footprint(results["footprint"]),
        section_lb_failover(results["lb_failover"]),
        section_rolling_deploy(results["rolling_deploy"]),
        section_replication(results["replication"]),
        section_chaos(results["chaos"]),
        "## How to reproduce\n\nAs root on Debian 12:\n\n```sh\nmake demo         # the lab, deployed\n"
        "make bench        # every benchmark (about 20 minutes; the cold converge recreates the lab), then this page\n"
        "make bench-short  # a warm converge and short runs, a few minutes\n```\n\n"
        "Each benchmark is also a script under `tests/bench/` that prints JSON (`--help` for its options); "
        "`python tests/bench/report.py` rebuilds this page from whatever JSON is present.",
    ]
    return "\n\n".join(parts) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default=str(REPO_ROOT / "artifacts"))
    parser.add_argument("--json", default=str(REPO_ROOT / "artifacts/bench/benchmarks.json"))
    parser.add_argument("--markdown", default=str(REPO_ROOT / "docs/benchmarks.md"))
    options = parser.parse_args()
    report = {"machine": machine(), "results": load_inputs(Path(options.artifacts))}
    Path(options.json).parent.mkdir(parents=True, exist_ok=True)
    Path(options.json).write_text(json.dumps(report, indent=2) + "\n")
    Path(options.markdown).write_text(markdown(report))
    missing = [name for name, entry in report["results"].items() if entry is None]
    print(f"wrote {options.json} and {options.markdown}" + (f"; not run: {', '.join(missing)}" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
