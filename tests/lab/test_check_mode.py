"""On a converged lab, --check --diff of the whole site predicts no change and leaks no secret."""

from __future__ import annotations

import re
from pathlib import Path

from lab_helpers import Lab

SECRET_VARIABLES = ("mysql_replication_password", "mysql_app_password", "mysql_monitor_password",
                    "haproxy_stats_password")
RECAP_LINE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def recap_counts(output: str) -> dict:
    """(changed, unreachable, failed) per host, from a run's PLAY RECAP."""
    return {host: (int(changed), int(unreachable), int(failed))
            for host, _ok, changed, unreachable, failed in RECAP_LINE.findall(output)}


def test_check_diff_on_a_converged_lab_changes_nothing_and_hides_secrets(lab: Lab) -> None:
    result = lab.ansible_playbook("site.yml", "--check", "--diff")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    recap = recap_counts(output)
    assert set(recap) >= set(lab.hostvars), recap
    assert all(counts == (0, 0, 0) for counts in recap.values()), recap
    for variable in SECRET_VARIABLES:
        secret = lab.render(variable)
        assert secret and secret not in output, f"{variable} appears in the --check --diff output"


def test_tier_roles_run_without_common_or_fact_cache_keep_every_daemon_size(lab: Lab, tmp_path: Path) -> None:
    """The operations playbooks run tier roles without the common role; with no fact cache (a new
    controller) the roles must size their daemons as the site did, not from fallbacks."""
    playbook = str(Path(__file__).parent / "fixtures" / "tiers_without_common.yml")
    result = lab.ansible_playbook(playbook, "--check", "--diff",
                                  env={"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "empty-fact-cache")})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    recap = recap_counts(output)
    expected = {host for group in ("databases", "webservers", "loadbalancers") for host in lab.groups[group]}
    assert set(recap) >= expected, recap
    assert all(counts == (0, 0, 0) for counts in recap.values()), (recap, output[-3000:])
