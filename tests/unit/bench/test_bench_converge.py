"""The converge benchmark's parser of ansible-playbook output, on the tail of a recorded warm converge."""

from __future__ import annotations

from converge import converge_problems, cpu_probe_seconds, parse_converge


def test_the_play_recap_gives_every_hosts_counts(recorded):
    parsed = parse_converge(recorded("converge_warm_tail.log"))
    assert sorted(parsed["recap"]) == ["client1", "db1", "db2", "lb1", "lb2", "mon1", "web1", "web2"]
    assert parsed["recap"]["lb1"] == {"ok": 80, "changed": 0, "unreachable": 0, "failed": 0, "skipped": 15,
                                      "rescued": 0, "ignored": 0}


def test_roles_top_tasks_and_timer_are_read(recorded):
    parsed = parse_converge(recorded("converge_warm_tail.log"))
    assert list(parsed["roles_s"])[:3] == ["firewall", "common", "mysql_replication"]
    assert parsed["roles_s"]["nginx"] == 1.14
    assert parsed["roles_s"]["ansible.builtin.include_role"] == 0.08
    assert parsed["roles_total_s"] == 66.0
    assert len(parsed["top_tasks"]) == 15
    assert parsed["top_tasks"][0] == {"task": "nospof.webstack.common : List the installed packages", "seconds": 5.48}
    # A name too long for its column keeps its last words and a short run of dashes.
    assert {"task": "nospof.webstack.firewall : Read the environment of the SSH session Ansible uses",
            "seconds": 1.74} in parsed["top_tasks"]
    assert parsed["timer_s"] == 66


def test_colour_codes_do_not_hide_the_recap(recorded):
    coloured = recorded("converge_warm_tail.log").replace("lb1  ", "\x1b[0;32mlb1\x1b[0m  ")
    coloured = coloured.replace("PLAY RECAP", "\x1b[1mPLAY RECAP\x1b[0m")
    assert parse_converge(coloured)["recap"]["lb1"]["ok"] == 80


def test_a_clean_warm_converge_has_no_problem(recorded):
    assert converge_problems(parse_converge(recorded("converge_warm_tail.log")), 0, warm=True) == []


def test_changes_fail_a_warm_converge_only(recorded):
    changed = recorded("converge_warm_tail.log").replace(
        "web2                       : ok=44   changed=0 ", "web2                       : ok=44   changed=3 ")
    parsed = parse_converge(changed)
    assert converge_problems(parsed, 2, warm=True) == [
        "ansible-playbook exited with 2", "web2: changed=3 on a warm converge (not idempotent)"]
    assert converge_problems(parsed, 0, warm=False) == []


def test_failed_or_unreachable_hosts_and_a_missing_recap_fail_any_converge(recorded):
    broken = recorded("converge_warm_tail.log").replace("failed=0    skipped=15   rescued=0    ignored=0   \nlb2",
                                                        "failed=1    skipped=15   rescued=0    ignored=0   \nlb2")
    assert converge_problems(parse_converge(broken), 2, warm=False) == [
        "ansible-playbook exited with 2", "lb1: failed=1 unreachable=0"]
    assert converge_problems(parse_converge("ERROR! the playbook could not be parsed\n"), 4, warm=False) == [
        "ansible-playbook exited with 4", "no PLAY RECAP in the output"]


def test_the_cpu_probe_times_a_loop():
    probe = cpu_probe_seconds(repeats=1)
    assert isinstance(probe, float) and 0 < probe < 60


def test_the_cpu_probe_keeps_the_fastest_try(monkeypatch):
    import converge
    # Start and end readings of three tries that take 3, 1.25 and 2 s.
    readings = iter([10.0, 13.0, 20.0, 21.25, 30.0, 32.0])
    monkeypatch.setattr(converge.time, "perf_counter", lambda: next(readings))
    assert cpu_probe_seconds(repeats=3) == 1.25
