"""Converge benchmark: wall time of `ansible-playbook site.yml`, per role and the slowest tasks.

Usage: python tests/bench/converge.py --inventory <lab inventory> [--cold] [--output artifacts/bench/converge_warm.json]

warm (default): converge the running, deployed lab again. Idempotence is part of
  correctness: any host with changed > 0 fails the run.
--cold: remove the lab's containers (scripts/lab/lab.py down), create them again
  (up), forget the cached facts, then converge from bare Debian hosts. The
  container steps are timed apart from the converge.

The converge runs with the profile_tasks, profile_roles and timer callbacks; the
report has the PLAY RECAP per host, seconds per role (ROLES RECAP), the slowest
tasks (TASKS RECAP) and the wall time. The full log is kept next to the JSON
(<output without .json>.log).

Prints JSON. Exits non-zero when a host failed or was unreachable, or when a warm
converge changed something. Time never fails it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from lab_helpers import REPO_ROOT, VENV_BIN, plain_ansible_env, publish_report  # noqa: E402  pylint: disable=wrong-import-position

TOP_TASKS = 15
CALLBACKS = "ansible.posix.profile_tasks,ansible.posix.profile_roles,ansible.posix.timer"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
BANNER = re.compile(r"^([A-Z][A-Z ]+?) \*{3,}\s*$")
RECAP_HOST = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")
# profile_tasks and profile_roles lines: a name padded with dashes, then the seconds.
TIMED_LINE = re.compile(r"^(.*?)\s-*\s?(\d+\.\d+)s\s*$")
TIMER_LINE = re.compile(r"Playbook run took (\d+) days, (\d+) hours, (\d+) minutes, (\d+) seconds")


def sections(log: str) -> dict:
    """The lines under each banner ("PLAY RECAP", "TASKS RECAP", ...), colour codes removed."""
    found: dict = {}
    current: Optional[list] = None
    for line in ANSI_ESCAPE.sub("", log).splitlines():
        banner = BANNER.match(line)
        if banner:
            current = found.setdefault(banner[1].strip(), [])
        elif current is not None:
            current.append(line)
    return found


def timed_lines(lines: list) -> list:
    """(name, seconds) from a profile_* recap, without its date and rule lines."""
    timed = []
    for line in lines:
        if set(line.strip()) <= {"=", "~", ""} or re.search(r"\(\d+:\d\d:\d\d\.\d+\)", line):
            continue
        match = TIMED_LINE.match(line)
        if match:
            timed.append((match[1].strip(), float(match[2])))
    return timed


def parse_converge(log: str) -> dict:
    """PLAY RECAP per host, seconds per role, the slowest tasks and the timer's total."""
    found = sections(log)
    recap = {}
    for line in found.get("PLAY RECAP", []):
        match = RECAP_HOST.match(line.strip())
        if match:
            recap[match[1]] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match[2])}
    roles = timed_lines(found.get("ROLES RECAP", []))
    total = next((seconds for name, seconds in roles if name == "total"), None)
    timer = TIMER_LINE.search(log)
    return {
        "recap": recap,
        "roles_s": {name: seconds for name, seconds in roles if name != "total"},
        "roles_total_s": total,
        "top_tasks": [{"task": name, "seconds": seconds} for name, seconds in timed_lines(found.get("TASKS RECAP", []))],
        "timer_s": (int(timer[1]) * 86400 + int(timer[2]) * 3600 + int(timer[3]) * 60 + int(timer[4])) if timer else None,
    }


def converge_problems(parsed: dict, returncode: int, warm: bool) -> list:
    problems = [] if returncode == 0 else [f"ansible-playbook exited with {returncode}"]
    if not parsed["recap"]:
        problems.append("no PLAY RECAP in the output")
    for host, counts in parsed["recap"].items():
        if counts.get("failed") or counts.get("unreachable"):
            problems.append(f"{host}: failed={counts.get('failed')} unreachable={counts.get('unreachable')}")
        if warm and counts.get("changed"):
            problems.append(f"{host}: changed={counts['changed']} on a warm converge (not idempotent)")
    return problems


def timed(command: list, log_file: Optional[Path] = None, env: Optional[dict] = None) -> tuple:
    """Run a command from the repository root; return (seconds, return code, output)."""
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, check=False, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seconds = round(time.monotonic() - started, 1)
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text(result.stdout)
    return seconds, result.returncode, result.stdout


def cpu_probe_seconds(repeats: int = 3) -> float:
    """Seconds a fixed pure-Python loop takes here, the fastest of a few tries,
    recorded beside each converge's wall time. This machine's speed varies over
    a day, and the probe does not follow it well (the slowest cold converge of
    one session had the fastest probe): compare interleaved runs."""
    def loop_seconds() -> float:
        started = time.perf_counter()
        total = 0
        for step in range(5_000_000):
            total += step * step
        return time.perf_counter() - started

    return round(min(loop_seconds() for attempt in range(repeats)), 3)


def recreate_lab(inventory: str) -> dict:
    """lab.py down, forget the cached facts, lab.py up; each step timed."""
    lab_script = [sys.executable, "scripts/lab/lab.py"]
    down_s, down_rc, down_out = timed(lab_script + ["down", "--inventory", inventory])
    cache = Path(os.environ.get("ANSIBLE_CACHE_PLUGIN_CONNECTION", REPO_ROOT / ".cache/facts"))
    shutil.rmtree(cache, ignore_errors=True)
    up_s, up_rc, up_out = timed(lab_script + ["up", "--inventory", inventory])
    if down_rc or up_rc:
        raise SystemExit(f"recreating the lab failed:\n{down_out[-2000:]}\n{up_out[-2000:]}")
    return {"lab_down_s": down_s, "lab_up_s": up_s, "fact_cache_cleared": str(cache)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--cold", action="store_true", help="recreate the lab's containers first")
    parser.add_argument("--playbook", default="site.yml")
    parser.add_argument("--output")
    options = parser.parse_args()
    mode = "cold" if options.cold else "warm"
    output = Path(options.output) if options.output else REPO_ROOT / f"artifacts/bench/converge_{mode}.json"
    log_file = output.with_suffix(".log")
    report: dict = {"benchmark": "converge", "mode": mode, "inventory": options.inventory,
                    "playbook": options.playbook, "log": str(log_file)}
    if options.cold:
        report["lab"] = recreate_lab(options.inventory)
    report["cpu_probe_s"] = cpu_probe_seconds()
    env = plain_ansible_env(ANSIBLE_CALLBACKS_ENABLED=CALLBACKS, PROFILE_TASKS_TASK_OUTPUT_LIMIT=str(TOP_TASKS))
    seconds, returncode, log = timed([str(VENV_BIN / "ansible-playbook"), options.playbook, "-i", options.inventory],
                                     log_file, env)
    report["wall_s"] = seconds
    report["rc"] = returncode
    report.update(parse_converge(log))
    report["hosts"] = len(report["recap"])
    report["changed_total"] = sum(counts.get("changed", 0) for counts in report["recap"].values())
    report["problems"] = converge_problems(report, returncode, warm=not options.cold)
    report["correct"] = not report["problems"]
    publish_report(report, str(output))
    return 0 if report["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
