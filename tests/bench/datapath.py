"""Data path benchmark: the latency and throughput the load balancer adds, measured with wrk.

Usage: python tests/bench/datapath.py --inventory <lab inventory> [--duration 10] [--connections 16]
       [--threads 4] [--app-path /api/users?limit=5] [--output artifacts/bench/datapath.json]

Six measurements, each a wrk run with --latency and keep-alive (wrk's default):
  static_direct  a static page from nginx, plain HTTP to the web nodes' nginx port
  static_vip     the same page over HTTPS through the VIP (HAProxy terminates TLS);
                 HAProxy's small-object cache serves it from the LB's memory
  static_uncached_direct, static_uncached_vip
                 the same pair with "Cache-Control: no-cache" on every request, so
                 the VIP run bypasses the LB's cache and crosses to nginx each time
  app_direct     an app GET (gunicorn behind nginx), plain HTTP to the web nodes
  app_vip        the same GET over HTTPS through the VIP

Design, for a fair comparison:
  - One load host for both sides of each pair. The firewall opens nginx's port to
    the load balancers only, and this benchmark changes no rule, so the load host
    is the LB that does not hold the VIP (the backup). Its own HAProxy is idle; its
    requests to the VIP cross the lab network to the holder, as a client's would.
  - The same cores: every lab host is a container on one machine, so wrk, HAProxy,
    nginx, gunicorn and MariaDB share its cores in both runs.
  - The same backend share: through the VIP, HAProxy spreads requests over every
    UP web node by weight. The direct run does the same: wrk's threads are split
    over the web nodes in proportion to their live HAProxy weights (a Lua setup
    hook points each thread at one node), so one node is not loaded alone.
  - The LB cost is VIP minus direct for p50 and p99 (ms) and VIP / direct for
    requests per second. It includes TLS (the client's side too) and the extra hop.
    wrk is closed-loop: a slower path also offers less load, so where the app
    saturates, its p99 compares different request rates (it can come out negative).
The VIP runs are repeated from the outside client (group clients) for reference:
what a client outside every tier sees. They do not enter the LB cost.

The demo app ships no static files, so the benchmark puts one page in nginx's
static root (/static/ on every web node) for the run and removes it afterwards.
wrk is installed with apt on the hosts that run it when it is missing.

Prints JSON. Exits non-zero on a correctness failure only: wrk reported socket
errors, non-2xx/3xx responses or no requests at all. Speed never fails it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from lab_helpers import Lab, publish_report  # noqa: E402  pylint: disable=wrong-import-position

STATIC_FILE = "nospof-bench.html"
STATIC_URL_PATH = "/static/" + STATIC_FILE
LUA_SCRIPT_PATH = "/tmp/nospof-bench-targets.lua"
# A request HAProxy's cache neither answers nor stores (nginx ignores it for files).
BYPASS_LB_CACHE = "Cache-Control: no-cache"

# wrk's units (src/units.c): times scale by 1000 up to s, then by 60; counts are
# metric (k = 1000); byte sizes are binary (K = 1024).
TIME_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
METRIC = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
BINARY = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4, "P": 1024 ** 5}

TIME = r"([\d.]+)(us|ms|s|m|h)"
BYTES = r"([\d.]+)([KMGTP]?)B"
WRK_PATTERNS = {
    "setup": re.compile(r"^\s*(\d+) threads and (\d+) connections"),
    "latency": re.compile(rf"^\s*Latency\s+{TIME}\s+{TIME}\s+{TIME}\s+(\S+)%"),
    "percentile": re.compile(rf"^\s*(\d+(?:\.\d+)?)%\s+{TIME}\s*$"),
    "totals": re.compile(rf"^\s*(\d+) requests in {TIME}, {BYTES} read"),
    "socket_errors": re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"),
    "non_2xx": re.compile(r"Non-2xx or 3xx responses: (\d+)"),
    "rps": re.compile(r"^Requests/sec:\s+([\d.]+)"),
    "transfer": re.compile(rf"^Transfer/sec:\s+{BYTES}"),
}


def to_ms(value: str, unit: str) -> float:
    return round(float(value) * TIME_TO_MS[unit], 4)


def to_bytes(value: str, unit: str) -> int:
    return int(float(value) * BINARY[unit])


def parse_wrk(output: str) -> dict:
    """The figures of one `wrk --latency` run, from its text output."""
    result: dict = {"threads": None, "connections": None, "latency_ms": {}, "requests": None, "duration_s": None,
                    "bytes_read": None, "requests_per_second": None, "transfer_bytes_per_second": None,
                    "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}, "non_2xx_or_3xx": 0}
    for line in output.splitlines():
        if match := WRK_PATTERNS["setup"].match(line):
            result["threads"], result["connections"] = int(match[1]), int(match[2])
        elif match := WRK_PATTERNS["latency"].match(line):
            result["latency_ms"].update(avg=to_ms(match[1], match[2]), stdev=to_ms(match[3], match[4]),
                                        max=to_ms(match[5], match[6]))
        elif match := WRK_PATTERNS["percentile"].match(line):
            result["latency_ms"][f"p{float(match[1]):g}"] = to_ms(match[2], match[3])
        elif match := WRK_PATTERNS["totals"].match(line):
            result["requests"] = int(match[1])
            result["duration_s"] = round(to_ms(match[2], match[3]) / 1000, 3)
            result["bytes_read"] = to_bytes(match[4], match[5])
        elif match := WRK_PATTERNS["socket_errors"].search(line):
            result["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, match.groups())))
        elif match := WRK_PATTERNS["non_2xx"].search(line):
            result["non_2xx_or_3xx"] = int(match[1])
        elif match := WRK_PATTERNS["rps"].match(line):
            result["requests_per_second"] = float(match[1])
        elif match := WRK_PATTERNS["transfer"].match(line):
            result["transfer_bytes_per_second"] = to_bytes(match[1], match[2])
    if result["requests"] is None or result["requests_per_second"] is None:
        raise ValueError("not the output of a finished wrk run:\n" + output[-2000:])
    return result


def run_problems(run: dict) -> list:
    """What makes a run incorrect: errors, bad statuses, or nothing served."""
    problems = []
    errors = sum(run["socket_errors"].values())
    if errors:
        problems.append(f"{errors} socket errors {run['socket_errors']}")
    if run["non_2xx_or_3xx"]:
        problems.append(f"{run['non_2xx_or_3xx']} non-2xx/3xx responses")
    if not run["requests"]:
        problems.append("no request completed")
    return problems


def split_threads(weights: dict, threads: int) -> dict:
    """Give each server with a positive weight a share of wrk's threads in proportion to
    its weight (largest remainder), and at least one thread each."""
    active = {name: weight for name, weight in weights.items() if weight > 0}
    if not active:
        raise ValueError(f"no server with a positive weight: {weights}")
    if threads < len(active):
        raise ValueError(f"{threads} threads cannot cover {len(active)} servers; use --threads {len(active)} or more")
    total = sum(active.values())
    exact = {name: threads * weight / total for name, weight in active.items()}
    shares = {name: max(1, int(value)) for name, value in exact.items()}
    while sum(shares.values()) < threads:
        shares[max(shares, key=lambda name: exact[name] - shares[name])] += 1
    while sum(shares.values()) > threads:
        shares[min((name for name in shares if shares[name] > 1), key=lambda name: exact[name] - shares[name])] -= 1
    return shares


def targets_script(addresses: list, port: int) -> str:
    """A wrk Lua script that points thread i at addresses[i] (setup runs once per thread)."""
    entries = ", ".join(f'"{address}"' for address in addresses)
    return (f"-- Written by tests/bench/datapath.py: one web node per wrk thread.\n"
            f"local targets = {{{entries}}}\n"
            f"local next_thread = 0\n"
            f"function setup(thread)\n"
            f"  next_thread = next_thread + 1\n"
            f"  thread.addr = wrk.lookup(targets[next_thread], \"{port}\")[1]\n"
            f"end\n")


def lb_cost(direct: dict, via_vip: dict) -> Optional[dict]:
    """Latency the VIP path adds (ms) and the share of the direct throughput it keeps
    (None when wrk did not finish either run)."""
    if "latency_ms" not in direct or "latency_ms" not in via_vip:
        return None
    return {
        "added_p50_ms": round(via_vip["latency_ms"]["p50"] - direct["latency_ms"]["p50"], 3),
        "added_p99_ms": round(via_vip["latency_ms"]["p99"] - direct["latency_ms"]["p99"], 3),
        "throughput_ratio_vip_to_direct": round(via_vip["requests_per_second"] / direct["requests_per_second"], 3)
        if direct["requests_per_second"] else None,
    }


def static_page() -> str:
    """A small HTML page of about 2 KiB, the size of a typical error or landing page."""
    rows = "\n".join(f"    <li>static row {index:03d}: served by nginx from the release directory</li>"
                     for index in range(24))
    return f"<!doctype html>\n<html><head><title>nospof bench</title></head>\n<body>\n  <ul>\n{rows}\n  </ul>\n</body></html>\n"


class DataPath:
    """The hosts and targets of one lab's data path benchmark."""

    def __init__(self, lab: Lab, options: argparse.Namespace) -> None:
        self.lab = lab
        self.options = options
        self.holder = lab.wait_for_single_holder(timeout=30)
        self.load_host = next(host for host in lab.groups["loadbalancers"] if host != self.holder)
        self.outside = (lab.groups.get("clients") or [None])[0]
        self.static_root = lab.static_root()
        self.web_port = int(lab.render("nginx_listen_port | default(80)"))
        self.created_static_dir: dict = {}

    def shell(self, host: str, script: str, stdin: Optional[str] = None, timeout: float = 120) -> str:
        return subprocess.run([self.lab.engine, "exec", "-i", self.lab.container(host), "sh", "-c", script],
                              input=stdin, check=True, capture_output=True, text=True, timeout=timeout).stdout

    def ensure_wrk(self, host: str) -> str:
        """Install wrk with apt when the host lacks it; return its version line."""
        if self.lab.exec(host, "sh", "-c", "command -v wrk", check=False).returncode != 0:
            self.shell(host, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1 || "
                       "{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; }",
                       timeout=600)
        version = self.lab.exec(host, "wrk", "-v", check=False)
        return (version.stdout + version.stderr).strip().splitlines()[0]

    def live_weights(self) -> dict:
        """Weights of the UP web servers as the VIP holder's HAProxy has them now."""
        stat = self.lab.exec(self.holder, "sh", "-c",
                             "echo 'show stat' | socat stdio unix-connect:/run/haproxy/admin.sock").stdout
        return {fields[1]: int(fields[18]) for fields in (line.split(",") for line in stat.splitlines())
                if len(fields) > 18 and fields[0] == "web_servers" and fields[1] not in ("FRONTEND", "BACKEND")
                and fields[17] == "UP"}

    def place_static_page(self) -> None:
        """Write the page on every web node, making the static directory (only) if it is missing."""
        release = str(PurePosixPath(self.static_root).parent)
        for host in self.lab.groups["webservers"]:
            if self.lab.exec(host, "test", "-d", release, check=False).returncode != 0:
                raise SystemExit(f"{host}: {release} is missing; deploy the app first")
            existed = self.lab.exec(host, "test", "-d", self.static_root, check=False).returncode == 0
            self.created_static_dir[host] = not existed
            self.shell(host, f"mkdir -p {self.static_root} && cat > {self.static_root}/{STATIC_FILE} && "
                       f"chmod 0644 {self.static_root}/{STATIC_FILE}", stdin=static_page())

    def clean_up(self) -> None:
        """Remove the static page (and a static directory made for it) and the Lua script."""
        for host, created in self.created_static_dir.items():
            self.lab.exec(host, "rm", "-f", f"{self.static_root}/{STATIC_FILE}", check=False)
            if created:
                self.lab.exec(host, "rmdir", self.static_root, check=False)
        self.lab.exec(self.load_host, "rm", "-f", LUA_SCRIPT_PATH, check=False)

    def wrk(self, host: str, url: str, duration: float, script: Optional[str] = None,
            connections: Optional[int] = None, headers: tuple = ()) -> dict:
        """Run wrk on a lab host and return its parsed figures plus what was run
        (connections=1: one thread, one connection, nothing queues)."""
        threads = 1 if connections == 1 else self.options.threads
        # On one CPU and niced: the load generator must not starve the lab (every host
        # shares the machine's cores) until keepalived misses its adverts and the VIP flaps.
        command = ["taskset", "-c", "0", "nice", "-n", "10",
                   "wrk", "--latency", "-t", str(threads), "-c", str(connections or self.options.connections),
                   "-d", f"{duration:g}s", "--timeout", f"{self.options.timeout:g}s"]
        for header in headers:
            command += ["-H", header]
        if script:
            self.shell(host, f"cat > {LUA_SCRIPT_PATH}", stdin=script)
            command += ["-s", LUA_SCRIPT_PATH]
        result = self.lab.engine_cmd("exec", self.lab.container(host), *command, url, check=False,
                                     timeout=duration + 120)
        run = {"from": host, "url": url, "headers": list(headers)}
        try:
            run.update(parse_wrk(result.stdout))
        except ValueError:
            failure = (result.stderr or result.stdout).strip()[-500:]
            run["problems"] = [f"wrk exited with {result.returncode}: {failure}"]
        else:
            run["problems"] = run_problems(run)
        run["raw_output"] = result.stdout
        return run

    def measure(self, host: str, url: str, script: Optional[str] = None, connections: Optional[int] = None,
                headers: tuple = ()) -> dict:
        """One measured wrk run, after an unmeasured warm-up."""
        if self.options.warmup:
            self.wrk(host, url, self.options.warmup, script, connections, headers)
        return self.wrk(host, url, self.options.duration, script, connections, headers)


def measured_paths(options) -> tuple:
    """(kind, path, request headers) of each measured pair."""
    return (("static", STATIC_URL_PATH, ()),
            ("static_uncached", STATIC_URL_PATH, (BYPASS_LB_CACHE,)),
            ("app", options.app_path, ()))


def run_all(bench: DataPath, direct_base: str, script: str, outside: Optional[str]) -> dict:
    """The four measurements from the load host, then the VIP ones from the outside client."""
    options, vip = bench.options, f"https://{bench.lab.vip}:443"
    runs = {}
    try:
        bench.place_static_page()
        for kind, path, headers in measured_paths(options):
            runs[f"{kind}_direct"] = bench.measure(bench.load_host, direct_base + path, script, headers=headers)
            runs[f"{kind}_vip"] = bench.measure(bench.load_host, vip + path, headers=headers)
            # The latency the LB adds to one request when nothing queues.
            runs[f"{kind}_one_connection_direct"] = bench.measure(bench.load_host, direct_base + path, connections=1,
                                                                  headers=headers)
            runs[f"{kind}_one_connection_vip"] = bench.measure(bench.load_host, vip + path, connections=1,
                                                               headers=headers)
        if outside:
            for kind, path, headers in measured_paths(options):
                runs[f"{kind}_vip_from_outside_client"] = bench.measure(outside, vip + path, headers=headers)
    finally:
        bench.clean_up()
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=float, default=1, help="seconds of unmeasured wrk load before each run")
    parser.add_argument("--connections", type=int, default=16, help="a multiple of --threads")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=5, help="wrk's per-request timeout, seconds")
    parser.add_argument("--app-path", default="/api/users?limit=5", help="the app GET to measure")
    parser.add_argument("--no-outside-client", action="store_true", help="skip the reference runs from the client")
    parser.add_argument("--output")
    options = parser.parse_args()
    if options.connections % options.threads:
        parser.error("--connections must be a multiple of --threads (each wrk thread opens connections / threads)")
    lab = Lab(options.inventory)
    lab.wait_until_all_backends_up()
    bench = DataPath(lab, options)
    weights = bench.live_weights()
    shares = split_threads(weights, options.threads)
    thread_targets = [lab.address(name) for name in sorted(shares) for _thread in range(shares[name])]
    outside = None if options.no_outside_client else bench.outside
    report: dict = {
        "benchmark": "datapath",
        "design": "direct and VIP runs from the same load host (the LB without the VIP: the firewall opens "
                  "nginx's port to LBs only); direct runs split wrk threads over the web nodes by their live "
                  "HAProxy weights; VIP runs over HTTPS with keep-alive; all hosts share the machine's cores, "
                  "and wrk runs on CPU 0 only, niced",
        "load_host": bench.load_host, "vip_holder": bench.holder, "outside_client": outside,
        "settings": {"duration_s": options.duration, "warmup_s": options.warmup, "connections": options.connections,
                     "threads": options.threads, "request_timeout_s": options.timeout,
                     "wrk_version": {host: bench.ensure_wrk(host) for host in filter(None, (bench.load_host, outside))}},
        "paths": {"static": STATIC_URL_PATH, "static_bytes": len(static_page()), "app": options.app_path},
        "direct_split": {name: {"haproxy_weight": weights[name], "wrk_threads": shares.get(name, 0),
                                "connections": shares.get(name, 0) * options.connections // options.threads}
                         for name in sorted(weights)},
    }
    runs = report["runs"] = run_all(bench, f"http://{thread_targets[0]}:{bench.web_port}",
                                    targets_script(thread_targets, bench.web_port), outside)
    report["lb_cost"] = {kind: lb_cost(runs[f"{kind}_direct"], runs[f"{kind}_vip"])
                         for kind in ("static", "static_uncached", "app", "static_one_connection",
                                      "static_uncached_one_connection", "app_one_connection")}
    report["problems"] = {name: run["problems"] for name, run in runs.items() if run["problems"]}
    report["correct"] = not report["problems"]
    publish_report(report, options.output)
    return 0 if report["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
