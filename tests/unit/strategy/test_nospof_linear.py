"""The checkout strategy's helpers: the template code cache, the fact decode
memo, atomic plugin imports and the choice of where a task runs."""

from __future__ import annotations

import os
import threading
import time

import pytest

from ansible._internal._plugins._cache import PluginInterposer
from ansible._internal._templating._engine import TemplateEngine
from ansible._internal._templating._jinja_bits import AnsibleEnvironment
from ansible.module_utils._internal._datatag import AnsibleTagHelper
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.handler import Handler
from ansible.playbook.task import Task
from ansible.plugins.cache.memory import CacheModule as MemoryCache
from ansible.plugins.loader import action_loader
from ansible._internal._datatag._tags import TrustedAsTemplate


def trusted(text):
    return AnsibleTagHelper.tag(text, (TrustedAsTemplate(),))


def render(template, **variables):
    return TemplateEngine(loader=DataLoader(), variables=variables).template(trusted(template))


def test_a_cached_template_renders_each_callers_variables(strategy):
    strategy.compile_each_template_once()
    assert AnsibleEnvironment.compile.compiles_once
    template = "{{ port + 1 }} on {{ name }} (cache test)"
    assert render(template, port=1, name="web1") == "2 on web1 (cache test)"
    assert render(template, port=41, name="web2") == "42 on web2 (cache test)"


def test_the_cache_compiles_a_template_string_once(strategy, monkeypatch):
    strategy.compile_each_template_once()
    calls = []
    jinja_compile = AnsibleEnvironment._compile

    def counting_compile(self, source, filename):
        calls.append(source)
        return jinja_compile(self, source, filename)

    monkeypatch.setattr(AnsibleEnvironment, "_compile", counting_compile)
    template = "{{ items | length }} items, counted once"
    for size in range(5):
        assert render(template, items=list(range(size))) == "%d items, counted once" % size
    assert len(calls) == 1


def test_threads_rendering_one_new_template_at_once_compile_it_once(strategy, monkeypatch):
    strategy.compile_each_template_once()
    calls = []
    jinja_compile = AnsibleEnvironment._compile

    def slow_counting_compile(self, source, filename):
        calls.append(source)
        time.sleep(0.2)  # the other threads arrive while this one compiles
        return jinja_compile(self, source, filename)

    monkeypatch.setattr(AnsibleEnvironment, "_compile", slow_counting_compile)
    template = "{{ host }} renders the shared file (threads test)"
    results = {}

    def render_for(host):
        results[host] = render(template, host=host)

    threads = [threading.Thread(target=render_for, args=("web%d" % n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {"web%d" % n: "web%d renders the shared file (threads test)" % n for n in range(6)}
    assert len(calls) == 1


def test_a_cached_condition_is_evaluated_on_each_callers_variables(strategy):
    strategy.compile_each_template_once()
    condition = trusted("weight | int > 10 and role == 'web'")
    for weight, role, expected in ((20, "web", True), (5, "web", False), (20, "db", False)):
        engine = TemplateEngine(loader=DataLoader(), variables=dict(weight=weight, role=role))
        assert engine.evaluate_conditional(condition) is expected


def test_different_delimiters_are_compiled_apart(strategy):
    strategy.compile_each_template_once()
    body = "[[ greeting ]] {{ greeting }}"
    assert render("#jinja2: variable_start_string:'[[', variable_end_string:']]'\n" + body,
                  greeting="hi") == "hi {{ greeting }}"
    assert render("[[ greeting ]] {{ greeting }}", greeting="hi") == "[[ greeting ]] hi"


def test_a_template_syntax_error_is_still_reported(strategy):
    strategy.compile_each_template_once()
    with pytest.raises(Exception, match="(?i)syntax"):
        render("{{ broken ( }}")
    # Again: a failed compile leaves nothing in the cache.
    with pytest.raises(Exception, match="(?i)syntax"):
        render("{{ broken ( }}")


def fact_cache():
    return PluginInterposer(MemoryCache())


def test_facts_read_twice_are_equal_but_not_shared(strategy):
    strategy.decode_each_fact_payload_once()
    cache = fact_cache()
    cache.set("web1", {"ansible_memtotal_mb": 2048, "ansible_processor_vcpus": 2})
    first = cache.get("web1")
    first["added_by_a_caller"] = True
    second = cache.get("web1")
    assert second == {"ansible_memtotal_mb": 2048, "ansible_processor_vcpus": 2}
    assert second is not first


def test_facts_stored_again_are_read_anew(strategy):
    strategy.decode_each_fact_payload_once()
    cache = fact_cache()
    cache.set("db1", {"ansible_memtotal_mb": 1024})
    assert cache.get("db1")["ansible_memtotal_mb"] == 1024
    facts = cache.get("db1")
    facts |= {"ansible_memtotal_mb": 4096}
    cache.set("db1", facts)
    assert cache.get("db1")["ansible_memtotal_mb"] == 4096


def test_two_threads_loading_one_plugin_both_see_it_whole(strategy, tmp_path):
    strategy.import_plugins_one_at_a_time()
    plugin = tmp_path / "slow_plugin.py"
    plugin.write_text("import time\ntime.sleep(0.3)\nLOADED = True\n")
    seen = []

    def load():
        module = action_loader._load_module_source(
            python_module_name="ansible_test_nospof_slow_plugin", path=str(plugin))
        seen.append(getattr(module, "LOADED", False))

    threads = [threading.Thread(target=load, name=name) for name in ("first", "second")]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert seen == [True, True]


@pytest.mark.parametrize("fields, in_a_thread", [
    (dict(action="ansible.builtin.command"), True),
    (dict(action="nospof.webstack.haproxy_backend"), True),
    (dict(action="ansible.builtin.apt", async_val=60), False),
    (dict(action="ansible.builtin.command", timeout=5), False),
    (dict(action="ansible.builtin.pause"), False),
    (dict(action="ansible.builtin.reboot"), False),
])
def test_which_tasks_run_in_a_thread(strategy, monkeypatch, fields, in_a_thread):
    monkeypatch.delenv("NOSPOF_FORKED_WORKERS", raising=False)
    task = Task()
    for name, value in fields.items():
        setattr(task, name, value)
    assert strategy.runs_in_a_thread(task) is in_a_thread


def test_handlers_and_the_opt_out_fork_a_worker(strategy, monkeypatch):
    handler = Handler()
    handler.action = "ansible.builtin.systemd"
    assert strategy.runs_in_a_thread(handler) is False
    task = Task()
    task.action = "ansible.builtin.command"
    monkeypatch.setenv("NOSPOF_FORKED_WORKERS", "1")
    assert strategy.runs_in_a_thread(task) is False


def test_a_fork_waits_until_no_task_thread_holds_a_lock(strategy):
    """A worker forked while a task thread holds a lock would inherit it held
    and hang on it: the fork waits for the task threads to finish."""
    lock = threading.Lock()
    threads = strategy.TaskThreads()

    def hold_the_lock():
        with lock:
            time.sleep(0.5)

    threads.start(hold_the_lock, "task holding a lock", ())
    time.sleep(0.1)  # the thread holds it now
    threads.wait_until_none_run()
    child = os.fork()
    if child == 0:
        os._exit(0 if lock.acquire(timeout=2) else 1)
    _pid, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_result_added_wakes_the_waiting_loop_at_once(strategy):
    results = strategy.ArrivingResults()
    results.arrived.clear()
    adder = threading.Timer(0.02, results.append, args=("result",))
    started = time.monotonic()
    adder.start()
    woken = results.arrived.wait(5)
    waited = time.monotonic() - started
    adder.join()
    # Woken by the result, long before the 5 s timeout, and the result is there to read.
    assert woken and waited < 1
    assert results.popleft() == "result" and not results


def test_with_no_result_the_loop_sleeps_until_the_backstop(strategy):
    results = strategy.ArrivingResults()
    started = time.monotonic()
    assert not results.arrived.wait(strategy.RESULT_WAIT_BACKSTOP)
    assert time.monotonic() - started >= strategy.RESULT_WAIT_BACKSTOP * 0.9


def test_kept_results_are_read_back_by_the_next_run(strategy, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    made = []

    def make():
        made.append(1)
        return "minified"

    def kept_get(kept):
        return kept.get(("minified", "source"), make, str.encode, bytes.decode)

    assert kept_get(strategy.KeptResults("test")) == "minified"
    # A new run (a new KeptResults) reads the file instead of making it again.
    assert kept_get(strategy.KeptResults("test")) == "minified"
    assert len(made) == 1
    files = list((tmp_path / "nospof-webstack" / "test").iterdir())
    assert len(files) == 1 and files[0].read_bytes() == b"minified"
    assert oct((tmp_path / "nospof-webstack" / "test").stat().st_mode & 0o777) == "0o700"


def test_a_directory_others_may_write_to_is_not_used(strategy, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "nospof-webstack" / "shared").mkdir(parents=True)
    (tmp_path / "nospof-webstack" / "shared").chmod(0o777)
    kept = strategy.KeptResults("shared")
    assert kept.directory is None
    assert kept.get(("minified", "source"), lambda: "made", str.encode, bytes.decode) == "made"
    assert not list((tmp_path / "nospof-webstack" / "shared").iterdir())


def test_compiled_imports_are_the_same_code_read_back(strategy, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    source = b"import os\nfrom ansible.module_utils import basic\n"
    strategy.keep_compiled_imports()
    first = strategy.ansible_mitogen.module_finder.compile(source, "scanned", "exec")
    strategy.keep_compiled_imports()  # a new run: read from the file
    again = strategy.ansible_mitogen.module_finder.compile(source, "scanned", "exec")
    assert again == compile(source, "scanned", "exec") and first.co_names == again.co_names
    assert strategy.mitogen.master.compile is strategy.ansible_mitogen.module_finder.compile


def counting(function, calls):
    def counted(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)
    return counted


def test_code_kept_on_a_host_is_read_back_by_the_next_run(strategy, tmp_path):
    calls = []
    source = "def greet(name):\n    return 'hello ' + name\n"
    kept_compile = strategy.keep_code_on_the_host(counting(compile, calls), str(tmp_path / "code"))
    first = kept_compile(source, "master:/greet.py", "exec", flags=0, dont_inherit=True)
    # The next run on this host: a new compile() over the same directory.
    again = strategy.keep_code_on_the_host(counting(compile, calls), str(tmp_path / "code"))(
        source, "master:/greet.py", "exec", 0, 1)
    assert len(calls) == 1 and again == first
    namespace = {}
    exec(again, namespace)  # pylint: disable=exec-used
    assert namespace["greet"]("web1") == "hello web1"
    assert oct((tmp_path / "code").stat().st_mode & 0o777) == "0o700"
    # Another file name or source is another code object.
    kept_compile(source, "master:/other.py", "exec", 0, True)
    kept_compile(source + "\n", "master:/greet.py", "exec", 0, True)
    assert len(calls) == 3 and len(list((tmp_path / "code").iterdir())) == 3


def test_a_host_directory_others_may_write_to_leaves_the_builtin(strategy, tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code").chmod(0o777)
    assert strategy.keep_code_on_the_host(compile, str(tmp_path / "code")) is compile


def test_code_that_inherits_future_flags_is_not_kept(strategy, tmp_path):
    kept_compile = strategy.keep_code_on_the_host(compile, str(tmp_path / "code"))
    kept_compile("x = 1\n", "inherits.py", "exec")
    kept_compile("x = 1\n", "flagged.py", "exec", 0x1000000, True)
    assert not list((tmp_path / "code").iterdir())


def test_the_core_source_sent_to_hosts_ends_binding_compile_to_the_kept_one(strategy, tmp_path, monkeypatch):
    import pwd
    strategy.keep_compiled_code_on_hosts()
    core_source = strategy.mitogen.parent._get_core_source()
    assert core_source.startswith(strategy.mitogen.minify.minimize_source(
        strategy.inspect.getsource(strategy.mitogen.core))[:200])
    appended = core_source[core_source.rindex("\ndef keep_code_on_the_host("):]
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: type("Entry", (), {"pw_dir": str(tmp_path)}))
    namespace = {"compile": compile}
    exec(appended, namespace)  # pylint: disable=exec-used
    assert namespace["compile"] is not compile
    namespace["compile"]("y = 2\n", "master:/y.py", "exec", flags=0, dont_inherit=True)
    assert len(list((tmp_path / ".cache" / "nospof-webstack" / "mitogen-code").iterdir())) == 1


def test_a_template_plugin_is_found_once_per_name(strategy, monkeypatch):
    from ansible.plugins.loader import filter_loader
    calls = []
    loader_get = filter_loader.get

    def builtin_or_none(name):
        return loader_get(name) if name == "to_json" else None  # as with the collection loader on

    monkeypatch.setattr(filter_loader, "get", counting(builtin_or_none, calls))
    strategy.find_each_template_plugin_once()
    first = filter_loader.get("to_json")
    assert filter_loader.get("to_json") is first and first is not None
    # A name no plugin has is kept as such.
    assert filter_loader.get("no_such_filter") is None and filter_loader.get("no_such_filter") is None
    assert [call[0] for call in calls] == ["to_json", "no_such_filter"]
    strategy.find_each_template_plugin_once()  # the next play keeps the same memo
    assert filter_loader.get("to_json") is first and len(calls) == 2


def test_an_error_finding_a_template_plugin_is_not_kept(strategy, monkeypatch):
    from ansible.plugins.loader import test_loader
    calls = []

    def not_found_yet(name):
        calls.append(name)
        raise KeyError("unable to locate collection for %s" % name)

    monkeypatch.setattr(test_loader, "get", not_found_yet)
    strategy.find_each_template_plugin_once()
    for attempt in range(2):
        with pytest.raises(KeyError, match="unable to locate collection"):
            test_loader.get("example.collection.test")
    assert calls == ["example.collection.test"] * 2


def test_a_task_copied_for_a_host_keeps_its_parents_but_not_their_tasks(strategy):
    from ansible.playbook.block import Block
    block = Block.load({"block": [{"name": "Task %d" % number, "debug": {"msg": "x"}}
                                  for number in range(5)],
                        "become": True, "become_user": "app"}, loader=DataLoader())
    task = block.block[2]
    copied = strategy.task_as_a_worker_gets_it(task)
    assert copied._uuid == task._uuid and copied.name == "Task 2"
    assert copied._parent is not block and copied._parent.block == []
    assert len(block.block) == 5  # the play's own block keeps them
    # What the task inherits from its block is still there, as in a worker.
    assert copied.become is True and copied.become_user == "app"
    # An action's own copy of it (the template action makes one) copies no siblings.
    again = copied.copy()
    assert again._parent.block == [] and again.become_user == "app"


def task_with_when(*conditions):
    return Task.load({"name": "Skipped or not", "debug": {"msg": "x"},
                      "when": [trusted(condition) for condition in conditions]}, loader=DataLoader())


@pytest.fixture(name="play_context")
def counting_play_context(monkeypatch):
    """A play context that connects on port 2222 and counts its applications to a task."""
    from ansible.playbook.play_context import PlayContext
    context = PlayContext()
    context.port = 2222
    applied = []
    apply = context.set_task_and_variable_override

    def counted(**kwargs):
        applied.append(kwargs["task"])
        return apply(**kwargs)

    monkeypatch.setattr(context, "set_task_and_variable_override", counted)
    context.applied = applied
    return context


def test_a_false_when_is_skipped_here_as_the_worker_would(strategy, play_context):
    result = strategy.controller_skip_result(task_with_when("flag | bool"), {"flag": False}, play_context)
    assert result["skipped"] is True and result["changed"] is False
    assert result["skip_reason"] == "Conditional result was False"
    assert result["false_condition"] == "flag | bool"
    # It names no connection variable, so the play context was not applied.
    assert play_context.applied == []


def test_a_true_undefined_or_broken_when_is_left_to_the_worker(strategy, play_context):
    for condition in ("flag | bool", "missing_variable", "flag |"):
        assert strategy.controller_skip_result(task_with_when(condition), {"flag": True}, play_context) is None


def test_a_when_that_names_a_connection_variable_sees_the_play_contexts(strategy, play_context):
    # ansible_port is not among the task's variables; the worker adds the play
    # context's (2222) before it evaluates the condition, so the task runs.
    task = task_with_when("ansible_port is defined")
    assert strategy.controller_skip_result(task, {}, play_context) is None
    assert play_context.applied == [task]
    assert strategy.controller_skip_result(task_with_when("ansible_port | default(22) == 22"), {},
                                           play_context)["skipped"] is True
