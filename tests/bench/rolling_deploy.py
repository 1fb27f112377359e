"""Rolling deploy benchmark: wall time for all web nodes, throughput and errors under load.

Usage: python tests/bench/rolling_deploy.py --inventory <lab inventory> [--output file]
Prints JSON. Exits non-zero when a request failed or the deploy or rollback failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from lab_helpers import Lab, TrafficLoop, publish_report  # noqa: E402  pylint: disable=wrong-import-position


def run_under_load(lab: Lab, playbook: str, *args: str) -> dict:
    with TrafficLoop(lab) as traffic:
        time.sleep(1)
        started = time.monotonic()
        result = lab.ansible_playbook(playbook, *args)
        seconds = time.monotonic() - started
        time.sleep(1)
    return {"playbook": playbook, "ok": result.returncode == 0, "seconds": round(seconds, 1),
            "requests_ok": traffic.ok, "requests_per_second": traffic.requests_per_second,
            "non_2xx": len(traffic.non_2xx), "socket_errors": len(traffic.socket_errors),
            "keepalive_retries": traffic.keepalive_retries}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--output")
    options = parser.parse_args()
    lab = Lab(options.inventory)
    with TrafficLoop(lab) as baseline:
        time.sleep(10)
    report = {
        "benchmark": "rolling_deploy",
        "web_nodes": len(lab.groups["webservers"]),
        "baseline_requests_per_second": baseline.requests_per_second,
        "deploy": run_under_load(lab, "playbooks/rolling_deploy.yml", "-e", f"app_release=bench-{int(time.time())}"),
        "rollback": run_under_load(lab, "playbooks/rollback.yml"),
    }
    runs = (report["deploy"], report["rollback"])
    report["correct"] = all(run["ok"] and run["non_2xx"] == 0 and run["socket_errors"] == 0 for run in runs)
    publish_report(report, options.output)
    return 0 if report["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
