"""On a converged lab, --check --diff of the whole site predicts no change and leaks no secret."""

from __future__ import annotations

import re

from lab_helpers import Lab

SECRET_VARIABLES = ("mysql_replication_password", "mysql_app_password", "mysql_monitor_password",
                    "haproxy_stats_password")
RECAP_LINE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def test_check_diff_on_a_converged_lab_changes_nothing_and_hides_secrets(lab: Lab) -> None:
    result = lab.ansible_playbook("site.yml", "--check", "--diff")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    recap = {host: (int(changed), int(unreachable), int(failed))
             for host, _ok, changed, unreachable, failed in RECAP_LINE.findall(output)}
    assert set(recap) >= set(lab.hostvars), recap
    assert all(counts == (0, 0, 0) for counts in recap.values()), recap
    for variable in SECRET_VARIABLES:
        secret = lab.render(variable)
        assert secret and secret not in output, f"{variable} appears in the --check --diff output"
