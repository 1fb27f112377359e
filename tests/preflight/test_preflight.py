"""Preflight stops a run on a bad inventory, before any host is contacted, and says why."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from preflight_helpers import (
    ConnectionCounter,
    RunPlaybook,
    SECRETS,
    good_inventory,
    hosts_of,
    loopback_host,
    site_vars,
    vaulted,
)

Inventory = dict[str, Any]


@dataclass
class BadCase:
    """A way to break the good inventory and what preflight must then say."""

    id: str
    break_inventory: Callable[[Inventory], None]
    expected: tuple[str, ...]


def no_webservers(inventory: Inventory) -> None:
    hosts_of(inventory, "webservers").clear()


def three_loadbalancers(inventory: Inventory) -> None:
    hosts_of(inventory, "loadbalancers")["lb3"] = loopback_host(
        "10.99.0.13", keepalived_priority=50
    )


def one_loadbalancer(inventory: Inventory) -> None:
    del hosts_of(inventory, "loadbalancers")["lb2"]


def no_primary(inventory: Inventory) -> None:
    hosts_of(inventory, "db_primary").clear()


def two_primaries(inventory: Inventory) -> None:
    hosts_of(inventory, "db_primary")["db2"] = hosts_of(inventory, "db_replicas").pop(
        "db2"
    )


def primary_also_replica(inventory: Inventory) -> None:
    hosts_of(inventory, "db_replicas")["db1"] = hosts_of(inventory, "db_primary")["db1"]


def no_replicas(inventory: Inventory) -> None:
    hosts_of(inventory, "db_replicas").clear()


def databases_without_children(inventory: Inventory) -> None:
    children = inventory["all"]["children"]
    children.update(children.pop("databases")["children"])
    children["databases"] = {"hosts": {"db1": None}}


def lb_network_without_prefix(inventory: Inventory) -> None:
    site_vars(inventory)["webstack_lb_network"] = "10.99.0.0"


def vip_not_ipv4(inventory: Inventory) -> None:
    site_vars(inventory)["webstack_vip"] = "10.99.0.300"


def vip_missing(inventory: Inventory) -> None:
    del site_vars(inventory)["webstack_vip"]


def vip_outside_lb_network(inventory: Inventory) -> None:
    site_vars(inventory)["webstack_vip"] = "10.98.0.10"


def vip_is_broadcast_address(inventory: Inventory) -> None:
    site_vars(inventory)["webstack_vip"] = "10.99.0.255"


def vip_is_a_host_address(inventory: Inventory) -> None:
    site_vars(inventory)["webstack_vip"] = "10.99.0.12"


def loadbalancer_outside_lb_network(inventory: Inventory) -> None:
    hosts_of(inventory, "loadbalancers")["lb2"]["webstack_address"] = "10.98.0.12"


def webserver_address_not_ipv4(inventory: Inventory) -> None:
    hosts_of(inventory, "webservers")["web1"]["webstack_address"] = "web1.example"


def weight_missing(inventory: Inventory) -> None:
    del hosts_of(inventory, "webservers")["web2"]["haproxy_backend_weight"]


def weight_quoted(inventory: Inventory) -> None:
    hosts_of(inventory, "webservers")["web2"]["haproxy_backend_weight"] = "100"


def weight_too_high(inventory: Inventory) -> None:
    hosts_of(inventory, "webservers")["web1"]["haproxy_backend_weight"] = 257


def server_id_missing(inventory: Inventory) -> None:
    del hosts_of(inventory, "db_replicas")["db2"]["mysql_server_id"]


def server_id_zero(inventory: Inventory) -> None:
    hosts_of(inventory, "db_primary")["db1"]["mysql_server_id"] = 0


def server_id_too_high(inventory: Inventory) -> None:
    hosts_of(inventory, "db_replicas")["db3"]["mysql_server_id"] = 4294967296


def server_id_duplicated(inventory: Inventory) -> None:
    hosts_of(inventory, "db_replicas")["db3"]["mysql_server_id"] = 2


def replication_password_missing(inventory: Inventory) -> None:
    del site_vars(inventory)["mysql_replication_password"]


def app_password_empty(inventory: Inventory) -> None:
    site_vars(inventory)["mysql_app_password"] = ""


def stats_password_null_on_one_host(inventory: Inventory) -> None:
    hosts_of(inventory, "loadbalancers")["lb1"]["haproxy_stats_password"] = None


def monitor_password_refers_to_undefined_variable(inventory: Inventory) -> None:
    site_vars(inventory)[
        "mysql_monitor_password"
    ] = "{{ vault_mysql_monitor_password }}"


def app_password_vaulted_but_no_vault_password(inventory: Inventory) -> None:
    site_vars(inventory)["mysql_app_password"] = vaulted(SECRETS["mysql_app_password"])


def unknown_mysql_flavor(inventory: Inventory) -> None:
    site_vars(inventory)["mysql_flavor"] = "postgres"


def mysql_flavor_missing(inventory: Inventory) -> None:
    del site_vars(inventory)["mysql_flavor"]


def cache_prefix_without_slash(inventory: Inventory) -> None:
    hosts_of(inventory, "loadbalancers")["lb2"]["haproxy_cache_path_prefixes"] = ["static/"]


def cache_object_larger_than_half(inventory: Inventory) -> None:
    site_vars(inventory)["haproxy_cache_size_mb"] = 1
    site_vars(inventory)["haproxy_cache_max_object_bytes"] = 1048576


def priority_too_high(inventory: Inventory) -> None:
    hosts_of(inventory, "loadbalancers")["lb1"]["keepalived_priority"] = 255


def priority_equal_on_both(inventory: Inventory) -> None:
    hosts_of(inventory, "loadbalancers")["lb1"]["keepalived_priority"] = 100


def admin_cidr_malformed(inventory: Inventory) -> None:
    site_vars(inventory)["firewall_admin_cidrs"] = ["192.0.2.0/24", "10.0.0.300/24"]


def admin_cidrs_not_a_list(inventory: Inventory) -> None:
    site_vars(inventory)["firewall_admin_cidrs"] = "192.0.2.0/24"


def admin_cidr_with_host_bits_on_one_host(inventory: Inventory) -> None:
    hosts_of(inventory, "loadbalancers")["lb1"]["firewall_admin_cidrs"] = ["192.0.2.7/24"]


def extra_rule_without_source(inventory: Inventory) -> None:
    site_vars(inventory)["firewall_extra_rules"] = [{"port": 9200, "comment": "search API"}]


BAD_CASES = [
    BadCase("no-webservers", no_webservers, ("Group webservers has no host",)),
    BadCase(
        "three-loadbalancers",
        three_loadbalancers,
        ("Group loadbalancers has 3 host(s) (lb1, lb2, lb3)",),
    ),
    BadCase(
        "one-loadbalancer",
        one_loadbalancer,
        ("Group loadbalancers has 1 host(s) (lb1)",),
    ),
    BadCase("no-primary", no_primary, ("Group db_primary has 0 host(s) (none)",)),
    BadCase(
        "two-primaries", two_primaries, ("Group db_primary has 2 host(s) (db1, db2)",)
    ),
    BadCase(
        "primary-also-replica",
        primary_also_replica,
        ("db1 are in both db_primary and db_replicas",),
    ),
    BadCase("no-replicas", no_replicas, ("Group db_replicas has no host",)),
    BadCase(
        "databases-without-children",
        databases_without_children,
        ("Group databases must hold exactly",),
    ),
    BadCase(
        "lb-network-without-prefix",
        lb_network_without_prefix,
        ("webstack_lb_network is 10.99.0.0,",),
    ),
    BadCase(
        "vip-not-ipv4",
        vip_not_ipv4,
        ("webstack_vip is 10.99.0.300, which is not an IPv4 address",),
    ),
    BadCase("vip-missing", vip_missing, ("webstack_vip is not set",)),
    BadCase(
        "vip-outside-lb-network",
        vip_outside_lb_network,
        ("webstack_vip 10.98.0.10 is not a usable",),
    ),
    BadCase(
        "vip-is-broadcast",
        vip_is_broadcast_address,
        ("webstack_vip 10.99.0.255 is not a usable",),
    ),
    BadCase(
        "vip-is-host-address",
        vip_is_a_host_address,
        ("webstack_vip 10.99.0.12 is also the address of lb2",),
    ),
    BadCase(
        "lb-outside-lb-network",
        loadbalancer_outside_lb_network,
        (
            "lb2 (group loadbalancers) has address 10.98.0.12, outside webstack_lb_network",
        ),
    ),
    BadCase(
        "address-not-ipv4",
        webserver_address_not_ipv4,
        ("web1 has no IPv4 service address", "web1.example"),
    ),
    BadCase(
        "weight-missing",
        weight_missing,
        ("haproxy_backend_weight on web2 (group webservers) is not set",),
    ),
    BadCase(
        "weight-quoted",
        weight_quoted,
        (
            "haproxy_backend_weight on web2 (group webservers) is",
            "must be an integer from 0 to 256",
        ),
    ),
    BadCase(
        "weight-too-high",
        weight_too_high,
        ("haproxy_backend_weight on web1 (group webservers) is 257",),
    ),
    BadCase(
        "cache-prefix-without-slash",
        cache_prefix_without_slash,
        ("The HAProxy cache settings on lb2 (group loadbalancers) are wrong",
         'haproxy_cache_path_prefixes=["static/"]'),
    ),
    BadCase(
        "cache-object-larger-than-half",
        cache_object_larger_than_half,
        ("The HAProxy cache settings on lb1 (group loadbalancers) are wrong",
         "haproxy_cache_max_object_bytes=1048576"),
    ),
    BadCase(
        "server-id-missing",
        server_id_missing,
        ("mysql_server_id on db2 (group databases) is not set",),
    ),
    BadCase(
        "server-id-zero",
        server_id_zero,
        ("mysql_server_id on db1 (group databases) is 0,",),
    ),
    BadCase(
        "server-id-too-high",
        server_id_too_high,
        ("mysql_server_id on db3 (group databases) is 4294967296,",),
    ),
    BadCase(
        "server-id-duplicated",
        server_id_duplicated,
        (
            "mysql_server_id 2 on db2 is also used by db3",
            "mysql_server_id 2 on db3 is also used by db2",
        ),
    ),
    BadCase(
        "replication-password-missing",
        replication_password_missing,
        (
            "missing, empty or unreadable: mysql_replication_password (on lb1, lb2, web1, web2, db1, db2, db3)",
        ),
    ),
    BadCase(
        "app-password-empty",
        app_password_empty,
        ("missing, empty or unreadable: mysql_app_password (on",),
    ),
    BadCase(
        "stats-password-null-on-one-host",
        stats_password_null_on_one_host,
        ("missing, empty or unreadable: haproxy_stats_password (on lb1)",),
    ),
    BadCase(
        "secret-refers-to-undefined-variable",
        monitor_password_refers_to_undefined_variable,
        ("missing, empty or unreadable: mysql_monitor_password (on",),
    ),
    BadCase(
        "secret-vaulted-without-vault-password",
        app_password_vaulted_but_no_vault_password,
        ("missing, empty or unreadable: mysql_app_password (on", "--ask-vault-pass"),
    ),
    BadCase(
        "unknown-mysql-flavor",
        unknown_mysql_flavor,
        ("mysql_flavor is postgres, but it must be one of mariadb, mysql",),
    ),
    BadCase("mysql-flavor-missing", mysql_flavor_missing, ("mysql_flavor is not set",)),
    BadCase(
        "priority-too-high",
        priority_too_high,
        ("keepalived_priority on lb1 (group loadbalancers) is 255,",),
    ),
    BadCase(
        "priority-equal",
        priority_equal_on_both,
        ("keepalived_priority is 100 on both lb1 and lb2",),
    ),
    BadCase(
        "admin-cidr-malformed",
        admin_cidr_malformed,
        (
            "firewall_admin_cidrs holds 10.0.0.300/24, which is not an IPv4 or IPv6 address or network"
            " in CIDR form (on lb1, lb2, web1, web2, db1, db2, db3)",
        ),
    ),
    BadCase(
        "admin-cidrs-not-a-list",
        admin_cidrs_not_a_list,
        ("firewall_admin_cidrs is 192.0.2.0/24, not a list",),
    ),
    BadCase(
        "admin-cidr-host-bits",
        admin_cidr_with_host_bits_on_one_host,
        (
            "firewall_admin_cidrs holds 192.0.2.7/24, which has host bits set: write 192.0.2.0/24"
            " for the network or 192.0.2.7 for the one address (on lb1)",
        ),
    ),
    BadCase(
        "extra-rule-without-source",
        extra_rule_without_source,
        ("firewall_extra_rules[0] has neither from_cidrs nor from_groups",),
    ),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[case.id for case in BAD_CASES])
def test_bad_inventory_stops_the_run_before_any_host_is_contacted(
    case: BadCase,
    run_playbook: RunPlaybook,
    chained_playbook: Path,
    connection_counter: ConnectionCounter,
) -> None:
    inventory = good_inventory()
    case.break_inventory(inventory)
    connection_counter.point_hosts_here(inventory)

    result = run_playbook(inventory, chained_playbook)

    assert result.rc != 0, result.output
    for message in case.expected:
        assert message in result.flat_output, result.output
    assert "Fix:" in result.output, result.output
    assert "UNREACHABLE" not in result.output, result.output
    assert connection_counter.connections == 0, (
        f"{connection_counter.connections} connection(s) reached the hosts' ssh port\n"
        f"{result.output}"
    )
    for secret in SECRETS.values():
        assert secret not in result.output, f"secret {secret} leaked:\n{result.output}"


def with_boundary_values(inventory: Inventory) -> None:
    site_vars(inventory).update(webstack_vip="10.99.0.254", mysql_flavor="mysql")
    hosts_of(inventory, "loadbalancers")["lb1"]["keepalived_priority"] = 254
    hosts_of(inventory, "loadbalancers")["lb2"]["keepalived_priority"] = 1
    hosts_of(inventory, "webservers")["web1"]["haproxy_backend_weight"] = 0
    hosts_of(inventory, "webservers")["web2"]["haproxy_backend_weight"] = 256
    hosts_of(inventory, "db_replicas")["db3"]["mysql_server_id"] = 4294967295


def with_firewall_variables(inventory: Inventory) -> None:
    site_vars(inventory)["firewall_admin_cidrs"] = ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]
    site_vars(inventory)["firewall_extra_rules"] = [
        {"port": [9200, 9300], "from_groups": ["monitoring"], "comment": "search API"},
        {"port": 161, "proto": "udp", "from_cidrs": ["203.0.113.0/24"], "comment": "SNMP from the NOC"},
    ]


def unchanged(inventory: Inventory) -> None:
    """Keep the good inventory as it is."""


@pytest.mark.parametrize(
    "adjust",
    [unchanged, with_boundary_values, with_firewall_variables],
    ids=["base", "boundary-values", "firewall-variables"],
)
def test_good_inventory_passes(
    adjust: Callable[[Inventory], None],
    run_playbook: RunPlaybook,
    preflight_playbook: Path,
) -> None:
    inventory = good_inventory()
    adjust(inventory)

    result = run_playbook(inventory, preflight_playbook)

    assert result.rc == 0, result.output
    assert "UNREACHABLE" not in result.output, result.output
    for secret in SECRETS.values():
        assert secret not in result.output, f"secret {secret} leaked:\n{result.output}"


def test_guard_would_notice_a_run_that_preflight_did_not_stop(
    run_playbook: RunPlaybook,
    guard_playbook: Path,
    connection_counter: ConnectionCounter,
) -> None:
    """The checks above are meaningful: past preflight, the guard does contact hosts."""
    inventory = good_inventory()
    connection_counter.point_hosts_here(inventory)

    result = run_playbook(inventory, guard_playbook)

    assert result.rc != 0, result.output
    assert "UNREACHABLE" in result.output, result.output
    assert connection_counter.connections > 0, result.output
