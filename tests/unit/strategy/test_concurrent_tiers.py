"""The checkout strategy's concurrent tiers (nospof_concurrent_tiers).

The planner is tested on inventory objects. The run is tested with
ansible-playbook on loopback hosts (local connections, each with its own
interpreter path, so Mitogen gives each host its own interpreter, as a real
host has): every task writes when it starts and ends, and the tests read the
order back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible.errors import AnsibleError
from ansible.inventory.data import InventoryData

REPO_ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

TIERS = [{"group": "db"}, {"group": "lb"}, {"group": "web", "after": ["db"]}]


def inventory_hosts(groups):
    """Host objects of an inventory made of {group: [hosts]}."""
    inventory = InventoryData()
    for group, hosts in groups.items():
        inventory.add_group(group)
        for host in hosts:
            inventory.add_host(host, group)
    return [inventory.hosts[name] for name in sorted(inventory.hosts)]


def summary(tiers):
    return [(tier.groups, sorted(tier.hosts), sorted(g for other in tier.after for g in other.groups))
            for tier in tiers]


def test_each_listed_group_is_a_tier_and_after_names_the_tiers_waited_for(strategy):
    hosts = inventory_hosts({"db": ["d1", "d2"], "lb": ["l1"], "web": ["w1", "w2"]})
    assert summary(strategy.plan_tiers(TIERS, hosts)) == [
        (["db"], ["d1", "d2"], []),
        (["lb"], ["l1"], []),
        (["web"], ["w1", "w2"], ["db"]),
    ]


def test_tiers_that_share_a_host_become_one(strategy):
    hosts = inventory_hosts({"db": ["d1"], "lb": ["both"], "web": ["both", "w2"]})
    assert summary(strategy.plan_tiers(TIERS, hosts)) == [
        (["db"], ["d1"], []),
        (["lb", "web"], ["both", "w2"], ["db"]),
    ]


def test_a_host_in_no_listed_group_runs_in_a_tier_of_its_own(strategy):
    hosts = inventory_hosts({"db": ["d1"], "extra": ["x1"]})
    assert summary(strategy.plan_tiers(TIERS, hosts)) == [
        (["db"], ["d1"], []),
        (["other hosts"], ["x1"], []),
    ]


def test_tiers_that_wait_on_each_other_in_a_circle_become_one(strategy):
    spec = [{"group": "a", "after": ["c"]}, {"group": "b", "after": ["a"]}, {"group": "c", "after": ["b"]},
            {"group": "d", "after": ["a"]}]
    hosts = inventory_hosts({"a": ["a1"], "b": ["b1"], "c": ["c1"], "d": ["d1"]})
    assert summary(strategy.plan_tiers(spec, hosts)) == [
        (["a", "b", "c"], ["a1", "b1", "c1"], []),
        (["d"], ["d1"], ["a", "b", "c"]),
    ]


@pytest.mark.parametrize("spec, message", [
    ("db", "must be a list"),
    ([], "must be a list"),
    ([{"group": "db", "before": ["web"]}], "got the entry"),
    ([{"group": "web", "after": "db"}], "the after of web is not a list"),
    ([{"group": "web", "after": ["dbs"]}], "web starts after dbs, which the list does not name"),
    ([{"group": "db"}, {"group": "db"}], "names a group twice"),
])
def test_a_bad_tier_list_names_the_variable_and_the_problem(strategy, spec, message):
    with pytest.raises(AnsibleError, match="nospof_concurrent_tiers") as raised:
        strategy.plan_tiers(spec, inventory_hosts({"db": ["d1"]}))
    assert message in str(raised.value)


STAMP = "echo $(date +%s.%N) {{ inventory_hostname }} {{ event }} >> {{ log }}"

PLAY = [{
    "name": "Tiers",
    "hosts": "all",
    "gather_facts": False,
    "vars": {"nospof_concurrent_tiers": [
        {"group": "db", "ready_after": "Database tier"},
        {"group": "lb"},
        {"group": "web", "after": ["db"], "waits_at": "Web tier"}]},
    "tasks": [
        # Every tier includes it: the tiers share the role's blocks, loaded once.
        {"name": "Role of every host", "ansible.builtin.include_role": {"name": "common"}},
        {"name": "Database tier", "when": "inventory_hostname in groups.db", "block": [
            # d1 is slow, so d2 waits for it before the next task: the tier runs in step.
            {"name": "First database task",
             "ansible.builtin.shell": STAMP.replace("{{ event }}", "db-start")
             + "; sleep {{ 1.5 if inventory_hostname == 'd1' else 0.1 }}; "
             + STAMP.replace("{{ event }}", "db-end"),
             "notify": "Database handler"},
            # The handler runs outside the block: the tier has not left it.
            {"name": "Run the database handler", "ansible.builtin.meta": "flush_handlers"},
            {"name": "Include the database role", "ansible.builtin.include_role": {"name": "database"}},
            {"name": "Fail every database host when asked", "ansible.builtin.fail": {"msg": "asked to"},
             "when": "fail_db | default(false)"},
            {"name": "Leave the topology for the web tier",
             "ansible.builtin.set_fact": {"topology": "set by {{ inventory_hostname }}"},
             "run_once": True, "delegate_to": "localhost", "delegate_facts": True},
        ]},
        {"name": "Load balancer task", "when": "inventory_hostname in groups.lb",
         "ansible.builtin.shell": STAMP.replace("{{ event }}", "lb-start") + "; sleep 1; "
         + STAMP.replace("{{ event }}", "lb-end") + "{{ '; exit 3' if fail_lb | default(false) else '' }}",
         "notify": "Load balancer handler"},
        {"name": "Web tier", "when": "inventory_hostname in groups.web", "block": [
            {"name": "Web task", "ansible.builtin.shell": STAMP.replace(
                "{{ event }}", "web-{{ hostvars.localhost.topology | default('none') | replace(' ', '-') }}")}]},
        # Slow on the database hosts: the web tier does not wait for it.
        {"name": "Last task of every host",
         "ansible.builtin.shell": "sleep {{ 1.5 if inventory_hostname in groups.db else 0 }}; "
         + STAMP.replace("{{ event }}", "last")},
    ],
    "handlers": [{"name": "Load balancer handler", "ansible.builtin.shell": STAMP.replace("{{ event }}", "lb-handler")},
                 {"name": "Database handler",
                  "ansible.builtin.shell": "sleep 0.5; " + STAMP.replace("{{ event }}", "db-handler")}],
}]

COMMON = [{"name": "Task of every host", "ansible.builtin.shell": STAMP.replace("{{ event }}", "common")}]

INCLUDED = [{"name": "Included database task", "ansible.builtin.shell": STAMP.replace("{{ event }}", "db-included")}]


def run_tiers(tmp_path, strategy_name=None, extra_vars=()):
    """Run PLAY on loopback hosts; the events, each as (seconds, host, event), in time order."""
    log = tmp_path / "events"
    log.unlink(missing_ok=True)
    hosts = {}
    for name in ("d1", "d2", "l1", "w1", "w2"):
        interpreter = tmp_path / ("python-" + name)
        if not interpreter.exists():
            interpreter.symlink_to(sys.executable)
        hosts[name] = {"ansible_connection": "local", "ansible_python_interpreter": str(interpreter)}
    inventory = {"all": {"vars": {"log": str(log)}, "children": {
        "db": {"hosts": {name: hosts[name] for name in ("d1", "d2")}},
        "lb": {"hosts": {"l1": hosts["l1"]}},
        "web": {"hosts": {name: hosts[name] for name in ("w1", "w2")}}}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(PLAY, sort_keys=False))
    (tmp_path / "roles/database/tasks").mkdir(parents=True, exist_ok=True)
    (tmp_path / "roles/database/tasks/main.yml").write_text(yaml.safe_dump(INCLUDED, sort_keys=False))
    (tmp_path / "roles/common/tasks").mkdir(parents=True, exist_ok=True)
    (tmp_path / "roles/common/tasks/main.yml").write_text(yaml.safe_dump(COMMON, sort_keys=False))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    if strategy_name:
        env["ANSIBLE_STRATEGY"] = strategy_name
    command = [str(ANSIBLE_PLAYBOOK), "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")]
    for extra in extra_vars:
        command += ["-e", extra]
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                               timeout=300, check=False)
    events = sorted((float(seconds), host, event) for seconds, host, event
                    in (line.split() for line in log.read_text().splitlines()))
    return completed, events


def when(events, host, event):
    return [seconds for seconds, event_host, name in events if event_host == host and name == event]


def test_tiers_run_at_once_each_in_step_and_after_the_tiers_they_wait_for(tmp_path):
    completed, events = run_tiers(tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    d1_end = when(events, "d1", "db-end")[0]
    # The load balancer tier does not wait for the slow database host.
    assert when(events, "l1", "lb-start")[0] < d1_end
    # Within the database tier, no host starts the next task before d1 ends the first.
    assert min(when(events, "d1", "db-included") + when(events, "d2", "db-included")) > d1_end
    # The web tier runs its tasks before its waits_at block at once with the others...
    assert max(when(events, "w1", "common") + when(events, "w2", "common")) < d1_end
    # ...starts that block once the database tier has left its ready_after block, and sees
    # its fact, set once, by d1...
    db_tier_done = max(when(events, "d1", "db-included") + when(events, "d2", "db-included"))
    web = [(seconds, event) for seconds, host, event in events if host.startswith("w") and event.startswith("web")]
    assert len(web) == 2 and all(seconds > db_tier_done and event == "web-set-by-d1" for seconds, event in web)
    # ...and does not wait for the database hosts' last, slow task.
    assert max(seconds for seconds, _event in web) < min(when(events, "d1", "last") + when(events, "d2", "last"))
    assert len(when(events, "l1", "lb-handler")) == 1


def test_each_result_is_shown_under_its_own_task(tmp_path):
    completed, _events = run_tiers(tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    runs = {"d": {"Task of every host", "First database task", "Database handler", "Included database task",
                  "Last task of every host"},
            "l": {"Task of every host", "Load balancer task", "Load balancer handler", "Last task of every host"},
            "w": {"Task of every host", "Web task", "Last task of every host"}}
    banner = None
    shown = 0
    for line in completed.stdout.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            banner = line[line.index("[") + 1:line.rindex("]")].split(" : ")[-1]
        elif line.startswith("changed: ["):
            host = line[len("changed: ["):line.index("]")]
            assert banner in runs[host[0]], (host, banner, completed.stdout)
            shown += 1
    assert shown == 5 + 2 + 2 + 2 + 1 + 1 + 2 + 5


def test_the_stock_linear_strategy_runs_the_same_play_one_task_at_a_time(tmp_path):
    completed, events = run_tiers(tmp_path, strategy_name="linear")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    # The same events, but the load balancer's task waits for the database tasks.
    assert when(events, "l1", "lb-start")[0] > when(events, "d1", "db-end")[0]
    assert sorted(event for _seconds, _host, event in events) == sorted(
        ["common"] * 5 + ["db-start"] * 2 + ["db-end"] * 2 + ["db-handler"] * 2 + ["db-included"] * 2
        + ["lb-start", "lb-end", "lb-handler"] + ["web-set-by-d1"] * 2 + ["last"] * 5)


def test_a_failure_in_one_tier_leaves_the_other_tiers_running(tmp_path):
    completed, events = run_tiers(tmp_path, extra_vars=["fail_lb=true"])
    assert completed.returncode == 2
    recap = {line.split()[0]: line for line in completed.stdout.splitlines() if ": ok=" in line}
    assert "failed=1" in recap["l1"]
    assert all("failed=0" in recap[host] for host in ("d1", "d2", "w1", "w2"))
    assert not when(events, "l1", "lb-handler")
    assert len([1 for _seconds, host, event in events if host.startswith("w") and event == "web-set-by-d1"]) == 2


def test_a_tier_whose_awaited_tier_failed_on_every_host_does_not_run(tmp_path):
    completed, events = run_tiers(tmp_path, extra_vars=["fail_db=true"])
    assert completed.returncode == 2
    assert "The web tier does not run: every host of the db tier it starts after failed." in " ".join(
        completed.stdout.split() + completed.stderr.split())
    # The web hosts stop where they wait for the database tier.
    assert sorted(event for _seconds, host, event in events if host.startswith("w")) == ["common", "common"]
    # The load balancer tier waits for nothing, so it still runs.
    assert when(events, "l1", "lb-handler")


def block_and_task_names(entries):
    """Every task and block name in a task list, blocks' children included."""
    for entry in entries or []:
        if entry.get("name"):
            yield entry["name"]
        for key in ("block", "rescue", "always"):
            yield from block_and_task_names(entry.get(key))


def test_every_wait_in_site_yml_names_a_block_of_the_play_or_its_roles():
    """A waits_at or ready_after that names no block never closes its gate: the
    tier would run on without waiting. The web tier's names a block of the app
    role, so a rename there must fail here."""
    play = yaml.safe_load((REPO_ROOT / "playbooks/site.yml").read_text())[-1]
    names = set(block_and_task_names(play["tasks"]))
    for tasks_file in (REPO_ROOT / "roles").glob("*/tasks/*.yml"):
        names.update(block_and_task_names(yaml.safe_load(tasks_file.read_text())))
    waits = [entry[key] for entry in play["vars"]["nospof_concurrent_tiers"]
             for key in ("waits_at", "ready_after") if key in entry]
    assert "Configure the app and switch to the release" in waits
    assert [name for name in waits if name not in names] == []
