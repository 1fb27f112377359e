"""LB failover benchmark: VIP move time and the longest gap a client sees.

Usage: python tests/bench/lb_failover.py --inventory <lab inventory> [--repeat 3] [--soak 60]
Prints JSON. Exits non-zero only on a correctness failure: the VIP flapped during
the steady soak, or a fault left the VIP on zero or two LBs.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from lab_helpers import Lab, publish_report  # noqa: E402  pylint: disable=wrong-import-position

CLIENT_TIMEOUT = 0.25
CLIENTS = 4


class GapRecorder:
    """Clients that request the VIP over HTTPS in a loop, each request on a new
    connection, and record when requests succeed; a gap is time with no success."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.context = lab.tls_context()
        self.successes: list = []
        self.failures = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _client in range(CLIENTS)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def loop(self) -> None:
        while not self.stop.is_set():
            connection = http.client.HTTPSConnection(self.lab.vip, 443, timeout=CLIENT_TIMEOUT, context=self.context)
            try:
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    self.successes.append(time.monotonic())
                else:
                    self.failures += 1
            except (OSError, http.client.HTTPException):
                self.failures += 1
            finally:
                connection.close()

    def longest_gap(self, start: float, end: float) -> float:
        points = [start] + sorted(t for t in self.successes if start <= t <= end) + [end]
        return max(b - a for a, b in zip(points, points[1:]))


def inject(lab: Lab, fault: str, holder: str) -> float:
    """Break the holder with a signal sent from this host, and return when it was sent."""
    if fault == "hard_kill":
        targets, signal_number = [lab.pid(holder)], signal.SIGKILL  # the container's init: all of it dies
    elif fault == "graceful_stop":
        targets, signal_number = lab.host_pids(holder, "keepalived"), signal.SIGTERM
    elif fault == "haproxy_death":
        targets, signal_number = lab.host_pids(holder, "haproxy"), signal.SIGKILL
    else:
        raise ValueError(fault)
    sent = time.monotonic()
    for pid in targets:
        try:
            os.kill(pid, signal_number)
        except ProcessLookupError:
            pass  # it exited with its parent a moment ago, as the fault intends
    return sent


def restore(lab: Lab, holder: str) -> None:
    lab.restore()
    lab.exec(holder, "systemctl", "start", "haproxy", "keepalived")
    lab.wait_until_settled(timeout=90)
    lab.wait_until_all_backends_up()


def measure(lab: Lab, fault: str) -> dict:
    lab.wait_until_settled(timeout=90)
    holder = lab.preferred_lb()
    other = next(host for host in lab.groups["loadbalancers"] if host != holder)
    recorder = GapRecorder(lab)
    recorder.start()
    time.sleep(1.0)
    started = inject(lab, fault, holder)
    moved_at = None
    deadline = started + 15
    while time.monotonic() < deadline:
        if lab.holds_vip(other):
            moved_at = time.monotonic()
            break
        time.sleep(0.005)
    time.sleep(3.0)
    ended = time.monotonic()
    recorder.join()
    holders_after = lab.vip_holders()
    result = {
        "vip_move_s": round(moved_at - started, 3) if moved_at else None,
        "longest_client_gap_s": round(recorder.longest_gap(started - 0.5, ended), 3),
        "failed_requests": recorder.failures,
        "holders_after": holders_after,
    }
    restore(lab, holder)
    return result


def soak(lab: Lab, seconds: float) -> dict:
    lab.wait_until_settled(timeout=90)
    recorder = GapRecorder(lab)
    recorder.start()
    started = time.monotonic()
    transitions, last = 0, lab.vip_holders()
    while time.monotonic() - started < seconds:
        now = lab.vip_holders()
        transitions += now != last
        last = now
        time.sleep(0.1)
    recorder.join()
    return {"seconds": seconds, "vip_flaps": transitions, "requests_ok": len(recorder.successes),
            "failed_requests": recorder.failures,
            "longest_client_gap_s": round(recorder.longest_gap(started, started + seconds), 3)}


def summary(samples: list, key: str) -> dict:
    values = [sample[key] for sample in samples if sample[key] is not None]
    if not values:
        return {"median": None, "max": None}
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--soak", type=float, default=60)
    parser.add_argument("--output")
    options = parser.parse_args()
    lab = Lab(options.inventory)
    report: dict = {"benchmark": "lb_failover", "vip": lab.vip, "client_timeout_s": CLIENT_TIMEOUT, "clients": CLIENTS,
                    "settings": {"keepalived_vrrp_version": lab.role_setting("keepalived", "keepalived_vrrp_version"),
                                 "keepalived_advert_int": lab.role_setting("keepalived", "keepalived_advert_int")},
                    "faults": {}}
    healthy = True
    for fault in ("hard_kill", "graceful_stop", "haproxy_death"):
        samples = [measure(lab, fault) for _repeat in range(options.repeat)]
        healthy &= all(len(sample["holders_after"]) == 1 for sample in samples)
        report["faults"][fault] = {"vip_move_s": summary(samples, "vip_move_s"),
                                   "longest_client_gap_s": summary(samples, "longest_client_gap_s"),
                                   "samples": samples}
    report["soak"] = soak(lab, options.soak)
    healthy &= report["soak"]["vip_flaps"] == 0
    report["correct"] = healthy
    publish_report(report, options.output)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
