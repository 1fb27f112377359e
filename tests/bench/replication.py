"""Replication benchmark: replica lag under a sustained insert load, and the time
to seed a new replica from a primary holding 100k rows.

Usage: python tests/bench/replication.py --inventory <lab inventory> [--seconds 30] [--output file]
Prints JSON. Exits non-zero when the new replica lost rows or replication broke.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from lab_helpers import Lab, publish_report  # noqa: E402  pylint: disable=wrong-import-position
from test_db_tier import inventory_with_extra_replica  # noqa: E402  pylint: disable=wrong-import-position

# Runs on the primary: writer threads insert rows while a heartbeat row gets the
# primary's clock every 20 ms (the lab's containers share one kernel clock).
LOAD_SCRIPT = """
import json, sys, threading, time, pymysql
seconds, writers = float(sys.argv[1]), int(sys.argv[2])
def connect():
    return pymysql.connect(unix_socket="/run/mysqld/mysqld.sock", user="root", autocommit=True)
stop, inserted = threading.Event(), []
def write():
    count, conn = 0, connect()
    with conn.cursor() as cur:
        while not stop.is_set():
            cur.execute("INSERT INTO bench.load (payload) VALUES (REPEAT('x', 200))")
            count += 1
    inserted.append(count)
def heartbeat():
    conn = connect()
    with conn.cursor() as cur:
        while not stop.is_set():
            cur.execute("UPDATE bench.heartbeat SET ts = NOW(6) WHERE id = 1")
            time.sleep(0.02)
threads = [threading.Thread(target=write) for _ in range(writers)] + [threading.Thread(target=heartbeat)]
for t in threads: t.start()
time.sleep(seconds); stop.set()
for t in threads: t.join()
print(json.dumps({"inserted": sum(inserted), "seconds": seconds}))
"""

# Runs on a replica: how old the heartbeat it has applied is, every 50 ms.
LAG_SCRIPT = """
import json, sys, time, pymysql
seconds = float(sys.argv[1])
conn = pymysql.connect(unix_socket="/run/mysqld/mysqld.sock", user="root", autocommit=True)
samples, end = [], time.time() + seconds
with conn.cursor() as cur:
    while time.time() < end:
        cur.execute("SELECT TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) FROM bench.heartbeat WHERE id = 1")
        samples.append(cur.fetchone()[0] / 1e6)
        time.sleep(0.05)
print(json.dumps(samples))
"""


def sql(lab: Lab, container: str, query: str) -> str:
    return lab.engine_cmd("exec", container, "mariadb", "-N", "-B", "-e", query, timeout=600).stdout.strip()


def python_in(lab: Lab, container: str, script: str, *args: str) -> subprocess.Popen:
    """Start a Python script inside a container now; read its stdout when it is done."""
    process = subprocess.Popen([lab.engine, "exec", "-i", container, "python3", "-", *args],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    process.stdin.write(script)
    process.stdin.close()
    return process


def measure_lag(lab: Lab, seconds: float, writers: int) -> dict:
    primary, replica = lab.live_primary(), lab.live_replicas()[0]
    sql(lab, lab.container(primary), "CREATE DATABASE IF NOT EXISTS bench; "
        "CREATE TABLE IF NOT EXISTS bench.load (id BIGINT AUTO_INCREMENT PRIMARY KEY, payload VARCHAR(255)); "
        "CREATE TABLE IF NOT EXISTS bench.heartbeat (id INT PRIMARY KEY, ts DATETIME(6)); "
        "REPLACE INTO bench.heartbeat VALUES (1, NOW(6))")
    time.sleep(1)
    sampler = python_in(lab, lab.container(replica), LAG_SCRIPT, str(seconds + 1))
    load = python_in(lab, lab.container(primary), LOAD_SCRIPT, str(seconds), str(writers))
    load_out, lag_out = load.stdout.read(), sampler.stdout.read()
    load.wait(timeout=120)
    sampler.wait(timeout=120)
    samples = sorted(json.loads(lag_out))
    written = json.loads(load_out)
    return {"writers": writers, "seconds": seconds, "inserts": written["inserted"],
            "inserts_per_second": round(written["inserted"] / seconds, 1),
            "lag_p50_s": round(statistics.median(samples), 3),
            "lag_p99_s": round(samples[int(len(samples) * 0.99) - 1], 3),
            "lag_max_s": round(samples[-1], 3), "samples": len(samples),
            "heartbeat_resolution_s": 0.02}


def measure_seed(lab: Lab, rows: int) -> dict:
    primary = lab.container(lab.live_primary())
    sql(lab, primary, "CREATE DATABASE IF NOT EXISTS bench; DROP TABLE IF EXISTS bench.seed; "
        "CREATE TABLE bench.seed (id BIGINT PRIMARY KEY, payload VARCHAR(255)); "
        f"INSERT INTO bench.seed SELECT seq, REPEAT('x', 200) FROM bench.seq_1_to_{rows}")
    with tempfile.TemporaryDirectory() as workdir:
        inventory, _address = inventory_with_extra_replica(lab, Path(workdir), "db9")
        grown = Lab(inventory)
        try:
            grown.restore()
            started = time.monotonic()
            # The primary takes part: it grants the new replica's address.
            converge = grown.ansible_playbook("site.yml", "--limit", "databases")
            converge_seconds = time.monotonic() - started
            match = re.search(r"Configure and start replication from the primary -+ ([0-9.]+)s", converge.stdout)
            counted = lab.engine_cmd("exec", grown.container("db9"), "mariadb", "-N", "-B", "-e",
                                     "SELECT COUNT(*) FROM bench.seed", check=False)
            seeded = counted.stdout.strip() if counted.returncode == 0 else "0"
            return {"rows": rows, "converge_ok": converge.returncode == 0,
                    "converge_errors": [line for line in converge.stdout.splitlines() if "fatal:" in line][:3],
                    "new_replica_converge_s": round(converge_seconds, 1),
                    "seed_and_start_s": float(match.group(1)) if match else None,
                    "rows_on_new_replica": int(seeded or 0)}
        finally:
            lab.engine_cmd("rm", "-f", grown.container("db9"), check=False)
            lab.ansible_playbook("site.yml", "--limit", "databases")  # drop db9's accounts again


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--rows", type=int, default=100000)
    parser.add_argument("--output")
    options = parser.parse_args()
    lab = Lab(options.inventory)
    report = {"benchmark": "replication", "semi_sync": "on (AFTER_SYNC)",
              "lag_under_load": measure_lag(lab, options.seconds, options.writers),
              "seed": measure_seed(lab, options.rows)}
    report["correct"] = report["seed"]["converge_ok"] and report["seed"]["rows_on_new_replica"] == options.rows
    publish_report(report, options.output)
    return 0 if report["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
