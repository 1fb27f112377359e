"""Chaos suite: break one part of a converged lab under client load, check that no
client-visible correctness was lost, time the outage, and print JSON.

Cases (in this order, each ends with the status report healthy again):
  lb          hard-kill the VIP holder's container under GET load; report the gap.
  web         kill a web node's container under GET load: 0 failed GETs.
  switchover  playbooks/db_switchover.yml under a write load with a ledger of
              acknowledged writes: 0 acknowledged writes lost; write unavailability.
              Then playbooks/rolling_deploy.yml under the same load: no write fails
              (the app keeps writing to the new primary).
  failover    kill the primary's container under the same load, then
              playbooks/db_failover.yml: 0 acknowledged writes missing on the new
              primary; time until writes succeed again. Recovery: start the old
              primary and rejoin it with playbooks/db_rejoin.yml.

Exit status 1 when a correctness check failed; times are only reported.
    .venv/bin/python tests/chaos/chaos.py --inventory molecule/default/inventory --output artifacts/chaos/chaos.json
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from lab_helpers import Client, Lab, TrafficLoop, publish_report  # noqa: E402  pylint: disable=wrong-import-position
from lb_failover import measure as measure_lb_fault  # noqa: E402  pylint: disable=wrong-import-position

CASES = ("lb", "web", "switchover", "failover")
WRITERS = 4


class WriteLedger:
    """Writer threads that POST users through the VIP and keep every acknowledged id."""

    def __init__(self, lab: Lab, run: str) -> None:
        self.lab = lab
        self.run = run
        self.acknowledged: list = []  # (time, id)
        self.failures: list = []  # (time, error or status)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.loop, args=(index,), daemon=True) for index in range(WRITERS)]

    def __enter__(self) -> "WriteLedger":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def loop(self, index: int) -> None:
        client = Client(self.lab, timeout=5)
        sent = 0
        while not self.stop.is_set():
            sent += 1
            answer = client.request("POST", "/api/users", {"name": f"chaos-{self.run}-{index}-{sent}"})
            now = time.monotonic()
            with self.lock:
                if answer.ok:
                    self.acknowledged.append((now, int(answer.json()["id"])))
                else:
                    self.failures.append((now, answer.error or answer.status))
            if not answer.ok:
                time.sleep(0.02)
        client.close()

    def writes_resumed_after(self, moment: float):
        """Seconds from `moment` until writes succeeded again after the first failure that
        followed it (0 when none failed); None when they never came back."""
        failed = [when for when, _error in self.failures if when > moment]
        if not failed:
            return 0.0
        later = [when for when, _id in self.acknowledged if when > min(failed)]
        return min(later) - moment if later else None

    def longest_gap(self, start: float, end: float) -> float:
        points = [start] + sorted(when for when, _id in self.acknowledged if start <= when <= end) + [end]
        return max(b - a for a, b in zip(points, points[1:]))


def sql(lab: Lab, host: str, query: str) -> str:
    return lab.engine_cmd("exec", lab.container(host), "mariadb", "-N", "-B", "-e", query, timeout=120).stdout.strip()


def wait_for_server(lab: Lab, host: str, timeout: float = 120) -> None:
    """Wait until the database server in a (re)started container answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = lab.engine_cmd("exec", lab.container(host), "mariadb", "-N", "-B", "-e", "SELECT 1",
                                check=False, timeout=30)
        if answer.returncode == 0:
            return
        time.sleep(1)
    raise AssertionError(f"the database server on {host} did not answer within {timeout}s")


def writable_servers(lab: Lab) -> list:
    found = []
    for host in lab.groups["databases"]:
        answer = lab.engine_cmd("exec", lab.container(host), "mariadb", "-N", "-B", "-e", "SELECT @@read_only",
                                check=False, timeout=30)
        if answer.returncode == 0 and answer.stdout.strip() == "0":
            found.append(host)
    return found


def stored_ids(lab: Lab, host: str) -> set:
    return {int(line) for line in sql(lab, host, "SELECT id FROM app.users").split()}


def run_playbook(lab: Lab, playbook: str, *args: str) -> dict:
    started = time.monotonic()
    result = lab.ansible_playbook(playbook, *args)
    report = {"playbook": playbook, "rc": result.returncode, "seconds": round(time.monotonic() - started, 2)}
    if result.returncode != 0:
        report["output_tail"] = (result.stdout + result.stderr)[-6000:]
    return report


def wait_until_healthy(lab: Lab, timeout: float = 120) -> dict:
    """Run playbooks/status.yml until it passes; its last output tells why not."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        result = lab.ansible_playbook("playbooks/status.yml")
        if result.returncode == 0:
            return {"healthy": True, "attempts": attempts, "seconds": round(time.monotonic() - started, 1)}
        if time.monotonic() > deadline:
            return {"healthy": False, "attempts": attempts, "output_tail": result.stdout[-3000:]}
        time.sleep(3)


def case_lb(lab: Lab) -> dict:
    fault = measure_lb_fault(lab, "hard_kill")
    return {"client_gap_s": fault["longest_client_gap_s"], "vip_move_s": fault["vip_move_s"],
            "failed_requests_during_fault": fault["failed_requests"], "holders_after": fault["holders_after"],
            "checks": {"exactly_one_vip_holder": len(fault["holders_after"]) == 1}}


def case_web(lab: Lab) -> dict:
    lab.wait_until_all_backends_up()
    victim = lab.groups["webservers"][0]
    with TrafficLoop(lab, clients=4, post_every=0) as traffic:
        time.sleep(2)
        killed = time.monotonic()
        lab.engine_cmd("kill", lab.container(victim))
        time.sleep(8)
    lab.restore()
    lab.wait_until_all_backends_up()
    return {"killed": victim, "requests_ok": traffic.ok, "failed_gets": len(traffic.non_2xx) + len(traffic.socket_errors),
            "errors": (traffic.non_2xx + traffic.socket_errors)[:5], "keepalive_retries": traffic.keepalive_retries,
            "seconds_after_kill": round(time.monotonic() - killed, 1),
            "checks": {"zero_failed_gets": not traffic.non_2xx and not traffic.socket_errors}}


def ledger_check(lab: Lab, ledger: WriteLedger, primary: str) -> dict:
    acknowledged = {row_id for _when, row_id in ledger.acknowledged}
    missing = sorted(acknowledged - stored_ids(lab, primary))
    return {"acknowledged_writes": len(acknowledged), "lost_acknowledged_writes": len(missing),
            "lost_sample": missing[:10], "failed_writes": len(ledger.failures)}


def case_switchover(lab: Lab) -> dict:
    old = writable_servers(lab)
    with WriteLedger(lab, "switchover") as ledger:
        time.sleep(2)
        started = time.monotonic()
        playbook = run_playbook(lab, "playbooks/db_switchover.yml")
        ended = time.monotonic()
        time.sleep(3)
    new = writable_servers(lab)
    report = {"old_primary": old, "new_primary": new, "playbook": playbook,
              "write_unavailable_s": round(ledger.longest_gap(started, ended + 3), 3)}
    report.update(ledger_check(lab, ledger, new[0] if len(new) == 1 else old[0]))
    # A rolling deploy after it must keep the app writing to the new primary,
    # which is no longer the inventory's db_primary when it started there.
    with WriteLedger(lab, "deploy-after-switchover") as deploy_ledger:
        deploy = run_playbook(lab, "playbooks/rolling_deploy.yml")
        time.sleep(2)
    deploy["acknowledged_writes"] = len(deploy_ledger.acknowledged)
    deploy["failed_writes"] = len(deploy_ledger.failures)
    report["rolling_deploy_after"] = deploy
    report["checks"] = {"playbook_passed": playbook["rc"] == 0, "one_writable_server": len(new) == 1,
                        "primary_moved": new != old, "zero_lost_writes": report["lost_acknowledged_writes"] == 0,
                        "rolling_deploy_after_passed": deploy["rc"] == 0,
                        "writes_succeed_through_the_rolling_deploy":
                            deploy["failed_writes"] == 0 and deploy["acknowledged_writes"] > 0}
    return report


def case_failover(lab: Lab) -> dict:
    old = writable_servers(lab)
    with WriteLedger(lab, "failover") as ledger:
        time.sleep(2)
        killed = time.monotonic()
        lab.engine_cmd("kill", lab.container(old[0]))
        playbook = run_playbook(lab, "playbooks/db_failover.yml")
        time.sleep(3)
        ended = time.monotonic()
    new = writable_servers(lab)
    resumed = ledger.writes_resumed_after(killed)
    report = {"old_primary": old, "new_primary": new, "playbook": playbook,
              "writes_resumed_after_s": round(resumed, 3) if resumed is not None else None,
              "write_unavailable_s": round(ledger.longest_gap(killed, ended), 3)}
    report.update(ledger_check(lab, ledger, new[0] if len(new) == 1 else old[0]))
    # Recovery: the old primary comes back read-only (fenced), then rejoins. A
    # commit it wrote to its binary log but never got acknowledged (it died
    # waiting for the semi-sync ack) is an errant transaction: the rejoin
    # refuses and names it, and the operator's next step is a re-seed.
    lab.restore()
    wait_for_server(lab, old[0])
    fenced_read_only = sql(lab, old[0], "SELECT @@read_only") == "1"
    rejoin = run_playbook(lab, "playbooks/db_rejoin.yml", "-e", f"db_rejoin_host={old[0]}")
    errant = re.search(r"errant GTIDs: ([^)]*)\)", rejoin.get("output_tail", ""))
    report["rejoin_refused_errant_gtids"] = errant.group(1) if errant else None
    if errant:
        rejoin = run_playbook(lab, "playbooks/db_rejoin.yml", "-e", f"db_rejoin_host={old[0]}",
                              "-e", "db_rejoin_reseed=true")
    report["rejoin"] = rejoin
    report["old_primary_came_back_read_only"] = fenced_read_only
    counts = {host: len(stored_ids(lab, host)) for host in lab.groups["databases"]}
    report["rows_per_server_after_rejoin"] = counts
    report["checks"] = {"playbook_passed": playbook["rc"] == 0, "one_writable_server": len(new) == 1,
                        "primary_moved": new != old, "writes_resumed": resumed is not None,
                        "zero_lost_writes": report["lost_acknowledged_writes"] == 0,
                        "old_primary_fenced_on_return": fenced_read_only,
                        "rejoin_passed": rejoin["rc"] == 0, "servers_agree": len(set(counts.values())) == 1}
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    parser.add_argument("--output", help="also write the JSON report here")
    args = parser.parse_args()
    lab = Lab(args.inventory)
    runners = {"lb": case_lb, "web": case_web, "switchover": case_switchover, "failover": case_failover}
    report = {"cases": {}}
    for name in args.cases.split(","):
        started = time.monotonic()
        result = runners[name](lab)
        result["status_after"] = wait_until_healthy(lab)
        result["checks"]["healthy_after_recovery"] = result["status_after"]["healthy"]
        result["case_seconds"] = round(time.monotonic() - started, 1)
        result["passed"] = all(result["checks"].values())
        report["cases"][name] = result
    report["passed"] = all(case["passed"] for case in report["cases"].values())
    publish_report(report, args.output)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
