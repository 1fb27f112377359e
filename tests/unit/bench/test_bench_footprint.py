"""The footprint benchmark's grouping of processes by unit and tier, and the LB budget."""

from __future__ import annotations

from footprint import LB_BUDGET_KIB, budget_problems, classify, summarize, tier_totals

APP_UNIT = "nospof-app.service"


def process(unit: str, rss: int, pss: int = 0) -> dict:
    return {"pid": 1, "comm": unit.split(".")[0][:15], "unit": unit, "rss_kib": rss, "pss_kib": pss}


def test_units_map_to_tiers_and_the_app_unit_is_gunicorn():
    assert classify("haproxy.service", APP_UNIT) == ("lb", "haproxy")
    assert classify("prometheus-node-exporter.service", APP_UNIT) == ("exporters", "node_exporter")
    assert classify("prometheus-blackbox-exporter.service", APP_UNIT) == ("monitoring", "blackbox_exporter")
    assert classify(APP_UNIT, APP_UNIT) == ("web", "gunicorn")
    assert classify("ssh.service", APP_UNIT) == ("base", "ssh")
    assert classify("init.scope", APP_UNIT) == ("base", "init.scope")


def test_every_process_of_a_daemon_is_summed():
    tiers = summarize([process("haproxy.service", 13000, 6000), process("haproxy.service", 12500, 5500),
                       process("keepalived.service", 10000, 3000), process("keepalived.service", 4000, 1000),
                       process("prometheus-node-exporter.service", 22000, 20000), process("ssh.service", 9000, 2000)],
                      APP_UNIT)
    assert list(tiers) == ["lb", "exporters", "base"]
    assert tiers["lb"]["haproxy"] == {"processes": 2, "rss_kib": 25500, "pss_kib": 11500}
    assert tier_totals(tiers["lb"]) == {"rss_kib": 39500, "pss_kib": 15500}


def test_an_lb_at_or_over_64_mib_fails_and_one_under_passes():
    under = {"tiers": {"lb": {"haproxy": {"rss_kib": LB_BUDGET_KIB - 1, "pss_kib": 0, "processes": 2}}}}
    at = {"tiers": {"lb": {"haproxy": {"rss_kib": LB_BUDGET_KIB - 100, "pss_kib": 0, "processes": 2},
                           "keepalived": {"rss_kib": 100, "pss_kib": 0, "processes": 2}}}}
    assert budget_problems({"lb1": under}, ["lb1"]) == []
    assert budget_problems({"lb2": at}, ["lb2"]) == ["lb2: haproxy + keepalived RSS 64.0 MiB >= 64 MiB"]


def test_an_lb_without_its_daemons_is_a_problem():
    assert budget_problems({"lb1": {"tiers": {}}}, ["lb1"]) == ["lb1: no haproxy or keepalived process found"]
