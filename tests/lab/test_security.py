"""Security from outside every tier: what a port scan sees, who reaches the
database, the TLS audit of the VIP, and no secret in a verbose converge."""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree

import pytest
from lab_helpers import REPO_ROOT, Lab

SCANNED_PORTS = [22, 80, 443, 3306, 8080, 8404, 9090, 9093, 9100, 9104, 9113, 9115]
ARTIFACTS = REPO_ROOT / "artifacts" / "security"


def client(lab: Lab) -> str:
    clients = lab.groups.get("clients") or []
    if not clients:
        pytest.skip("the lab inventory has no clients group")
    return clients[0]


def open_ports(lab: Lab, source: str, target: str) -> set:
    """TCP connect scan of SCANNED_PORTS from a lab host; only 'open' counts."""
    result = lab.exec(source, "nmap", "-Pn", "-sT", "-n", "--max-retries", "1", "--host-timeout", "60s",
                      "-p", ",".join(str(port) for port in SCANNED_PORTS), "-oX", "-", target)
    root = ElementTree.fromstring(result.stdout)
    return {int(port.get("portid")) for port in root.iter("port")
            if port.find("state").get("state") == "open"}


def reaches(lab: Lab, source: str, address: str, port: int) -> bool:
    result = lab.exec(source, "timeout", "3", "bash", "-c", f"exec 3<>/dev/tcp/{address}/{port}", check=False)
    return result.returncode == 0


def test_a_port_scan_from_outside_sees_only_https_and_its_redirect(lab):
    outside = client(lab)
    seen = {"vip": open_ports(lab, outside, lab.vip)}
    for group in ("loadbalancers", "webservers", "databases", "monitoring"):
        for host in lab.groups.get(group, []):
            seen[host] = open_ports(lab, outside, lab.address(host))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "port_scan.json").write_text(json.dumps({k: sorted(v) for k, v in seen.items()}, indent=2))
    assert seen["vip"] == {80, 443}, seen
    for host in lab.groups["loadbalancers"]:
        assert seen[host] <= {80, 443}, (host, seen[host])
    for group in ("webservers", "databases", "monitoring"):
        for host in lab.groups.get(group, []):
            assert seen[host] == set(), (host, seen[host])


def test_the_database_port_is_reached_only_from_web_and_database_nodes(lab):
    outside = client(lab)
    for db in lab.groups["databases"]:
        address = lab.address(db)
        for web in lab.groups["webservers"]:
            assert reaches(lab, web, address, 3306), f"{web} cannot reach {db}:3306"
        for other in lab.groups["databases"]:
            if other != db:
                assert reaches(lab, other, address, 3306), f"{other} cannot reach {db}:3306"
        for lb in lab.groups["loadbalancers"]:
            assert not reaches(lab, lb, address, 3306), f"{lb} reaches {db}:3306"
        assert not reaches(lab, outside, address, 3306), f"{outside} reaches {db}:3306"


def test_the_web_port_is_reached_only_from_the_load_balancers(lab):
    outside = client(lab)
    for web in lab.groups["webservers"]:
        assert reaches(lab, lab.groups["loadbalancers"][0], lab.address(web), 80)
        assert not reaches(lab, outside, lab.address(web), 80)


def test_testssl_finds_nothing_high_or_critical_on_the_vip(lab):
    outside = client(lab)
    report = "/tmp/testssl.json"
    lab.exec(outside, "rm", "-f", report)
    lab.exec(outside, "testssl", "--quiet", "--color", "0", "--warnings", "off", "--add-ca",
             "/usr/local/share/nospof-lab-ca.crt", "--protocols", "--server-defaults", "--headers",
             "--vulnerable", "--jsonfile", report, f"https://{lab.vip}/", check=False)
    findings = json.loads(lab.exec(outside, "cat", report).stdout)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "testssl.json").write_text(json.dumps(findings, indent=2))
    by_id = {finding["id"]: finding for finding in findings}
    severe = [finding for finding in findings if finding.get("severity") in ("HIGH", "CRITICAL")]
    assert severe == [], severe
    offered = {name: by_id[name]["finding"] for name in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3")}
    for name in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert offered[name].startswith("not offered"), offered
    for name in ("TLS1_2", "TLS1_3"):
        assert offered[name].startswith("offered"), offered
    assert "HSTS_time" in by_id and by_id["HSTS_time"]["severity"] == "OK", by_id.get("HSTS_time")


def lab_secrets() -> dict:
    text = (REPO_ROOT / "inventories/lab/group_vars/all/secrets.yml").read_text()
    return dict(re.findall(r"^(\w+):\s*(\S+)\s*$", text, flags=re.MULTILINE))


def test_a_verbose_converge_prints_no_secret(lab):
    secrets = lab_secrets()
    assert len(secrets) >= 4, secrets
    result = lab.ansible_playbook("site.yml", "-v")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    leaked = sorted(name for name, value in secrets.items() if value in output)
    assert leaked == [], f"secrets in the -v output: {leaked}"
