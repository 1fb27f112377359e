# -*- coding: utf-8 -*-
# Copyright: nospof project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible's linear strategy, run over Mitogen when it is installed.

Mitogen keeps one Python interpreter per host for the whole run instead of
starting one per task, which halves a converge of the lab. ansible.cfg in a
checkout selects this strategy; without Mitogen it is the stock linear one.
Opt out with ANSIBLE_STRATEGY=linear.

Under Mitogen, a task that uses the host runs in a thread of this process,
not in a forked worker. A fork costs about 50 ms of CPU (copy-on-write
faults, a new connection to the multiplexer, cold plugin caches) against a
few ms of work for most tasks. Each thread runs its own copy of the task,
through the same TaskExecutor a worker would use, and sends its result
through the same queue. All threads share one connection to the
multiplexer, opened once per run. Tasks with async or a timeout (SIGALRM
works only in the main thread), handlers, and actions that read the
terminal or reset the connection still go to a forked worker. Set
NOSPOF_FORKED_WORKERS=1 to fork a worker for every task, as the stock
strategy does.

Filter and test plugins are loaded here once, before the first task, and
the plugin found for each name is kept for the run;
PluginLoader's import of a plugin file is made atomic, because it exposes a
half-run module to other threads; and Jinja's compiled code for each template
string is kept for the run instead of compiled again for every host of every
task, as is a host's decoded facts until they are stored again. Before a fork, the objects this process holds are frozen out of the
garbage collector (gc.freeze), so a worker's collections do not touch, and
copy, every page it shares with this process. The cyclic garbage collector
runs with higher thresholds (COLLECTOR_THRESHOLDS).

Each host keeps the code its Mitogen importer compiles from the modules the
controller sends, under ~/.cache/nospof-webstack/mitogen-code of the user
that runs it, so the next run reads it back (keep_code_on_the_host).

A task whose `when` is false for a host is skipped here without a thread or
a worker: the same check the worker makes first, on the same variables, with
the same result sent back through the same queue. Only a plain task
qualifies: no loop (`when` is then per item), no delegation, not a handler.
The play context adds its connection variables only for a `when` that names
one (PLAY_CONTEXT_VARIABLES). If the check raises or is true, the task runs
as usual, which then reports the error or runs it.

A task whose action never touches the host (assert, set_fact, the role
argument checks, debug, fail) runs in this thread, on a copy of the task.

A play that lists inventory groups in nospof_concurrent_tiers runs each
group's hosts in step with each other, as linear runs a play, and the groups
at the same time. A group with `after` waits for those groups: at the block
its `waits_at` names (or before its first task), until each of them has left
the block its `ready_after` names (or finished). Each tier keeps its own
place in the play's task list. Results, includes, handlers and failures are
handled as linear handles them, per tier.

On a machine with fewer than four CPUs, Mitogen's CPU pinning is turned off:
it gives the multiplexer a CPU of its own and pins this process and every
worker to the one other CPU, so on two cores the controller's templating and
task workers never run on more than one of them.
"""

from __future__ import annotations

import atexit
import collections
import copy
import functools
import gc
import hashlib
import importlib.util
import inspect
import marshal
import os
import stat
import sys
import threading

import jinja2.environment
from ansible import constants as C
from ansible.collections.list import list_collection_dirs
from ansible.errors import AnsibleError, AnsibleParserError, AnsibleValueOmittedError
from ansible.executor.task_executor import TaskExecutor
from ansible.playbook.block import Block
from ansible.playbook.handler import Handler
from ansible.playbook.included_file import IncludedFile
from ansible.plugins import loader as plugin_loader
from ansible.plugins.loader import action_loader, filter_loader, test_loader
from ansible.plugins.strategy import StrategyBase
from ansible.release import __version__ as ansible_version
from ansible.utils.display import Display

try:
    # ansible-core 2.19's result, template and task context classes; other
    # versions run every task in a worker, as the stock strategy does.
    from ansible._internal._task import TaskContext
    from ansible._internal._templating._engine import TemplateEngine
    from ansible.executor.task_result import _RawTaskResult
    from ansible._internal._templating._jinja_bits import (
        _TEMPLATE_OVERRIDE_FIELD_NAMES as TEMPLATE_OVERRIDE_FIELD_NAMES,
        _TemplateCompileContext as TemplateCompileContext,
        AnsibleEnvironment)
    from ansible._internal._plugins._cache import PluginInterposer
except ImportError:
    TaskContext = TemplateEngine = _RawTaskResult = AnsibleEnvironment = PluginInterposer = None

display = Display()


class KeptResults:
    """Results of pure functions of source text, kept in memory and in files
    named by the hash of the input, so the next run reads them.

    The directory is this user's alone: what is kept runs here or on every
    managed host. Without one, results are kept in memory only.
    """

    def __init__(self, name):
        self.memory = {}
        self.directory = None
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        directory = os.path.join(base, "nospof-webstack", name)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            info = os.stat(directory)
        except OSError:
            return
        if info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            self.directory = directory

    def _path(self, key):
        if self.directory is None:
            return None
        digest = hashlib.sha256()
        for part in key:
            part = part.encode("utf-8") if isinstance(part, str) else part
            digest.update(b"%d:" % len(part) + part)
        return os.path.join(self.directory, digest.hexdigest())

    def read(self, key, load):
        """The result kept for key (a tuple of str and bytes), or None."""
        path = self._path(key)
        if path is None:
            return None
        try:
            with open(path, "rb") as kept:
                return load(kept.read())
        except (OSError, ValueError, EOFError, TypeError):
            return None

    def write(self, key, result, dump):
        path = self._path(key)
        if path is None:
            return
        partial = "%s.%d.%d" % (path, os.getpid(), threading.get_ident())
        try:
            data = dump(result)
            with open(partial, "wb") as written:
                written.write(data)
            os.replace(partial, path)  # a reader sees the whole file or none
        except (OSError, ValueError):  # ValueError: marshal met an object it cannot write
            try:
                os.unlink(partial)
            except OSError:
                pass

    def get(self, key, make, dump, load):
        """The result for key: from memory, else from its file, else made and kept."""
        found = self.memory.get(key)
        if found is None:
            found = self.read(key, load)
            if found is None:
                found = make()
                self.write(key, found, dump)
            self.memory[key] = found
        return found


def keep_code_on_the_host(builtin_compile, directory=None):
    """A compile() that keeps the code it makes in a file named by a hash of
    its input, and reads it back next time.

    Its source is sent to every managed host at the end of Mitogen's core,
    whose importer compiles each module the controller sends (Mitogen's,
    ansible_mitogen's, module_utils) from source, in every run: a third of
    a host's CPU while it starts. It runs there, so it imports what it uses
    and keeps to the Python 3 of any host. The directory is under the home
    of the effective user (not $HOME, which sudo may keep) and must be that
    user's alone; otherwise, or on any error, the builtin is used.
    """
    import hashlib
    import marshal
    import os
    import stat as file_modes
    try:
        import importlib.util
        version = importlib.util.MAGIC_NUMBER
        if directory is None:
            import pwd
            home = pwd.getpwuid(os.geteuid()).pw_dir
            directory = os.path.join(home, ".cache", "nospof-webstack", "mitogen-code")
        os.makedirs(directory, 0o700, exist_ok=True)
        info = os.lstat(directory)
        if (not file_modes.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid()
                or info.st_mode & (file_modes.S_IWGRP | file_modes.S_IWOTH)):
            return builtin_compile
    except Exception:  # pylint: disable=broad-except
        return builtin_compile

    def kept_compile(source, filename, mode, flags=0, dont_inherit=False, *more):
        if flags or not dont_inherit or more:
            # Code that inherits the caller's __future__ flags depends on the caller.
            return builtin_compile(source, filename, mode, flags, dont_inherit, *more)
        digest = hashlib.sha256()
        for part in (version, filename, mode, source):
            part = part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass")
            digest.update(b"%d:" % len(part) + part)
        path = os.path.join(directory, digest.hexdigest())
        try:
            with open(path, "rb") as kept:
                return marshal.loads(kept.read())
        except Exception:  # pylint: disable=broad-except
            pass
        code = builtin_compile(source, filename, mode, flags, dont_inherit)
        partial = "%s.%d.%d" % (path, os.getpid(), id(code))
        try:
            with open(partial, "wb") as written:
                written.write(marshal.dumps(code))
            os.replace(partial, path)  # a reader sees the whole file or none
        except Exception:  # pylint: disable=broad-except
            try:
                os.unlink(partial)
            except OSError:
                pass
        return code

    return kept_compile


# The cyclic garbage collector's thresholds for the run (Python's: 700, 10, 10).
# A converge allocates so much that the defaults ran about 650 collections,
# 0.4 s of this process's CPU and its caches; refcounting frees nearly all of
# it anyway. These run about a dozen.
COLLECTOR_THRESHOLDS = (20000, 20, 100)


# Actions that run entirely in the controller and never use the connection.
CONTROLLER_ACTIONS = frozenset(
    prefix + name
    for prefix in ("", "ansible.builtin.", "ansible.legacy.")
    for name in ("assert", "set_fact", "validate_argument_spec", "debug", "fail"))

# Actions kept in a forked worker: they read the terminal or reset the connection.
FORKED_ACTIONS = frozenset(
    prefix + name
    for prefix in ("", "ansible.builtin.", "ansible.legacy.")
    for name in ("pause", "wait_for_connection", "reboot"))

try:
    import ansible_mitogen.affinity
    import ansible_mitogen.loaders
    import ansible_mitogen.module_finder
    import ansible_mitogen.planner
    import ansible_mitogen.process
    import ansible_mitogen.strategy
    import mitogen.core
    import mitogen.fork
    import mitogen.master
    import mitogen.minify
    import mitogen.parent
    import mitogen.unix
except ImportError:
    ansible_mitogen = None
    from ansible.plugins.strategy.linear import StrategyModule as LinearStrategy
else:
    LinearStrategy = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)

    if (os.cpu_count() or 1) < 4:
        ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()

    def add_collection_paths(invocation):
        """Mitogen's _load_collections, on the collection list made once here."""
        invocation._extra_sys_paths.update(installed_collection_dirs())

    if callable(getattr(ansible_mitogen.planner, "_load_collections", None)):
        ansible_mitogen.planner._load_collections = add_collection_paths

    def keep_minified_sources():
        """Mitogen strips the comments and docstrings of its own modules with
        Python's tokenizer before it sends them to a host: about 1 s of CPU
        in the multiplexer at the start of every run, while the hosts wait
        for their first modules. The result depends on the source only."""
        kept = KeptResults("mitogen-minified")
        minimize_source = mitogen.minify.minimize_source

        @functools.wraps(minimize_source)
        def kept_minimize_source(source):
            text = mitogen.core.to_text(source)
            return kept.get(("minified", text), lambda: minimize_source(text),
                            lambda result: result.encode("utf-8"), lambda data: data.decode("utf-8"))

        mitogen.minify.minimize_source = kept_minimize_source

    def keep_compiled_imports():
        """Mitogen and ansible_mitogen read the imports of each module they
        send from its code, compiled from source for the purpose: the same
        module_utils again for each module ansible_mitogen scans, and every
        module once per run. In the lab's converge that was 5 s and 2 s of
        the multiplexer's time, one module at a time while the tasks that
        need them wait. Code objects are kept (marshal, keyed by the Python
        version); they are only read for their imports, never run."""
        kept = KeptResults("mitogen-compiled")
        version = (sys.implementation.cache_tag or "", importlib.util.MAGIC_NUMBER)

        def compile_once(source, filename, mode, *args, **kwargs):
            if args or kwargs:
                return compile(source, filename, mode, *args, **kwargs)
            return kept.get(version + ("code", source, filename, mode),
                            lambda: compile(source, filename, mode), marshal.dumps, marshal.loads)

        # Each calls compile by its name in its module; the builtin stays as it is.
        ansible_mitogen.module_finder.compile = compile_once
        mitogen.master.compile = compile_once

    def keep_compiled_code_on_hosts():
        """Append keep_code_on_the_host to the core source Mitogen sends to
        each host, and bind it there to the name its importer calls."""
        core_source = mitogen.parent._get_core_source
        host_side = "\n%s\ncompile = keep_code_on_the_host(compile)\n" % inspect.getsource(keep_code_on_the_host)

        @functools.wraps(core_source)
        def core_source_keeping_code():
            return core_source() + host_side

        mitogen.parent._get_core_source = core_source_keeping_code

    # Before the multiplexer forks, so it inherits them.
    keep_minified_sources()
    keep_compiled_imports()
    keep_compiled_code_on_hosts()

    class SharedBinding(ansible_mitogen.process.Binding):
        """A binding to this process's one connection to a multiplexer."""

        def __init__(self, parent):
            self.parent = parent

        def get_service_context(self):
            return self.parent

        def get_child_service_context(self):
            return self.parent

        def close(self):
            """The connection outlives the task; the model closes it."""

    class ThreadedWorkerModel(ansible_mitogen.process.WorkerModel):
        """Mitogen's classic model for task threads: one broker and one
        connection per multiplexer, opened once and shared by every task
        thread of this process. A forked worker uses the classic model."""

        def __init__(self, classic):
            self.classic = classic
            self.owner_pid = os.getpid()
            self.lock = threading.Lock()
            self.broker = None
            self.parents = {}
            os.register_at_fork(after_in_child=self._after_fork_in_child)
            # Runs before the classic model's exit handler stops the multiplexers.
            atexit.register(self._shutdown)

        @classmethod
        @functools.cache
        def for_classic(cls, classic):
            """One per run, like the classic model: its connection serves every play."""
            return cls(classic)

        def _shutdown(self):
            if self.broker is not None and self.owner_pid == os.getpid():
                self.broker.shutdown()
                self.broker.join()
                self.broker = None

        def _after_fork_in_child(self):
            if self.broker is not None and self.owner_pid != os.getpid():
                # The child has no broker thread: drop the state it inherited.
                mitogen.fork.on_fork()

        def on_strategy_start(self):
            self.classic.on_strategy_start()

        def on_strategy_complete(self):
            self.classic.on_strategy_complete()

        def get_binding(self, inventory_name):
            if self.owner_pid != os.getpid():
                return self.classic.get_binding(inventory_name)
            path = self.classic._listener_for_name(inventory_name)
            with self.lock:
                if self.broker is None:
                    # Not watching the task thread that happens to open it; atexit closes it.
                    self.broker = ansible_mitogen.process.Broker(install_watcher=False)
                if path not in self.parents:
                    router, parent = mitogen.unix.connect(path=path, broker=self.broker)
                    router.max_message_size = ansible_mitogen.process.MAX_MESSAGE_SIZE
                    self.parents[path] = parent
                return SharedBinding(self.parents[path])

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


@functools.cache
def installed_collection_dirs():
    """Every installed collection's directory, listed once per run.

    Mitogen lists them in each worker for the first collection module it runs,
    which scans and imports ~100 collections: a third of a worker's CPU.
    """
    return tuple(path.decode("utf-8") for path in list_collection_dirs())


def preload_template_plugins():
    """Load the template plugins once in the parent; a missing one is skipped."""
    for loader, names in ((filter_loader, PRELOADED_FILTERS), (test_loader, PRELOADED_TESTS)):
        for name in names:
            try:
                loader.get(name)
            except Exception:  # pylint: disable=broad-except
                # The task that uses it reports the error where it belongs.
                continue


def find_each_template_plugin_once():
    """Keep the filter or test plugin found for each name for the run.

    A template engine looks up each filter and test it meets by name; for a
    collection's, Jinja2Loader lists the collection's plugin files and loads
    each again, for every task of every host: about 0.4 s of a converge.
    ansible-core keeps builtin ones the same way, one object per name. A
    name no plugin has (Jinja's dictsort, for one) is kept as None; an error
    is not kept.
    """
    for loader in (filter_loader, test_loader):
        if not getattr(loader.get, "keeps_plugins", False):
            loader.get = plugin_finder_keeping_answers(loader.get)


def plugin_finder_keeping_answers(find):
    """find(name), answered from memory after its first answer for a name."""
    found = {}

    def get_once(name, *args, **kwargs):
        if args or kwargs:
            return find(name, *args, **kwargs)
        try:
            return found[name]
        except KeyError:
            plugin = found[name] = find(name)
            return plugin

    get_once.keeps_plugins = True
    return get_once


def skips_without_a_worker(task):
    """Whether a false `when` can be settled here for this task."""
    return bool(task.when) and not (task.loop or task.loop_with or task.delegate_to
                                    or isinstance(task, Handler))


# What PlayContext.update_vars adds to a task's variables where they lack it:
# the connection's variables (ansible_host, ansible_port, ...), not become's.
PLAY_CONTEXT_VARIABLES = frozenset(
    name for attribute, names in C.MAGIC_VARIABLE_MAPPING.items()
    if "become" not in attribute for name in names)


def mentions_play_context_variables(conditions):
    """Whether a `when` names a variable the play context may add (a
    substring match, so ansible_hostname counts too: the safe side)."""
    return any(name in str(condition) for condition in conditions for name in PLAY_CONTEXT_VARIABLES)


def controller_skip_result(task, task_vars, play_context):
    """The worker's skip result when the task's `when` is false for these
    variables; None when it is true or cannot be settled here.

    The worker first applies the task to the play context and templates it,
    which only adds the connection's variables that task_vars lack. That is
    done here only for a `when` that names one of them: otherwise the
    condition reads the same variables without it (an undefined one raises,
    and the worker decides), at a quarter of the CPU of a skip.
    """
    if _RawTaskResult is None or not skips_without_a_worker(task):
        return None
    try:
        templar = TemplateEngine(loader=task._loader, variables=task_vars)
        # The task's own `when` and its parents' (each read walks the parents).
        conditions = task.when
        variables = task_vars
        if mentions_play_context_variables(conditions):
            variables = task_vars.copy()
            context = play_context.set_task_and_variable_override(
                task=task, variables=task_vars, templar=templar)
            context.post_validate(templar=templar)
            context.update_vars(variables)
        condition = {}
        if task._resolve_conditional(conditions, variables, result_context=condition):
            return None
        result = dict(changed=False, skipped=True,
                      skip_reason="Conditional result was False") | condition
        task.update_result_no_log(templar, result)
        return result
    except Exception:  # pylint: disable=broad-except
        # The worker evaluates it again and reports the error where it belongs.
        return None


def task_as_a_worker_gets_it(task):
    """A copy of the task for one host, with its parents but not their tasks.

    A forked worker gets the task serialized, and a block serializes without
    its task lists. A copy that kept them would be copied whole, every
    sibling task, each time an action copies its task: the template action
    does, for every host of every template task.
    """
    copied = task.copy(exclude_tasks=True)
    parent = copied._parent
    while parent is not None:
        if isinstance(parent, Block):
            parent.block, parent.rescue, parent.always = [], [], []
        parent = parent._parent
    return copied


def runs_in_the_controller(task):
    """Whether the task can run here instead of in a forked worker."""
    return (_RawTaskResult is not None
            and (task.resolved_action or task.action) in CONTROLLER_ACTIONS
            and not (task.async_val or task.until or task.timeout or isinstance(task, Handler)))


def compile_each_template_once():
    """Keep the code Jinja compiles from each template and expression string.

    ansible-core compiles a template every time it renders one, and the same
    few hundred `when` conditions and task arguments are rendered for every
    host of every task. The code depends only on the text and the compile
    settings, which form the key; it is bound to each caller's environment
    afresh, so the cache is invisible to the templates. A miss compiles under
    a lock: the task threads render the same template file for every host at
    once, and would otherwise each compile it. The code is kept on disk too
    (KeptResults, keyed by the Python, Jinja and ansible-core versions as well),
    so a run compiles only what no run before it did: about half a second of
    CPU in an idempotent converge of the lab.
    """
    if AnsibleEnvironment is None or getattr(AnsibleEnvironment.compile, "compiles_once", False):
        return
    compile_source = AnsibleEnvironment.compile
    compile_expression = AnsibleEnvironment.compile_expression
    codes = {}
    capture = threading.local()
    compiling = threading.RLock()
    kept = KeptResults("template-code")
    versions = (sys.implementation.cache_tag or "", importlib.util.MAGIC_NUMBER, jinja2.__version__, ansible_version)

    def settings(env, *extra):
        context = TemplateCompileContext.current(optional=True)
        return (type(env), tuple(getattr(env, name) for name in TEMPLATE_OVERRIDE_FIELD_NAMES),
                bool(context and context.escape_backslashes)) + extra

    def file_key(key):
        """The key of a code's file: the settings as text, and the versions that shape the code."""
        return versions + ("%s.%s" % (key[0].__module__, key[0].__qualname__),) + tuple(repr(part) for part in key[1:])

    @functools.wraps(compile_source)
    def compile_once(self, source, name=None, filename=None, raw=False, defer_init=False):
        if raw or not isinstance(source, str) or self._debuggable_template_source:
            code = compile_source(self, source, name, filename, raw, defer_init)
            if getattr(capture, "active", False):
                capture.code = code
            return code
        key = settings(self, str(source), name, filename, defer_init)
        code = codes.get(key)
        if code is None:
            with compiling:
                code = codes.get(key)
                if code is None:
                    code = kept.read(file_key(key), marshal.loads)
                    if code is None:
                        code = compile_source(self, source, name, filename, raw, defer_init)
                        kept.write(file_key(key), code, marshal.dumps)
                    codes[key] = code  # here only, not in kept's memory as well
        return code

    @functools.wraps(compile_expression)
    def compile_expression_once(self, source, undefined_to_none=True):
        if not isinstance(source, str) or self._debuggable_template_source:
            return compile_expression(self, source, undefined_to_none)
        key = settings(self, "expression", str(source))
        code = codes.get(key)
        if code is None:
            with compiling:
                code = codes.get(key)
                if code is None:
                    code = kept.read(file_key(key), marshal.loads)
                if code is None:
                    capture.active, capture.code = True, None
                    try:
                        expression = compile_expression(self, source, undefined_to_none)
                    finally:
                        capture.active = False
                    if capture.code is not None:
                        codes[key] = capture.code
                        kept.write(file_key(key), capture.code, marshal.dumps)
                    return expression
                codes[key] = code
        template = self.template_class.from_code(self, code, self.make_globals(None), None)
        return jinja2.environment.TemplateExpression(template, undefined_to_none)

    compile_once.compiles_once = True
    AnsibleEnvironment.compile = compile_once
    AnsibleEnvironment.compile_expression = compile_expression_once


def decode_each_fact_payload_once():
    """Decode a host's cached facts once per stored version, not on every read.

    ansible-core decodes the JSON payload of a host's facts each time it builds
    the host's variables, that is for every host of every task. A read gets a
    new top-level dict, as before, so a caller that adds facts to it changes
    only its own copy until it stores it back.
    """
    if PluginInterposer is None or getattr(PluginInterposer._decode, "decodes_once", False):
        return
    decode = PluginInterposer._decode
    decoded = {}

    @functools.wraps(decode)
    def decode_once(self, value):
        payload = value[self._PAYLOAD_KEY]
        facts = decoded.get(payload)
        if facts is None:
            if len(decoded) >= 256:
                decoded.clear()
            facts = decoded[payload] = decode(self, value)
        return dict(facts)

    decode_once.decodes_once = True
    PluginInterposer._decode = decode_once


PLUGIN_IMPORT_LOCK = threading.RLock()


def import_plugins_one_at_a_time():
    """Make PluginLoader's import of a plugin file atomic for task threads.

    It puts the module in sys.modules before running it, so a second thread
    asking for the same plugin meanwhile gets it half initialized.
    """
    load = getattr(plugin_loader.PluginLoader, "_load_module_source", None)
    if load is None or getattr(load, "one_at_a_time", False):
        return

    @functools.wraps(load)
    def load_under_lock(self, *args, **kwargs):
        with PLUGIN_IMPORT_LOCK:
            return load(self, *args, **kwargs)

    load_under_lock.one_at_a_time = True
    plugin_loader.PluginLoader._load_module_source = load_under_lock


def load_plugins_for(task, play_context):
    """Load a task's module, action and connection plugins before its threads
    start, as Mitogen does before a fork: two threads importing one plugin at
    once can see it half loaded."""
    ansible_mitogen.loaders.module_loader.find_plugin(name=task.action, mod_type="")
    ansible_mitogen.loaders.action_loader.get(name=task.action, class_only=True)
    if isinstance(play_context.connection, str):
        ansible_mitogen.loaders.connection_loader.get(name=play_context.connection, class_only=True)


class TaskThreads:
    """The task threads of this process, counted.

    A worker is forked only when none runs: a fork copies every lock a
    thread holds (a template compile, a plugin import, Jinja's caches) held,
    into a worker that has no thread to release it, and the worker hangs.
    With tiers at once, a handler or an async task of one tier is forked
    while the other tiers' tasks run in threads.
    """

    def __init__(self):
        self._changed = threading.Condition()
        self._running = 0

    def start(self, target, name, args):
        with self._changed:
            self._running += 1
        threading.Thread(target=self._run, name=name, daemon=True, args=(target, args)).start()

    def _run(self, target, args):
        try:
            target(*args)
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def wait_until_none_run(self):
        with self._changed:
            self._changed.wait_for(lambda: self._running == 0)


TASK_THREADS = TaskThreads()


class ArrivingResults(collections.deque):
    """The strategy's queue of results, which tells a waiting loop when the
    results thread adds one: the loop sleeps until then instead of waking
    every millisecond to look, which took the interpreter lock from the
    task threads about 3600 times in a converge of the lab."""

    def __init__(self):
        super().__init__()
        self.arrived = threading.Event()

    def append(self, x):  # deque's own name for the item
        super().append(x)
        self.arrived.set()


# Longest sleep of a loop waiting for results: it still checks for dead
# workers and a stop request as often.
RESULT_WAIT_BACKSTOP = 0.1


def runs_in_a_thread(task):
    """Whether a task that uses the host can run in a thread of this process."""
    return (ansible_mitogen is not None and _RawTaskResult is not None
            and not os.environ.get("NOSPOF_FORKED_WORKERS")
            and (task.resolved_action or task.action) not in FORKED_ACTIONS
            and not (task.async_val or task.timeout or isinstance(task, Handler)))


TIERS_VAR = "nospof_concurrent_tiers"

# Meta actions that act on one host; the others act once for every host.
PER_HOST_META = frozenset(("noop", "reset_connection", "end_host", "role_complete", "flush_handlers", "end_role"))


class Tier:
    """Hosts that run in step with each other, at their own pace against the
    other tiers: the linear strategy's rounds, with a place of its own in the
    play's task list."""

    def __init__(self, groups, hosts, order):
        self.groups = list(groups)
        self.hosts = set(hosts)
        self.order = order
        self.after = set()
        self.waits_at = set()
        self.ready_after = set()
        self.entered = set()
        self.passed = set()
        self.gate_open = False
        self.at_gate = False
        self.cursor = 0
        self.step = None
        self.done = False

    def __repr__(self):
        return "Tier(%s)" % "+".join(self.groups)

    @property
    def ready(self):
        """Whether the tiers that wait for this one may go on."""
        return self.done or bool(self.ready_after) and self.ready_after <= self.passed

    def note_step(self, task):
        """Note the blocks of ready_after that the tier has entered and left.
        A handler runs where it is flushed, so it leaves no block."""
        if isinstance(task, Handler):
            return
        for name in self.ready_after:
            if runs_within(task, name):
                self.entered.add(name)
            elif name in self.entered:
                self.passed.add(name)


class TierStep:
    """One task of a tier in flight: the hosts it waits for and their results."""

    def __init__(self):
        self.awaited = []
        self.results = []
        self.any_errors_fatal = False


def runs_within(task, name):
    """Whether a task is named name, or runs inside a block or include of that name."""
    node = task
    while node is not None:
        if getattr(node, "name", None) == name:
            return True
        node = getattr(node, "_parent", None)
    return False


TIER_KEYS = {"group": "<inventory group>", "after": "[<groups listed before or after it>]",
             "waits_at": "<name of the block where it waits for them>",
             "ready_after": "<name of the block after which its waiters go on>"}


def read_tier_spec(spec):
    """The entries of the play's nospof_concurrent_tiers, checked."""
    problem = "%s must be a list of {%s}" % (TIERS_VAR, ", ".join("%s: %s" % item for item in TIER_KEYS.items()))
    if not isinstance(spec, list) or not spec:
        raise AnsibleError(problem + ", got %r" % (spec,))
    entries = []
    for entry in spec:
        if not isinstance(entry, dict) or not isinstance(entry.get("group"), str) or set(entry) - set(TIER_KEYS):
            raise AnsibleError(problem + ", got the entry %r" % (entry,))
        after = entry.get("after", [])
        if not isinstance(after, list) or not all(isinstance(name, str) for name in after):
            raise AnsibleError(problem + ": the after of %s is not a list of group names" % entry["group"])
        for key in ("waits_at", "ready_after"):
            if not isinstance(entry.get(key, ""), str):
                raise AnsibleError(problem + ": the %s of %s is not a name" % (key, entry["group"]))
        entries.append({"group": str(entry["group"]), "after": [str(name) for name in after],
                        "waits_at": str(entry.get("waits_at", "")), "ready_after": str(entry.get("ready_after", ""))})
    listed = [entry["group"] for entry in entries]
    for entry in entries:
        unknown = sorted(set(entry["after"]) - set(listed))
        if unknown:
            raise AnsibleError("%s: %s starts after %s, which the list does not name"
                               % (TIERS_VAR, entry["group"], ", ".join(unknown)))
    if len(set(listed)) != len(listed):
        raise AnsibleError("%s names a group twice: %s" % (TIERS_VAR, ", ".join(listed)))
    return entries


def plan_tiers(spec, hosts):
    """The tiers of a play's hosts, in the order of the spec.

    A host joins the tier of each listed group it is in, and tiers that share
    a host become one: its tasks keep their order. Hosts in no listed group
    form a tier of their own. Tiers that wait on each other in a circle also
    become one, so no tier waits forever.
    """
    entries = read_tier_spec(spec)
    index_of = {entry["group"]: index for index, entry in enumerate(entries)}
    parent = list(range(len(entries) + 1))  # the last one holds hosts in no listed group

    def root(index):
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    members = {}
    for host in hosts:
        names = {group.name for group in host.get_groups()}
        indexes = sorted(index_of[name] for name in names if name in index_of) or [len(entries)]
        for index in indexes[1:]:
            parent[root(index)] = root(indexes[0])
        members[host.name] = indexes[0]
    waits_on = {index: {index_of[name] for name in entry["after"]} for index, entry in enumerate(entries)}

    while True:
        tiers = {}
        for host_name, index in members.items():
            tier_root = root(index)
            if tier_root not in tiers:
                tiers[tier_root] = Tier([], [], tier_root)
            tiers[tier_root].hosts.add(host_name)
        for index, entry in enumerate(entries):
            tier = tiers.get(root(index))
            if tier is not None:
                tier.groups.append(entry["group"])
                tier.order = min(tier.order, index)
                tier.waits_at.update([entry["waits_at"]] if entry["waits_at"] else [])
                tier.ready_after.update([entry["ready_after"]] if entry["ready_after"] else [])
        edges = {tier_root: {root(other) for index in range(len(entries)) if root(index) == tier_root
                             for other in waits_on[index] if root(other) in tiers and root(other) != tier_root}
                 for tier_root in tiers}
        circle = find_circle(edges)
        if not circle:
            break
        for tier_root in circle[1:]:
            parent[root(tier_root)] = root(circle[0])
    for tier_root, tier in tiers.items():
        tier.after = {tiers[other] for other in edges[tier_root]}
        tier.gate_open = not tier.after
        if not tier.groups:
            tier.groups.append("other hosts")
    return sorted(tiers.values(), key=lambda tier: tier.order)


def find_circle(edges):
    """Nodes of one cycle in a {node: {nodes it waits on}} graph, or []."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for other in sorted(edges[node]):
            if state.get(other) == "open":
                return path[path.index(other):]
            if other not in state:
                found = visit(other, path + [other])
                if found:
                    return found
        state[node] = "closed"
        return []

    for node in sorted(edges):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return []


class ConcurrentTiers:
    """The linear strategy per tier, with the tiers of a play run at once.

    A play that sets nospof_concurrent_tiers in its vars runs each listed
    group's hosts in step, as linear runs a play, while the other groups'
    hosts run their own tasks. A group with `after` waits for those groups
    at its `waits_at` block (or before its first task) until they have left
    their `ready_after` block (or finished). Any other play runs as linear
    runs it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._results = ArrivingResults()  # no result has come in yet

    def run(self, iterator, play_context, result=0):
        spec = iterator._play.vars.get(TIERS_VAR)
        if spec is None or TemplateEngine is None:
            return super().run(iterator, play_context)
        self._set_hosts_cache(iterator._play)
        tiers = self._tiers = plan_tiers(spec, self.get_hosts_left(iterator))
        self._loaded_includes = []
        tier_of = {name: tier for tier in tiers for name in tier.hosts}
        result = int(self._tqm.RUN_OK)
        while not self._tqm._terminated and not all(tier.done for tier in tiers):
            moved = False
            # Cleared before the results are read: one added after wakes the wait below.
            self._results.arrived.clear()
            for tier in tiers:
                if tier.step is None and not tier.done:
                    move = self._next_move(tier, iterator)
                    if move == "step":
                        self._start_tier_step(tier, iterator, play_context)
                    elif move == "end":
                        self._end_tier(tier, iterator)
                    moved = moved or move != "wait"
            self._name_banners_after_results()
            for task_result in self._process_pending_results(iterator):
                tier_of[task_result.host.name].step.results.append(task_result)
                moved = True
            for tier in tiers:
                if tier.step is not None and not any(name in self._blocked_hosts for name in tier.step.awaited):
                    result |= self._finish_tier_step(tier, iterator)
                    moved = True
                    if result != self._tqm.RUN_OK and len(self._tqm._failed_hosts) >= len(self.get_hosts_left(iterator)):
                        self._tqm.send_callback("v2_playbook_on_no_hosts_remaining")
                        return result
            if not moved:
                if self._tqm.has_dead_workers():
                    raise AnsibleError("A worker was found in a dead state")
                self._results.arrived.wait(RESULT_WAIT_BACKSTOP)
        return StrategyBase.run(self, iterator, play_context, result)

    def _next_move(self, tier, iterator):
        """"step", "wait" or "end". A tier runs its tasks before its waits_at
        block (with no waits_at, none) at once; there it waits until the
        tiers it starts after are ready, and ends if every host of one failed."""
        if tier.gate_open:
            return "step"
        awaited_ready = all(other.ready for other in tier.after)
        if awaited_ready and not any(self._all_failed(other) for other in tier.after):
            tier.gate_open = True
            return "step"
        if tier.waits_at and not tier.at_gate:
            if not self._at_gate(tier, iterator):
                return "step"
            tier.at_gate = True  # it stays there until it steps again
        return "end" if awaited_ready else "wait"

    def _at_gate(self, tier, iterator):
        for host in self._tier_hosts(tier, iterator):
            _state, task = iterator.get_next_task_for_host(host, peek=True)
            if task is not None and any(runs_within(task, name) for name in tier.waits_at):
                return True
        return False

    def _all_failed(self, tier):
        return all(name in self._tqm._failed_hosts or name in self._tqm._unreachable_hosts for name in tier.hosts)

    def _end_tier(self, tier, iterator):
        """A tier waits in vain when every host it waits for failed: as when
        every host of a play fails, the tasks that follow do not run."""
        waited = [other for other in tier.after if self._all_failed(other)]
        display.warning("The %s tier does not run: every host of the %s tier it starts after failed."
                        % ("+".join(tier.groups), " and ".join("+".join(other.groups) for other in waited)))
        for host in self._tier_hosts(tier, iterator):
            iterator.end_host(host.name)
        tier.done = True

    def _name_banners_after_results(self):
        """Have the output callbacks name a result's task from the result, as
        the default callback does for the free strategy: results of the
        tiers' tasks arrive interleaved, not under the last task started."""
        for callback in self._tqm._callback_plugins:
            if getattr(callback, "_last_task_name", None) is not None:
                callback._last_task_name = None

    def _tier_hosts(self, tier, iterator):
        return [host for host in self.get_hosts_left(iterator) if host.name in tier.hosts]

    def _insert_tasks(self, tier, position, count):
        """Keep the other tiers' places after tasks inserted at position."""
        for other in self._tiers:
            if other is not tier and other.cursor >= position:
                other.cursor += count

    def _start_tier_step(self, tier, iterator, play_context):
        """Queue the tier's next task on its hosts, as one round of linear."""
        iterator.cur_task = tier.cursor
        known = len(iterator.all_tasks)
        host_tasks = self._get_next_task_lockstep(self._tier_hosts(tier, iterator), iterator)
        tier.cursor = iterator.cur_task
        if len(iterator.all_tasks) > known:  # handlers inserted at a flush
            self._insert_tasks(tier, tier.cursor, len(iterator.all_tasks) - known)
        if not host_tasks:
            tier.done = True
            return
        tier.note_step(host_tasks[0][1])
        step = tier.step = TierStep()
        announced = False
        for host, task in host_tasks:
            if self._tqm._terminated:
                break
            task_vars = self._variable_manager.get_vars(play=iterator._play, host=host, task=task,
                                                        _hosts=self._hosts_cache, _hosts_all=self._hosts_cache_all)
            self.add_tqm_variables(task_vars, play=iterator._play)
            templar = TemplateEngine(loader=self._loader, variables=task_vars)
            try:
                task_action = templar.template(task.action)
            except AnsibleValueOmittedError:
                raise AnsibleParserError("Omit is not valid for the `action` keyword.", obj=task.action) from None
            if task_action in C._ACTION_META:
                step.results.extend(self._execute_meta(task, play_context, iterator, host))
                run_once = task._get_meta() not in PER_HOST_META
            else:
                if self._step and not announced and not self._take_step(task):
                    break
                try:
                    action = action_loader.get(task_action, class_only=True, collection_list=task.collections)
                except KeyError:
                    action = None
                run_once = bool(action and getattr(action, "BYPASS_HOST_LOOP", False)) or templar.template(task.run_once)
                if not announced:
                    task.post_validate_attribute("name", templar=templar)
                    if isinstance(task, Handler):
                        self._tqm.send_callback("v2_playbook_on_handler_task_start", task)
                    else:
                        self._tqm.send_callback("v2_playbook_on_task_start", task, is_conditional=False)
                    announced = True
                self._blocked_hosts[host.name] = True
                step.awaited.append(host.name)
                self._queue_task(host, task, task_vars, play_context)
            if (task.any_errors_fatal or run_once) and not task.ignore_errors:
                step.any_errors_fatal = True
            if isinstance(task, Handler):
                if run_once:
                    task.clear_hosts()
                else:
                    task.remove_host(host)
            if run_once:
                break

    def _finish_tier_step(self, tier, iterator):
        """Act on a finished round as linear does: includes, then failures."""
        step, tier.step = tier.step, None
        result = int(self._tqm.RUN_OK)
        hosts = self._tier_hosts(tier, iterator)
        self.update_active_connections(step.results)
        included_files = IncludedFile.process_include_results(
            step.results, iterator=iterator, loader=self._loader, variable_manager=self._variable_manager)
        if included_files:
            self._add_included_tasks(tier, hosts, included_files, iterator)
        failed = [res.host.name for res in step.results if res.is_failed()]
        unreachable = [res.host.name for res in step.results if res.is_unreachable()]
        if step.any_errors_fatal and (failed or unreachable):
            for host in hosts:
                if host.name not in failed:
                    self._tqm._failed_hosts[host.name] = True
                    iterator.mark_host_failed(host)
        max_fail = iterator._play.max_fail_percentage
        if max_fail is not None and step.results and len(self._tqm._failed_hosts) / iterator.batch_size > max_fail / 100.0:
            for host in self.get_hosts_left(iterator):
                if host.name not in failed:
                    self._tqm._failed_hosts[host.name] = True
                    iterator.mark_host_failed(host)
            self._tqm.send_callback("v2_playbook_on_no_hosts_remaining")
            result |= self._tqm.RUN_FAILED_BREAK_PLAY
        return result

    def _included_blocks(self, tier, included_file, iterator):
        """The blocks an include loads, filtered on tags. An equal include of
        another tier (same task, file, arguments and variables) gets the same
        blocks, as linear gives one include's blocks to all of its hosts,
        instead of loading the role again. The same tier gets new ones."""
        is_handler = isinstance(included_file._task, Handler)
        if not is_handler:
            for known, known_blocks, tiers in self._loaded_includes:
                if tier not in tiers and known == included_file:
                    tiers.add(tier)
                    return known_blocks
        if included_file._is_role:
            new_blocks, _handler_blocks = self._copy_included_file(included_file).get_block_list(
                play=iterator._play, variable_manager=self._variable_manager, loader=self._loader)
        else:
            new_blocks = self._load_included_file(included_file, iterator=iterator, is_handler=is_handler,
                                                  handle_stats_and_callbacks=False)
        iterator.handlers = [handler for block in iterator._play.handlers for handler in block.block]
        final_blocks = []
        for block in new_blocks:
            if is_handler:
                for task in block.block:
                    task.notified_hosts = included_file._hosts[:]
            else:
                task_vars = self._variable_manager.get_vars(
                    play=iterator._play, task=block.get_first_parent_include(),
                    _hosts=self._hosts_cache, _hosts_all=self._hosts_cache_all)
                block = block.filter_tagged_tasks(task_vars)
            final_blocks.append(block)
        if not is_handler:
            self._loaded_includes.append((included_file, final_blocks, {tier}))
        return final_blocks

    def _add_included_tasks(self, tier, hosts, included_files, iterator):
        """Give each host of the tier the blocks its includes loaded."""
        blocks = {host: [] for host in hosts}
        new_tasks = []
        failed_hosts = set()
        for included_file in included_files:
            try:
                for block in self._included_blocks(tier, included_file, iterator):
                    new_tasks.extend(block.get_tasks())
                    for host in hosts:
                        if host in included_file._hosts:
                            blocks[host].append(block)
            except AnsibleParserError:
                raise
            except AnsibleError as error:
                display.error(error)
                for include_result in included_file._results:
                    include_result._return_data["failed"] = True
                    include_result._return_data["reason"] = str(error)
                    self._tqm._stats.increment("failures", include_result.host.name)
                    self._tqm.send_callback("v2_runner_on_failed", include_result)
                    failed_hosts.add(include_result.host)
            else:
                for host in included_file._hosts:
                    self._tqm._stats.increment("ok", host.name)
                self._tqm.send_callback("v2_playbook_on_include", included_file)
        for host in failed_hosts:
            self._tqm._failed_hosts[host.name] = True
            iterator.mark_host_failed(host)
        for host in hosts:
            iterator.add_tasks(host, blocks[host])
        iterator.all_tasks[tier.cursor:tier.cursor] = new_tasks
        self._insert_tasks(tier, tier.cursor, len(new_tasks))


if ansible_mitogen is None:
    class _BaseStrategy(ConcurrentTiers, LinearStrategy):
        """The linear strategy, a play's tiers at once."""
else:
    class _BaseStrategy(ansible_mitogen.strategy.StrategyMixin, ConcurrentTiers, LinearStrategy):
        """The linear strategy over Mitogen's persistent interpreters, a play's tiers at once."""


class StrategyModule(_BaseStrategy):
    """The linear strategy, with tasks that use the host run in threads of this
    process, and tasks skipped by `when` or that never touch the host settled
    here without a thread or a worker."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if gc.get_freeze_count():
            # Objects frozen before the last play's forks; a full collection
            # of this heap costs about 70 ms, so only after a fork.
            gc.unfreeze()
            gc.collect()
        gc.set_threshold(*COLLECTOR_THRESHOLDS)
        find_each_template_plugin_once()
        preload_template_plugins()
        compile_each_template_once()
        decode_each_fact_payload_once()
        if ansible_mitogen is not None:
            installed_collection_dirs()
            import_plugins_one_at_a_time()

    def _queue_task(self, host, task, task_vars, play_context):
        skipped = controller_skip_result(task, task_vars, play_context)
        if skipped is not None:
            self._start_here(host, task, task_vars, play_context)
            self._send_result_from_here(host, task, skipped)
            return None
        if runs_in_the_controller(task):
            self._start_here(host, task, task_vars, play_context)
            self._run_here(host, task_as_a_worker_gets_it(task), task_vars, play_context)
            return None
        if runs_in_a_thread(task):
            load_plugins_for(task, play_context)
            self._start_here(host, task, task_vars, play_context)
            TASK_THREADS.start(self._run_here, "task %s" % host.name,
                               (host, task_as_a_worker_gets_it(task), task_vars, play_context))
            return None
        TASK_THREADS.wait_until_none_run()
        gc.freeze()
        return super()._queue_task(host, task, task_vars, play_context)

    def _get_worker_model(self):
        classic = super()._get_worker_model()
        return ThreadedWorkerModel.for_classic(classic) if ansible_mitogen is not None else classic

    def _run_here(self, host, own_task, task_vars, play_context):
        """Run a task's own copy in this process and report its result."""
        # Each task's loader tracks and cleans up only its own temporary files.
        loader = copy.copy(self._loader)
        loader._tempfiles = set()
        try:
            with TaskContext(own_task):
                result = TaskExecutor(host, own_task, task_vars, play_context, loader,
                                      plugin_loader.get_plugin_loader_namespace(),
                                      self._final_q, self._variable_manager).run()
        except Exception as error:  # pylint: disable=broad-except
            # TaskExecutor.run reports task errors itself; this is its own set-up failing.
            result = {"failed": True, "changed": False,
                      "msg": "Unexpected failure running the task in the controller: %s" % error}
        self._send_result_from_here(host, own_task, result)

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
