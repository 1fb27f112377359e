"""The benchmark report: missing inputs say "not run", present ones become tables."""

from __future__ import annotations

import json

from converge import parse_converge
from datapath import lb_cost, parse_wrk
from report import load_inputs, markdown

MACHINE = {"cpu_model": "Test CPU", "cores": 2, "memory_mib": 4096, "kernel": "6.1.0", "debian": "12.8",
           "container_engine": "podman version 4.3.1", "ansible_core": "2.19.0", "python": "3.11.2",
           "date": "2026-01-01T00:00:00+00:00"}


def test_without_any_input_every_section_says_not_run(tmp_path):
    results = load_inputs(tmp_path)
    assert set(results.values()) == {None}
    page = markdown({"machine": MACHINE, "results": results})
    for heading in ("## Data path", "## Memory footprint", "## Load balancer failover", "## Rolling deploy",
                    "## Replication", "## Chaos suite"):
        assert f"{heading}\n\nnot run." in page
    assert "| cold | not run |" in page
    assert "| CPU | Test CPU |" in page
    assert "make bench" in page


def test_converge_and_datapath_figures_reach_the_page(tmp_path, recorded):
    bench = tmp_path / "bench"
    bench.mkdir()
    warm = {"benchmark": "converge", "mode": "warm", "wall_s": 68.1, "hosts": 8, "changed_total": 0,
            "cpu_probe_s": 0.561, "correct": True, "problems": [], **parse_converge(recorded("converge_warm_tail.log"))}
    (bench / "converge_warm.json").write_text(json.dumps(warm))
    direct = {"from": "lb2", **parse_wrk(recorded("wrk_direct_lua_split.txt")), "problems": []}
    via_vip = {"from": "lb2", **parse_wrk(recorded("wrk_vip_https.txt")), "problems": []}
    datapath = {"benchmark": "datapath", "load_host": "lb2", "vip_holder": "lb1", "outside_client": None,
                "settings": {"duration_s": 3.0, "warmup_s": 1.0, "connections": 16, "threads": 4},
                "paths": {"static": "/static/nospof-bench.html", "static_bytes": 1828, "app": "/healthz"},
                "direct_split": {"web1": {"haproxy_weight": 150, "wrk_threads": 3}},
                "runs": {"static_direct": direct, "static_vip": via_vip},
                "lb_cost": {"static": lb_cost(direct, via_vip)}, "problems": {}, "correct": True}
    (bench / "datapath.json").write_text(json.dumps(datapath))
    (bench / "custom.json").write_text("{}")
    results = load_inputs(tmp_path)
    assert results["custom"]["data"] == {}
    page = markdown({"machine": MACHINE, "results": results})
    assert "| warm | 68.10 | 8 | 0 | 0 | - | 0.56 | yes |" in page
    assert "| firewall | - | 13.57 |" in page
    assert "| static_direct | lb2 | 0.93 | 1.54 | 2.54 | 19.73 | 13764.00 | 28.2 | 0 / 0 |" in page
    assert "| static | 4.94 | 3.68 | 0.10 |" in page
