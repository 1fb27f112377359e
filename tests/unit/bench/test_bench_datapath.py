"""The data path benchmark's wrk parser, thread split and LB cost, on wrk output recorded in the lab."""

from __future__ import annotations

import pytest
from datapath import lb_cost, parse_wrk, run_problems, split_threads, targets_script


def test_a_direct_run_with_the_lua_split_is_parsed_in_milliseconds_and_bytes(recorded):
    run = parse_wrk(recorded("wrk_direct_lua_split.txt"))
    assert (run["threads"], run["connections"]) == (4, 16)
    assert run["latency_ms"] == {"avg": 1.75, "stdev": 4.25, "max": 77.65, "p50": 0.93, "p75": 1.54, "p90": 2.54,
                                 "p99": 19.73}
    assert run["requests"] == 42183
    assert run["duration_s"] == 3.06
    assert run["bytes_read"] == int(86.57 * 1024 ** 2)
    assert run["requests_per_second"] == 13764.0
    assert run["transfer_bytes_per_second"] == int(28.25 * 1024 ** 2)
    assert run["socket_errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    assert run["non_2xx_or_3xx"] == 0
    assert not run_problems(run)


def test_microseconds_and_kilobytes_are_converted(recorded):
    run = parse_wrk(recorded("wrk_non_2xx.txt"))
    assert run["latency_ms"]["p50"] == 0.402
    assert run["latency_ms"]["avg"] == 0.7394
    assert run["latency_ms"]["p90"] == 1.86
    tls = parse_wrk(recorded("wrk_vip_https.txt"))
    assert tls["transfer_bytes_per_second"] == int(412.36 * 1024)
    assert tls["latency_ms"]["p99"] == 23.41


def test_non_2xx_responses_make_a_run_incorrect(recorded):
    run = parse_wrk(recorded("wrk_non_2xx.txt"))
    assert run["non_2xx_or_3xx"] == 37371
    assert run_problems(run) == ["37371 non-2xx/3xx responses"]


def test_socket_errors_make_a_run_incorrect(recorded):
    run = parse_wrk(recorded("wrk_socket_errors.txt"))
    assert run["socket_errors"] == {"connect": 0, "read": 0, "write": 38056, "timeout": 0}
    assert run["requests"] == 3493
    assert run_problems(run) == ["38056 socket errors {'connect': 0, 'read': 0, 'write': 38056, 'timeout': 0}"]


def test_output_of_a_run_that_never_started_is_refused():
    with pytest.raises(ValueError, match="not the output of a finished wrk run"):
        parse_wrk("unable to connect to 10.89.20.21:80 Connection refused\n")


@pytest.mark.parametrize(("weights", "threads", "expected"), [
    ({"web1": 150, "web2": 50}, 4, {"web1": 3, "web2": 1}),
    ({"web1": 150, "web2": 50}, 2, {"web1": 1, "web2": 1}),
    ({"web1": 100, "web2": 100, "web3": 100}, 4, {"web1": 2, "web2": 1, "web3": 1}),
    ({"web1": 100, "web2": 0}, 3, {"web1": 3}),
    ({"web1": 256, "web2": 1}, 3, {"web1": 2, "web2": 1}),
])
def test_threads_follow_the_weights_and_every_live_server_gets_one(weights, threads, expected):
    assert split_threads(weights, threads) == expected


def test_too_few_threads_or_no_weight_is_refused():
    with pytest.raises(ValueError, match="cannot cover 3 servers"):
        split_threads({"a": 1, "b": 1, "c": 1}, 2)
    with pytest.raises(ValueError, match="no server with a positive weight"):
        split_threads({"a": 0}, 2)


def test_the_lua_script_points_each_thread_at_its_own_target():
    script = targets_script(["10.0.0.1", "10.0.0.1", "10.0.0.2"], 80)
    assert 'local targets = {"10.0.0.1", "10.0.0.1", "10.0.0.2"}' in script
    assert 'thread.addr = wrk.lookup(targets[next_thread], "80")[1]' in script


def test_the_lb_cost_is_vip_minus_direct_and_vip_over_direct(recorded):
    direct = {**parse_wrk(recorded("wrk_direct_lua_split.txt")), "problems": []}
    via_vip = {**parse_wrk(recorded("wrk_vip_https.txt")), "problems": []}
    assert lb_cost(direct, via_vip) == {"added_p50_ms": 4.94, "added_p99_ms": 3.68,
                                        "throughput_ratio_vip_to_direct": 0.097}
    assert lb_cost({"problems": ["wrk exited with 1"]}, via_vip) is None
