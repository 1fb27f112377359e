"""Monitoring in the lab: every scrape target up, the alert rules pass their
promtool tests on the monitoring host, and a stopped nginx fires the backend-down
alert, which resolves when nginx is back."""

from __future__ import annotations

import json
import time

import pytest
from lab_helpers import Lab

BACKEND_DOWN_ALERT = "HAProxyServerDown"


def monitor(lab: Lab) -> str:
    hosts = lab.groups.get("monitoring") or []
    if not hosts:
        pytest.skip("the lab inventory has no monitoring group")
    return hosts[0]


def prometheus_api(lab: Lab, path: str) -> dict:
    """GET from Prometheus's HTTP API, on the monitoring host itself."""
    result = lab.exec(monitor(lab), "curl", "-sf", "--max-time", "5", f"http://127.0.0.1:9090/api/v1/{path}")
    answer = json.loads(result.stdout)
    assert answer["status"] == "success", answer
    return answer["data"]


def wait_for(condition, timeout: float, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = condition()
        if ok:
            return last
        time.sleep(interval)
    raise AssertionError(f"not reached within {timeout}s; last seen: {last}")


def test_every_scrape_target_is_up(lab):
    def all_up():
        targets = prometheus_api(lab, "targets")["activeTargets"]
        states = {f"{t['labels'].get('job')}/{t['labels'].get('instance')}": t["health"] for t in targets}
        return bool(states) and set(states.values()) == {"up"}, states

    states = wait_for(all_up, timeout=90)
    jobs = {name.split("/")[0] for name in states}
    stack_hosts = sum(len(lab.groups.get(group, [])) for group in
                      ("loadbalancers", "webservers", "databases", "monitoring"))
    assert sum(1 for name in states if name.startswith("node/")) == stack_hosts, states
    assert len(jobs) >= 5, jobs


def test_the_alert_rules_pass_their_promtool_tests_on_the_monitoring_host(lab):
    result = lab.exec(monitor(lab), "sh", "-c",
                      "cd /etc/prometheus/nospof-tests && promtool test rules *.yml", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def firing(lab: Lab, name: str, server: str) -> list:
    alerts = prometheus_api(lab, "alerts")["alerts"]
    return [alert for alert in alerts if alert["labels"].get("alertname") == name
            and alert["labels"].get("server") == server and alert["state"] == "firing"]


def test_a_stopped_nginx_fires_the_backend_down_alert_and_it_resolves(lab):
    web = lab.groups["webservers"][0]
    try:
        lab.exec(web, "systemctl", "stop", "nginx")
        alerts = wait_for(lambda: (bool(firing(lab, BACKEND_DOWN_ALERT, web)), firing(lab, BACKEND_DOWN_ALERT, web)),
                          timeout=120)
        assert alerts[0]["labels"]["server"] == web
    finally:
        lab.exec(web, "systemctl", "start", "nginx")
    wait_for(lambda: (not firing(lab, BACKEND_DOWN_ALERT, web), firing(lab, BACKEND_DOWN_ALERT, web)), timeout=120)
    lab.wait_until_all_backends_up()
