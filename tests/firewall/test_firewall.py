"""The firewall role's rules for the lab inventory: what nft makes of them, and real packets through them."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from firewall_helpers import (
    ADMIN_CIDRS,
    ANY,
    CONTROLLER,
    EXTRA_RULE,
    TRAFFIC_SCRIPT,
    Rendered,
    Ruleset,
    SecondRenders,
    collapsed,
    load_and_list,
    networks,
    run,
)

SCRAPE_PORTS = {"all": [9100], "loadbalancers": [8404], "webservers": [9113], "databases": [9104]}
MONITORING_UI_PORTS = [9090, 9093, 9115]
ADMIN_SOURCES = networks(*ADMIN_CIDRS, CONTROLLER)


def in_group(rendered: Rendered, host: str, group: str) -> bool:
    return group == "all" or host in rendered.view.hosts(group)


# ---- the file and the table ------------------------------------------------------------------


def test_every_stack_host_gets_a_ruleset_and_no_other_host(lab_rendered: Rendered) -> None:
    rendered = {path.stem for path in lab_rendered.output.glob("*.nft")}
    assert rendered == set(lab_rendered.view.stack_hosts)
    assert lab_rendered.view.hosts("monitoring"), "the test inventory must have a monitoring host"


def test_the_file_replaces_its_own_table_and_flushes_nothing_else(lab_rendered: Rendered) -> None:
    for host in lab_rendered.view.stack_hosts:
        text = lab_rendered.ruleset_file(host).read_text()
        statements = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        assert statements[:3] == ["table inet nospof", "delete table inet nospof", "table inet nospof {"], host
        assert "flush" not in text, f"{host}: a load must not flush anything"
        assert set(re.findall(r"^(?:delete )?table (\S+ \S+)", text, re.M)) == {"inet nospof"}, host


def test_every_ruleset_passes_nft_check(lab_rendered: Rendered, nft_in_namespaces: None) -> None:
    for host in lab_rendered.view.stack_hosts:
        run("unshare", "--net", "nft", "-c", "-f", str(lab_rendered.ruleset_file(host)))


def test_every_ruleset_loads_on_a_host_without_etc_protocols(
    lab_rendered: Rendered, nft_in_namespaces: None, tmp_path: Path,
) -> None:
    """Minimal images lack netbase's /etc/protocols, so the rules name no protocol nft must look up there."""
    empty = tmp_path / "protocols"
    empty.write_text("")
    files = " ".join(f"'{lab_rendered.ruleset_file(host)}'" for host in lab_rendered.view.stack_hosts)
    run("unshare", "--net", "--mount", "sh", "-c",
        f"mount --bind '{empty}' /etc/protocols && for f in {files}; do nft -c -f \"$f\" || exit 1; done")


def test_a_reload_replaces_our_table_and_keeps_every_other_table(
    lab_rendered: Rendered, nft_in_namespaces: None,
) -> None:
    db, lb = lab_rendered.view.hosts("databases")[0], lab_rendered.view.hosts("loadbalancers")[0]
    other_tools = (
        "nft add table ip podman_like\n"
        "nft add chain ip podman_like input '{ type filter hook input priority 10; policy accept; }'\n"
        "nft add table inet docker_like\n"
    )
    ruleset = load_and_list(lab_rendered.ruleset_file(db), lab_rendered.ruleset_file(db),
                            lab_rendered.ruleset_file(lb), before=other_tools)

    assert sorted(ruleset.tables) == [("inet", "docker_like"), ("inet", "nospof"), ("ip", "podman_like")]
    assert ruleset.sources_for("tcp", 443) == ANY, "the last file loaded (an LB's) is in force"
    assert ruleset.sources_for("tcp", 3306) == set(), "nothing of the database's rules is left"


# ---- the policy --------------------------------------------------------------------------------


def test_inbound_is_denied_by_default_and_every_rule_is_counted_and_explained(
    lab_rulesets: dict[str, Ruleset],
) -> None:
    for host, ruleset in lab_rulesets.items():
        assert [(c["name"], c["hook"], c["policy"]) for c in ruleset.chains] == [("input", "input", "drop")], host
        for rule in ruleset.rules:
            assert rule.counter, f"{host}: rule without a counter: {rule}"
            assert rule.comment.strip(), f"{host}: rule without a comment: {rule}"


def test_loopback_conntrack_icmp_and_neighbour_discovery_are_always_accepted(
    lab_rulesets: dict[str, Ruleset],
) -> None:
    for host, ruleset in lab_rulesets.items():
        listed = json.dumps([rule.other_matches for rule in ruleset.rules if rule.verdict == "accept"])
        for needed in ('"right": "lo"', '"established", "related"', '"echo-request"',
                       '"destination-unreachable"', '"nd-neighbor-solicit"', '"nd-neighbor-advert"',
                       '"nd-router-advert"', '"packet-too-big"'):
            assert needed in listed, f"{host}: no accept rule matching {needed}"


def test_only_the_load_balancers_public_ports_are_open_to_anyone(
    lab_rendered: Rendered, lab_rulesets: dict[str, Ruleset],
) -> None:
    for host, ruleset in lab_rulesets.items():
        public = {port for rule in ruleset.service_rules() if rule.sources is None for port in rule.ports}
        expected = {80, 443} if in_group(lab_rendered, host, "loadbalancers") else set()
        assert public == expected, host


def test_mysql_only_from_the_web_nodes_and_the_other_databases(
    lab_rendered: Rendered, lab_rulesets: dict[str, Ruleset],
) -> None:
    view = lab_rendered.view
    for host, ruleset in lab_rulesets.items():
        if host in view.hosts("databases"):
            expected = view.addresses_of("webservers") | view.addresses_of("databases", without=host)
            assert collapsed(ruleset.sources_for("tcp", 3306)) == collapsed(expected), host
            assert networks(view.addresses[host]).isdisjoint(expected)
        else:
            assert ruleset.sources_for("tcp", 3306) == set(), host


def test_vrrp_only_from_the_peer_load_balancer(lab_rendered: Rendered, lab_rulesets: dict[str, Ruleset]) -> None:
    view = lab_rendered.view
    for host, ruleset in lab_rulesets.items():
        if host in view.hosts("loadbalancers"):
            peers = view.addresses_of("loadbalancers", without=host)
            assert len(peers) == 1 and collapsed(ruleset.sources_for("vrrp")) == collapsed(peers), host
        else:
            assert ruleset.sources_for("vrrp") == set(), host


def test_nginx_only_from_the_load_balancers_and_their_vip(
    lab_rendered: Rendered, lab_rulesets: dict[str, Ruleset],
) -> None:
    view = lab_rendered.view
    for host in view.hosts("webservers"):
        expected = view.addresses_of("loadbalancers") | networks(view.vip)
        assert collapsed(lab_rulesets[host].sources_for("tcp", 80)) == collapsed(expected), host


def test_scrape_ports_only_from_the_monitoring_hosts(
    lab_rendered: Rendered, lab_rulesets: dict[str, Ruleset],
) -> None:
    monitoring = lab_rendered.view.addresses_of("monitoring")
    for host, ruleset in lab_rulesets.items():
        for group, ports in SCRAPE_PORTS.items():
            for port in ports:
                expected = monitoring if in_group(lab_rendered, host, group) else set()
                assert collapsed(ruleset.sources_for("tcp", port)) == collapsed(expected), f"{host} port {port}"


def test_ssh_from_the_admin_networks_and_the_controller_only(lab_rulesets: dict[str, Ruleset]) -> None:
    for host, ruleset in lab_rulesets.items():
        assert collapsed(ruleset.sources_for("tcp", 22)) == collapsed(ADMIN_SOURCES), host


def test_monitoring_uis_from_the_admin_networks_and_the_controller(
    lab_rendered: Rendered, lab_rulesets: dict[str, Ruleset],
) -> None:
    view = lab_rendered.view
    for host, ruleset in lab_rulesets.items():
        on_host = host in view.hosts("monitoring")
        for port in MONITORING_UI_PORTS:
            # Alertmanager's 9093 also takes the alerts of the other monitoring hosts.
            peers = view.addresses_of("monitoring", without=host) if on_host and port == 9093 else set()
            expected = (ADMIN_SOURCES | peers) if on_host else set()
            assert collapsed(ruleset.sources_for("tcp", port)) == collapsed(expected), f"{host} port {port}"


def test_monitoring_hosts_reach_each_other_for_alerts_and_gossip(
    lab_rendered: Rendered, lab_rulesets: dict[str, Ruleset],
) -> None:
    view = lab_rendered.view
    assert len(view.hosts("monitoring")) >= 2, "the test inventory adds two monitoring hosts"
    for host, ruleset in lab_rulesets.items():
        peers = view.addresses_of("monitoring", without=host) if host in view.hosts("monitoring") else set()
        assert collapsed(ruleset.sources_for("tcp", 9094)) == collapsed(peers), host
        assert collapsed(ruleset.sources_for("udp", 9094)) == collapsed(peers), host


def test_an_extra_rule_opens_its_ports_to_its_cidrs_and_groups(
    lab_rendered: Rendered, lab_rulesets: dict[str, Ruleset],
) -> None:
    view = lab_rendered.view
    for host, ruleset in lab_rulesets.items():
        on_host = host in view.hosts("databases")
        for port in EXTRA_RULE["port"]:
            expected = (networks(*EXTRA_RULE["from_cidrs"]) | view.addresses_of("monitoring")) if on_host else set()
            assert collapsed(ruleset.sources_for("tcp", port)) == collapsed(expected), f"{host} port {port}"
        if on_host:
            assert EXTRA_RULE["comment"] in {rule.comment for rule in ruleset.rules}


def test_nothing_else_is_open(lab_rendered: Rendered, lab_rulesets: dict[str, Ruleset]) -> None:
    for host, ruleset in lab_rulesets.items():
        expected = {22} | {port for group, ports in SCRAPE_PORTS.items()
                           if in_group(lab_rendered, host, group) for port in ports}
        if in_group(lab_rendered, host, "loadbalancers"):
            expected |= {80, 443}
        if in_group(lab_rendered, host, "webservers"):
            expected |= {80}
        if in_group(lab_rendered, host, "databases"):
            expected |= {3306, *EXTRA_RULE["port"]}
        udp_expected = set()
        if in_group(lab_rendered, host, "monitoring"):
            expected |= set(MONITORING_UI_PORTS)
            if len(lab_rendered.view.hosts("monitoring")) > 1:
                expected |= {9093, 9094}
                udp_expected = {9094}
        assert ruleset.open_ports("tcp") == expected, host
        assert ruleset.open_ports("udp") == udp_expected, host


def test_dropped_packets_are_logged_only_where_asked_and_rate_limited(lab_rulesets: dict[str, Ruleset]) -> None:
    for host, ruleset in lab_rulesets.items():
        logging = [rule for rule in ruleset.rules if any("log" in match for match in rule.other_matches)]
        if host == "web2":
            assert len(logging) == 1 and any("limit" in match for match in logging[0].other_matches), logging
        else:
            assert logging == [], host


# ---- other inventories and a second run ------------------------------------------------------


def test_without_a_monitoring_group_nothing_is_opened_for_scrapes(
    second_renders: SecondRenders, nft_in_namespaces: None,
) -> None:
    returncode, log = second_renders.no_monitoring
    assert returncode == 0, log
    for host in ("lb1", "lb2", "web1", "db1"):
        rules = second_renders.no_monitoring_rules / f"{host}.nft"
        assert "# Not opened, no source host: Prometheus" in rules.read_text(), host
        ruleset = load_and_list(rules)
        for port in (9100, 9104, 9113, 8404):
            assert ruleset.sources_for("tcp", port) == set(), f"{host} port {port}"


def test_a_second_render_changes_nothing(second_renders: SecondRenders) -> None:
    returncode, log = second_renders.lab_again
    assert returncode == 0, log
    for host in second_renders.lab_again_hosts:
        assert re.search(rf"^{host}\s+: ok=\d+\s+changed=0\s", log, re.M), log


def test_update_only_changes_only_hosts_that_already_run_the_firewall(
    lab_rendered: Rendered, second_renders: SecondRenders,
) -> None:
    returncode, log = second_renders.update_only
    assert returncode == 0, log
    fresh, running = lab_rendered.view.hosts("databases")[:2]
    assert re.search(rf"^{fresh}\s+: ok=\d+\s+changed=0\s", log, re.M), log
    sections = {section.split("]", 1)[0]: section for section in log.split("\nTASK [")[1:]}
    for task in ("Read SSH_CLIENT of the SSH session Ansible uses", "Write the ruleset, checked with nft -c first"):
        section = sections[f"nospof.webstack.firewall : {task}"]
        assert f"skipping: [{fresh}]" in section and f"ok: [{running}]" in section, f"{task}:\n{log}"
    assert sorted(path.name for path in second_renders.update_only_output.iterdir()) == [f"{running}-nftables.conf"]


# ---- real packets over a veth pair ------------------------------------------------------------


@contextmanager
def veth_pair(server: str, clients: list[str]) -> Iterator[tuple[str, str]]:
    """Two throwaway namespaces joined by a veth pair: the server's address, and every client address."""
    tag = f"nospof-fwtest-{os.getpid()}"
    server_ns, client_ns = f"{tag}-server", f"{tag}-client"
    run("ip", "netns", "add", server_ns)
    run("ip", "netns", "add", client_ns)
    try:
        run("ip", "-n", server_ns, "link", "add", "fwt-server", "type", "veth", "peer", "name", "fwt-client",
            "netns", client_ns)
        for namespace, device in ((server_ns, "fwt-server"), (client_ns, "fwt-client")):
            run("ip", "-n", namespace, "link", "set", "lo", "up")
            run("ip", "-n", namespace, "link", "set", device, "up")
        run("ip", "-n", server_ns, "address", "add", f"{server}/24", "dev", "fwt-server")
        for address in clients:
            on_link = ipaddress.ip_address(address) in ipaddress.ip_network(f"{server}/24", strict=False)
            run("ip", "-n", client_ns, "address", "add", f"{address}/{24 if on_link else 32}", "dev", "fwt-client")
            if not on_link:  # an address from outside the lab network, routed straight over the link
                run("ip", "-n", server_ns, "route", "add", address, "dev", "fwt-server")
        yield server_ns, client_ns
    finally:
        subprocess.run(["ip", "netns", "del", server_ns], check=False)
        subprocess.run(["ip", "netns", "del", client_ns], check=False)


def send_traffic(rules: Path, server: str, ports: list[int], probes: list[dict]) -> tuple[dict[str, str], set[str]]:
    """Load rules on a server namespace, run the probes from the client one: outcomes, VRRP ids that arrived."""
    clients = sorted({probe["src"] for probe in probes})
    with veth_pair(server, clients) as (server_ns, client_ns):
        run("ip", "netns", "exec", server_ns, "nft", "-f", str(rules))
        listener = subprocess.Popen(
            ["ip", "netns", "exec", server_ns, sys.executable, str(TRAFFIC_SCRIPT), "serve", *map(str, ports)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert listener.stdout.readline().strip() == "ready"
            for probe in probes:
                probe["dst"] = server
            outcome = run("ip", "netns", "exec", client_ns, sys.executable, str(TRAFFIC_SCRIPT), "probe",
                          json.dumps(probes))
            time.sleep(0.2)  # let the last VRRP packet reach the listener
        finally:
            listener.kill()
        received = {line.split()[2] for line in listener.stdout.read().splitlines() if line.startswith("vrrp ")}
    return json.loads(outcome.stdout), received


def tcp(probe_id: str, source: str, port: int) -> dict:
    return {"id": probe_id, "kind": "tcp", "src": source, "port": port}


def test_real_packets_reach_a_database_only_where_the_rules_say(
    lab_rendered: Rendered, nft_in_namespaces: None,
) -> None:
    view = lab_rendered.view
    db, other_db = view.hosts("databases")[:2]
    web, lb, mon = view.hosts("webservers")[0], view.hosts("loadbalancers")[0], view.hosts("monitoring")[0]
    address = view.addresses
    probes = [
        tcp("web node to mysql", address[web], 3306),
        tcp("other database to mysql", address[other_db], 3306),
        tcp("load balancer to mysql", address[lb], 3306),
        tcp("monitoring to mysql", address[mon], 3306),
        tcp("monitoring to node exporter", address[mon], 9100),
        tcp("monitoring to mysqld exporter", address[mon], 9104),
        tcp("web node to node exporter", address[web], 9100),
        tcp("controller to ssh", CONTROLLER, 22),
        tcp("admin network to ssh", "192.0.2.55", 22),
        tcp("web node to ssh", address[web], 22),
        tcp("web node to a listening port nobody allowed", address[web], 80),
        {"id": "ping from a load balancer", "kind": "icmp", "src": address[lb]},
    ]
    outcome = send_traffic(lab_rendered.ruleset_file(db), address[db], [22, 80, 3306, 9100, 9104], probes)[0]

    assert outcome == {
        "web node to mysql": "open",
        "other database to mysql": "open",
        "load balancer to mysql": "timeout",
        "monitoring to mysql": "timeout",
        "monitoring to node exporter": "open",
        "monitoring to mysqld exporter": "open",
        "web node to node exporter": "timeout",
        "controller to ssh": "open",
        "admin network to ssh": "open",
        "web node to ssh": "timeout",
        "web node to a listening port nobody allowed": "timeout",
        "ping from a load balancer": "reply",
    }


def test_real_packets_reach_a_load_balancer_only_where_the_rules_say(
    lab_rendered: Rendered, nft_in_namespaces: None,
) -> None:
    view = lab_rendered.view
    lb, peer = view.hosts("loadbalancers")[:2]
    web, mon = view.hosts("webservers")[0], view.hosts("monitoring")[0]
    address = view.addresses
    probes = [
        tcp("outside client to https", "198.51.100.9", 443),
        tcp("outside client to http", "198.51.100.9", 80),
        tcp("monitoring to haproxy metrics", address[mon], 8404),
        tcp("web node to haproxy metrics", address[web], 8404),
        tcp("controller to haproxy metrics", CONTROLLER, 8404),
        tcp("outside client to ssh", "198.51.100.9", 22),
        {"id": "vrrp-from-peer", "kind": "vrrp", "src": address[peer]},
        {"id": "vrrp-from-web-node", "kind": "vrrp", "src": address[web]},
    ]
    outcome, vrrp_received = send_traffic(lab_rendered.ruleset_file(lb), address[lb], [22, 80, 443, 8404], probes)

    assert outcome == {
        "outside client to https": "open",
        "outside client to http": "open",
        "monitoring to haproxy metrics": "open",
        "web node to haproxy metrics": "timeout",
        "controller to haproxy metrics": "timeout",
        "outside client to ssh": "timeout",
        "vrrp-from-peer": "sent",
        "vrrp-from-web-node": "sent",
    }
    assert vrrp_received == {"vrrp-from-peer"}
