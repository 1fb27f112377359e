"""The monitoring role's alert rules pass their unit tests, and every configuration it renders is valid.

promtool, amtool and the blackbox exporter come from Debian's packages, unpacked into a temp
dir (never installed). The templates are rendered for the lab inventory plus a monitoring host,
once with the role's defaults and once with the lab's short intervals.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml
from monitoring_helpers import LAB_INVENTORY, REPO_ROOT, Rendered, run

LAB_HOSTS = {
    "lb1": "10.89.20.11", "lb2": "10.89.20.12", "web1": "10.89.20.21", "web2": "10.89.20.22",
    "db1": "10.89.20.31", "db2": "10.89.20.32", "mon1": "10.89.20.41",
}
ALERTS = {
    "InstanceDown", "HAProxyServerDown", "KeepalivedVIPNotHeld", "KeepalivedVIPSplitBrain",
    "WebstackProbeFailed", "TLSCertificateExpiringSoon", "MySQLReplicationStopped", "MySQLReplicationLag",
    "MySQLPrimarySemiSyncOff",
}


def _alert_rules(rendered: Rendered) -> dict[str, dict]:
    groups = rendered.load(rendered.rules)["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def _targets(config: dict, job: str) -> dict[str, str]:
    """instance label -> address of each static target of a job."""
    scrape_config = next(job_config for job_config in config["scrape_configs"] if job_config["job_name"] == job)
    return {static["labels"]["instance"]: target
            for static in scrape_config["static_configs"] for target in static["targets"]}


def test_alert_rules_pass_their_unit_tests(tools: dict[str, Path], rendered: Rendered) -> None:
    result = run([tools["promtool"], "test", "rules", rendered.rule_tests])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_fires_in_a_unit_test(rendered: Rendered) -> None:
    assert set(_alert_rules(rendered)) == ALERTS
    tests = rendered.load(rendered.rule_tests)["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case.get("exp_alerts")}
    assert fired == ALERTS


def test_rules_file_passes_promtool_check_rules(tools: dict[str, Path], rendered: Rendered) -> None:
    result = run([tools["promtool"], "check", "rules", rendered.rules])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_rules_use_the_configured_for_durations(rendered: Rendered) -> None:
    variables = {
        "InstanceDown": "monitoring_alert_instance_down_for", "HAProxyServerDown": "monitoring_alert_backend_down_for",
        "KeepalivedVIPNotHeld": "monitoring_alert_vip_for", "KeepalivedVIPSplitBrain": "monitoring_alert_vip_for",
        "WebstackProbeFailed": "monitoring_alert_probe_failed_for",
        "TLSCertificateExpiringSoon": "monitoring_alert_tls_expiry_for",
        "MySQLReplicationStopped": "monitoring_alert_replication_stopped_for",
        "MySQLReplicationLag": "monitoring_alert_replication_lag_for",
        "MySQLPrimarySemiSyncOff": "monitoring_alert_semi_sync_for",
    }
    defaults = yaml.safe_load((REPO_ROOT / "roles" / "monitoring" / "defaults" / "main.yml").read_text())
    for alert, rule in _alert_rules(rendered).items():
        assert rule["for"] == rendered.extra_vars.get(variables[alert], defaults[variables[alert]]), alert


def test_changed_rules_that_fail_their_tests_never_go_live(tools: dict[str, Path], rendered: Rendered) -> None:
    """The role's validate script: the rules as rendered pass; a threshold off by one fails its unit test."""
    script = rendered.monitoring_file("check-alert-rules")
    env = dict(os.environ, PATH=f"{tools['promtool'].parent}{os.pathsep}{os.environ['PATH']}")
    passing = run(["sh", script, rendered.rules], env=env)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    broken = rendered.rules.parent.parent / "broken.rules.yml"
    text = rendered.rules.read_text()
    assert "mysql_slave_status_seconds_behind_master > " in text
    broken.write_text(text.replace("mysql_slave_status_seconds_behind_master > ",
                                   "mysql_slave_status_seconds_behind_master >= "))
    failing = run(["sh", script, broken], env=env)
    assert failing.returncode != 0, failing.stdout + failing.stderr
    assert "MySQLReplicationLag" in failing.stdout + failing.stderr


def test_prometheus_config_passes_promtool_check_config(tools: dict[str, Path], rendered: Rendered) -> None:
    result = run([tools["promtool"], "check", "config", rendered.prometheus_config])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_prometheus_scrapes_every_tier_from_the_inventory(rendered: Rendered) -> None:
    config = rendered.load(rendered.prometheus_config)
    interval = rendered.extra_vars.get("monitoring_scrape_interval", "15s")
    assert config["global"]["scrape_interval"] == interval
    assert config["global"]["evaluation_interval"] == interval
    assert _targets(config, "node") == {host: f"{address}:9100" for host, address in LAB_HOSTS.items()}
    lbs = {host: f"{LAB_HOSTS[host]}:8404" for host in ("lb1", "lb2")}
    assert _targets(config, "haproxy") == lbs
    assert _targets(config, "mysqld") == {host: f"{LAB_HOSTS[host]}:9104" for host in ("db1", "db2")}
    assert _targets(config, "nginx") == {host: f"{LAB_HOSTS[host]}:9113" for host in ("web1", "web2")}
    haproxy = next(job for job in config["scrape_configs"] if job["job_name"] == "haproxy")
    assert haproxy["metrics_path"] == "/metrics"
    assert haproxy["basic_auth"] == {"username": "stats",
                                     "password_file": str(rendered.config_dir / "haproxy-stats.password")}
    blackbox = next(job for job in config["scrape_configs"] if job["job_name"] == "blackbox")
    assert blackbox["static_configs"] == [{"targets": ["https://10.89.20.100/"]}]
    assert blackbox["params"] == {"module": ["https_webstack"]}
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["10.89.20.41:9093"]
    assert config["rule_files"] == [str(rendered.config_dir / "rules" / "*.rules.yml")]


def test_no_secret_in_the_prometheus_or_alertmanager_config(rendered: Rendered) -> None:
    secrets = yaml.safe_load((LAB_INVENTORY / "group_vars" / "all" / "secrets.yml").read_text())
    for path in (rendered.prometheus_config, rendered.alertmanager_config, rendered.blackbox_config):
        text = path.read_text()
        for name, value in secrets.items():
            assert value not in text, f"{name} appears in {path.name}"


def test_alertmanager_config_passes_amtool_check_config(tools: dict[str, Path], rendered: Rendered) -> None:
    result = run([tools["amtool"], "check-config", rendered.alertmanager_config])
    assert result.returncode == 0, result.stdout + result.stderr
    config = rendered.load(rendered.alertmanager_config)
    assert config["route"]["receiver"] == "webhook"
    assert config["receivers"] == [{"name": "webhook", "webhook_configs": [
        {"url": "http://127.0.0.1:5001/alerts", "send_resolved": True}]}]
    # One monitoring host: the cluster listener is off (an empty address) and there are no peers.
    arguments = re.search(r'^ARGS="(.*)"$', rendered.monitoring_file("alertmanager.default").read_text(), re.M)
    assert arguments and "--cluster.listen-address=" in arguments.group(1).split()
    assert "--cluster.peer" not in arguments.group(1)


def test_blackbox_config_passes_config_check_and_trusts_the_lab_ca(tools: dict[str, Path], rendered: Rendered) -> None:
    result = run([tools["prometheus-blackbox-exporter"], "--config.check",
                  f"--config.file={rendered.blackbox_config}"])
    assert result.returncode == 0, result.stdout + result.stderr
    module = rendered.load(rendered.blackbox_config)["modules"]["https_webstack"]
    assert module["http"]["tls_config"]["ca_file"] == str(rendered.config_dir / "webstack-ca.crt")
    assert module["http"]["fail_if_not_ssl"] is True


def test_exporters_arguments_and_credentials(rendered: Rendered) -> None:
    mysqld_args = rendered.exporters_file("db1", "mysqld-exporter.default").read_text()
    for flag in ("--collect.slave_status", "--collect.global_status", "--collect.global_variables",
                 "--config.my-cnf=/etc/prometheus/mysqld-exporter.cnf", "--web.listen-address=:9104"):
        assert flag in mysqld_args
    secrets = yaml.safe_load((LAB_INVENTORY / "group_vars" / "all" / "secrets.yml").read_text())
    credentials = rendered.exporters_file("db1", "mysqld-exporter.cnf").read_text()
    assert "[client]\nuser = monitor\n" in credentials
    assert f'password = """{secrets["mysql_monitor_password"]}"""\n' in credentials
    assert "socket = /run/mysqld/mysqld.sock" in credentials
    assert secrets["mysql_monitor_password"] not in mysqld_args
    nginx_args = rendered.exporters_file("web1", "nginx-exporter.default").read_text()
    assert "-nginx.scrape-uri=http://127.0.0.1:8080/nginx_status" in nginx_args
    assert "-web.listen-address=:9113" in nginx_args
    node_args = rendered.exporters_file("lb1", "node-exporter.default").read_text()
    assert "--collector.textfile.directory=/var/lib/prometheus/node-exporter" in node_args
