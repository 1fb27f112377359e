# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible's linear strategy, run over Mitogen when it is installed.

Mitogen keeps one Python interpreter per host for the whole run instead of
starting one per task, which halves a converge of the lab. ansible.cfg in a
checkout selects this strategy; without Mitogen it is the stock linear one.
Opt out with ANSIBLE_STRATEGY=linear.

Every task runs in a worker forked from this process. Filter and test plugins
loaded here, before the first fork, are inherited by every worker instead of
being imported again in each one.

Before each fork, the objects this process holds are frozen out of the garbage
collector (gc.freeze, as the Python documentation advises before fork without
exec), so a worker's collections do not touch, and copy, every page it shares
with this process. They are let go and collected when the next play starts.

A task whose `when` is false for a host is skipped here, without forking a
worker for it: the same check the worker makes first, on the same variables,
with the same result sent back through the same queue. Only a plain task
qualifies: no loop (`when` is then per item), no delegation, not a handler.
If the check raises or is true, the task goes to a worker as usual, which then
reports the error or runs it.

A task whose action never touches the host (assert, set_fact, the role
argument checks, debug, fail) runs here too, on a copy of the task, through
the same TaskExecutor a worker would use; its result goes through the same
queue. A worker costs a fork and the copy-on-write faults that follow, which
is more than such an action does.

On a machine with fewer than four CPUs, Mitogen's CPU pinning is turned off:
it gives the multiplexer a CPU of its own and pins this process and every
worker to the one other CPU, so on two cores the controller's templating and
task workers never run on more than one of them.
"""

from __future__ import annotations

import gc
import os

from ansible.executor.task_executor import TaskExecutor
from ansible.playbook.handler import Handler
from ansible.plugins import loader as plugin_loader
from ansible.plugins.loader import filter_loader, test_loader

try:
    # ansible-core 2.19's result, template and task context classes; other
    # versions run every task in a worker, as the stock strategy does.
    from ansible._internal._task import TaskContext
    from ansible._internal._templating._engine import TemplateEngine
    from ansible.executor.task_result import _RawTaskResult
except ImportError:
    TaskContext = TemplateEngine = _RawTaskResult = None

# Actions that run entirely in the controller and never use the connection.
CONTROLLER_ACTIONS = frozenset(
    prefix + name
    for prefix in ("", "ansible.builtin.", "ansible.legacy.")
    for name in ("assert", "set_fact", "validate_argument_spec", "debug", "fail"))

try:
    import ansible_mitogen.affinity
    import ansible_mitogen.loaders
    import ansible_mitogen.strategy
except ImportError:
    from ansible.plugins.strategy.linear import StrategyModule as _BaseStrategy
else:
    if (os.cpu_count() or 1) < 4:
        ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()

    class _BaseStrategy(ansible_mitogen.strategy.StrategyMixin,
                        ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)):
        """The linear strategy over Mitogen's persistent interpreters."""

# Collection plugins the roles call; builtin ones load with the first lookup.
PRELOADED_FILTERS = (
    "ansible.builtin.default",
    "ansible.utils.ipaddr",
    "ansible.utils.ipv4",
    "ansible.utils.ipv6",
    "ansible.utils.network_in_network",
    "nospof.webstack.nft_sources",
    "nospof.webstack.db_topology",
    "nospof.webstack.db_topology_promote",
)
PRELOADED_TESTS = ("ansible.builtin.defined",)


def preload_template_plugins():
    """Load the template plugins once in the parent; a missing one is skipped."""
    for loader, names in ((filter_loader, PRELOADED_FILTERS), (test_loader, PRELOADED_TESTS)):
        for name in names:
            try:
                loader.get(name)
            except Exception:  # pylint: disable=broad-except
                # The task that uses it reports the error where it belongs.
                continue


def skips_without_a_worker(task):
    """Whether a false `when` can be settled here for this task."""
    return bool(task.when) and not (task.loop or task.loop_with or task.delegate_to
                                    or isinstance(task, Handler))


def controller_skip_result(task, task_vars, play_context):
    """The worker's skip result when the task's `when` is false for these
    variables; None when it is true or cannot be settled here."""
    if _RawTaskResult is None or not skips_without_a_worker(task):
        return None
    try:
        templar = TemplateEngine(loader=task._loader, variables=task_vars)
        variables = task_vars.copy()
        context = play_context.set_task_and_variable_override(
            task=task, variables=task_vars, templar=templar)
        context.post_validate(templar=templar)
        context.update_vars(variables)
        condition = {}
        if task._resolve_conditional(task.when, variables, result_context=condition):
            return None
        result = dict(changed=False, skipped=True,
                      skip_reason="Conditional result was False") | condition
        task.update_result_no_log(templar, result)
        return result
    except Exception:  # pylint: disable=broad-except
        # The worker evaluates it again and reports the error where it belongs.
        return None


def runs_in_the_controller(task):
    """Whether the task can run here instead of in a forked worker."""
    return (_RawTaskResult is not None
            and (task.resolved_action or task.action) in CONTROLLER_ACTIONS
            and not (task.async_val or task.until or task.timeout or isinstance(task, Handler)))


class StrategyModule(_BaseStrategy):
    """The linear strategy, with template plugins loaded before workers fork,
    the garbage collector kept off the pages they share with this process, and
    tasks skipped by `when` or that never touch the host settled without a worker."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        gc.unfreeze()
        gc.collect()
        preload_template_plugins()

    def _queue_task(self, host, task, task_vars, play_context):
        skipped = controller_skip_result(task, task_vars, play_context)
        if skipped is not None:
            self._start_here(host, task, task_vars, play_context)
            self._send_result_from_here(host, task, skipped)
            return None
        if runs_in_the_controller(task):
            self._start_here(host, task, task_vars, play_context)
            own_task = task.copy(exclude_tasks=True)
            try:
                with TaskContext(own_task):
                    result = TaskExecutor(host, own_task, task_vars, play_context, self._loader,
                                          plugin_loader.get_plugin_loader_namespace(),
                                          self._final_q, self._variable_manager).run()
            except Exception as error:  # pylint: disable=broad-except
                # TaskExecutor.run reports task errors itself; this is its own set-up failing.
                result = {"failed": True, "changed": False,
                          "msg": "Unexpected failure running the task in the controller: %s" % error}
            self._send_result_from_here(host, own_task, result)
            return None
        gc.freeze()
        return super()._queue_task(host, task, task_vars, play_context)

    def _start_here(self, host, task, task_vars, play_context):
        """Register a task settled in this process as _queue_task does for a worker."""
        self._queued_task_cache[(host.name, task._uuid)] = {
            "host": host, "task": task, "task_vars": task_vars, "play_context": play_context}
        self._tqm.send_callback("v2_runner_on_start", host, task)
        self._pending_results += 1

    def _send_result_from_here(self, host, ran_task, result):
        """Report its result as a worker reports its own."""
        self._final_q.send_task_result(_RawTaskResult(
            host=host, task=ran_task, return_data=result, task_fields=ran_task.dump_attrs()))
