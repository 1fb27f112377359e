# -*- coding: utf-8 -*-
# Copyright: (c) 2026, nospof project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HAProxy Runtime API (stats socket): read server state, change it, wait for it.

Plain Python with no Ansible imports, so it can be tested on its own.
"""

from __future__ import annotations

import csv
import re
import socket
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

STATE_REQUESTS = ("info", "ready", "drain", "maint")
WAIT_TARGETS = ("UP", "DOWN", "DRAIN", "MAINT", "no_sessions")

# The admin state each state request sets.
ADMIN_STATE_OF_REQUEST = {"ready": "READY", "drain": "DRAIN", "maint": "MAINT"}
# The admin state a wait target needs; other targets accept any admin state.
ADMIN_STATE_OF_TARGET = {"UP": "READY", "DRAIN": "DRAIN", "MAINT": "MAINT"}

# Masks over srv_admin_state from `show servers state` (HAProxy server-t.h).
ADMIN_FLAGS_MAINT = 0x23  # forced, inherited, or DNS resolution maintenance
ADMIN_FLAGS_DRAIN = 0x18  # forced or inherited drain
# srv_op_state: stopped, starting (slowstart), running, stopping (soft stop).
OP_STATE_OF_CODE = {0: "DOWN", 1: "UP", 2: "UP", 3: "NOLB"}

# HAProxy allows only these characters in proxy and server names; anything else
# could smuggle a second command (`;`) into the line sent to the socket.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.:-]+")
WEIGHT_PATTERN = re.compile(r"\s*(\d+)\s*(%?)\s*")
MAX_WEIGHT = 256
MAX_WEIGHT_PERCENT = 25600  # HAProxy clamps larger percentages to this

STAT_TYPE_BACKEND = "1"
STAT_TYPE_SERVER = "2"
SERVERS_STATE_FORMAT = "1"


class RuntimeApiError(Exception):
    """Any failure talking to HAProxy or acting on its reply."""


class SocketUnavailable(RuntimeApiError):
    """The stats socket cannot be reached (missing, refused, permission, timeout)."""


class CommandRejected(RuntimeApiError):
    """HAProxy answered a command with an error."""


class UnknownTarget(RuntimeApiError):
    """The backend or server is not in HAProxy's running configuration."""


class RequestError(RuntimeApiError):
    """The request itself is invalid or contradicts itself."""


class WaitTimeout(RuntimeApiError):
    """A wait ran out of time before the server reached the target."""


class MinUpNotMet(RuntimeApiError):
    """Fewer servers of a backend are UP than required."""


class OperationFailed(Exception):
    """A run failed; carries what was done before the failure."""

    def __init__(self, message: str, outcome: "Outcome") -> None:
        super().__init__(message)
        self.outcome = outcome


# ---------------------------------------------------------------- parsing


def _int_or_none(text: str | None) -> int | None:
    """Return text as an int, or None when HAProxy left the field empty."""
    if text is None or text.strip() in ("", "-"):
        return None
    return int(text)


def _text_or_none(text: str | None) -> str | None:
    """Return text, or None when empty."""
    return text if text else None


def admin_state_from_flags(flags: int) -> str:
    """Map srv_admin_state bits to READY, DRAIN or MAINT (MAINT wins)."""
    if flags & ADMIN_FLAGS_MAINT:
        return "MAINT"
    if flags & ADMIN_FLAGS_DRAIN:
        return "DRAIN"
    return "READY"


def op_state_from_code(code: int) -> str:
    """Map srv_op_state to UP, DOWN or NOLB."""
    return OP_STATE_OF_CODE.get(code, "DOWN")


def parse_show_stat(reply: str) -> list[dict[str, str]]:
    """Parse the CSV of `show stat` into one dict per row, keyed by column name."""
    lines = reply.splitlines()
    if not lines or not lines[0].startswith("# pxname,"):
        raise CommandRejected(f"unexpected reply to 'show stat': {_first_line(reply)}")
    columns = lines[0][2:].split(",")
    rows = csv.DictReader((line for line in lines[1:] if line.strip()), fieldnames=columns)
    return [dict(row) for row in rows]


def parse_servers_state(reply: str) -> dict[tuple[str, str], dict[str, str]]:
    """Parse `show servers state` into a dict keyed by (backend, server)."""
    lines = [line for line in reply.splitlines() if line.strip()]
    if len(lines) < 2 or not lines[1].startswith("# be_id "):
        raise CommandRejected(f"unexpected reply to 'show servers state': {_first_line(reply)}")
    if lines[0].strip() != SERVERS_STATE_FORMAT:
        raise CommandRejected(f"unsupported 'show servers state' format {lines[0].strip()!r}")
    columns = lines[1][2:].split()
    parsed = {}
    for line in lines[2:]:
        row = dict(zip(columns, line.split()))
        parsed[(row["be_name"], row["srv_name"])] = row
    return parsed


def _first_line(reply: str) -> str:
    """Return the first non-empty line of a reply, for error messages."""
    for line in reply.splitlines():
        if line.strip():
            return line.strip()
    return "(empty reply)"


# ---------------------------------------------------------------- state


@dataclass(frozen=True)
class ServerState:
    """One server as HAProxy sees it, merged from `show stat` and `show servers state`."""

    backend: str
    server: str
    address: str
    status: str  # HAProxy's summary from `show stat`: UP, DOWN, DRAIN, MAINT, "UP 1/2"...
    op_state: str  # what health checks say: UP, DOWN or NOLB
    admin_state: str  # what operators set: READY, DRAIN or MAINT
    weight: int  # the user weight, which `set server ... weight` changes
    initial_weight: int  # the configured weight, base of N% weights
    effective_weight: int | None  # the weight HAProxy balances with now
    sessions: int
    backup: bool
    check_status: str | None
    check_duration_ms: int | None
    check_description: str | None
    last_change_s: int | None

    @property
    def is_up(self) -> bool:
        """True when the server takes new traffic: health UP and admin READY."""
        return self.op_state == "UP" and self.admin_state == "READY"

    def summary(self) -> str:
        """One line with everything a wait or assertion message needs."""
        check = f", check {self.check_status}" if self.check_status else ""
        return (
            f"op_state {self.op_state}, admin_state {self.admin_state}, status {self.status}"
            f"{check}, weight {self.weight}, {self.sessions} sessions"
        )

    def admin_view(self) -> dict[str, Any]:
        """The fields this module changes, for before/after and diff."""
        return {"admin_state": self.admin_state, "weight": self.weight}

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict."""
        return asdict(self)


def server_from_rows(stat: dict[str, str], state: dict[str, str]) -> ServerState:
    """Build a ServerState from its `show stat` row and its `show servers state` row."""
    check_status = (stat.get("check_status") or "").lstrip("* ")  # "* " marks a check in progress
    return ServerState(
        backend=state["be_name"],
        server=state["srv_name"],
        address=f"{state['srv_addr']}:{state['srv_port']}",
        status=stat.get("status") or "",
        op_state=op_state_from_code(int(state["srv_op_state"])),
        admin_state=admin_state_from_flags(int(state["srv_admin_state"])),
        weight=int(state["srv_uweight"]),
        initial_weight=int(state["srv_iweight"]),
        effective_weight=_int_or_none(stat.get("weight")),
        sessions=_int_or_none(stat.get("scur")) or 0,
        backup=stat.get("bck") == "1",
        check_status=_text_or_none(check_status),
        check_duration_ms=_int_or_none(stat.get("check_duration")),
        check_description=_text_or_none(stat.get("check_desc")),
        last_change_s=_int_or_none(stat.get("lastchg")),
    )


@dataclass(frozen=True)
class BackendState:
    """One backend: its own status row and its servers."""

    name: str
    status: str
    algorithm: str | None
    servers: tuple[ServerState, ...] = ()

    def servers_not_up(self) -> list[ServerState]:
        """Servers that take no new traffic."""
        return [server for server in self.servers if not server.is_up]

    def count_up(self) -> int:
        """How many servers take new traffic."""
        return sum(1 for server in self.servers if server.is_up)

    def with_server(self, changed: ServerState) -> "BackendState":
        """A copy with one server replaced, to assess a change before making it."""
        servers = tuple(changed if s.server == changed.server else s for s in self.servers)
        return replace(self, servers=servers)

    def to_dict(self) -> dict[str, Any]:
        """Summary for the module result."""
        return {
            "status": self.status,
            "algorithm": self.algorithm,
            "servers_total": len(self.servers),
            "servers_up": self.count_up(),
            "servers_not_up": [server.server for server in self.servers_not_up()],
        }


def build_backends(stat_rows: list[dict[str, str]], state_rows: dict[tuple[str, str], dict[str, str]]) -> dict[str, BackendState]:
    """Join the two listings into backends, in HAProxy's order."""
    backend_rows = {row["pxname"]: row for row in stat_rows if row.get("type") == STAT_TYPE_BACKEND}
    server_stats = {(row["pxname"], row["svname"]): row for row in stat_rows if row.get("type") == STAT_TYPE_SERVER}
    servers: dict[str, list[ServerState]] = {name: [] for name in backend_rows}
    for key, state in state_rows.items():
        if key[0] in servers:
            servers[key[0]].append(server_from_rows(server_stats.get(key, {}), state))
    return {
        name: BackendState(name, row.get("status") or "", _text_or_none(row.get("algo")), tuple(servers[name]))
        for name, row in backend_rows.items()
    }


@dataclass(frozen=True)
class Snapshot:
    """Backends and servers as read at one moment."""

    backends: dict[str, BackendState]

    def backend(self, name: str) -> BackendState:
        """Return a backend, or raise naming the ones that exist."""
        if name not in self.backends:
            known = ", ".join(sorted(self.backends)) or "none"
            raise UnknownTarget(f"backend {name!r} not found in HAProxy; backends: {known}")
        return self.backends[name]

    def server(self, backend: str, server: str) -> ServerState:
        """Return a server, or raise naming the servers of its backend."""
        for candidate in self.backend(backend).servers:
            if candidate.server == server:
                return candidate
        known = ", ".join(s.server for s in self.backend(backend).servers) or "none"
        raise UnknownTarget(f"server {server!r} not found in backend {backend!r}; servers: {known}")

    def all_servers(self) -> list[ServerState]:
        """Every server of every backend in the snapshot."""
        return [server for backend in self.backends.values() for server in backend.servers]


# ---------------------------------------------------------------- socket


def parse_address(address: str) -> tuple[int, str | tuple[str, int]]:
    """Split 'path', 'unix@path', 'host:port' or 'ipv4@host:port' into family and target."""
    if address.startswith("unix@"):
        return socket.AF_UNIX, address[len("unix@"):]
    for prefix in ("ipv4@", "ipv6@"):
        if address.startswith(prefix):
            address = address[len(prefix):]
    if "/" in address:
        return socket.AF_UNIX, address
    match = re.fullmatch(r"\[?([^\[\]/]+?)\]?:(\d{1,5})", address)
    if not match:
        raise RequestError(f"socket {address!r} is neither a unix socket path nor host:port")
    host, port = match.group(1), int(match.group(2))
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, port)


class RuntimeClient:
    """Sends one command per connection to the Runtime API and returns the reply."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.address = address
        self.timeout = timeout
        self.family, self.target = parse_address(address)

    def send(self, command: str, timeout: float | None = None) -> str:
        """Send a command and read the reply; the whole exchange is bounded by the timeout."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        try:
            with socket.socket(self.family, socket.SOCK_STREAM) as conn:
                conn.settimeout(_remaining(deadline))
                conn.connect(self.target)
                conn.settimeout(_remaining(deadline))
                conn.sendall(command.encode() + b"\n")
                chunks = []
                while True:
                    conn.settimeout(_remaining(deadline))
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                return b"".join(chunks).decode("utf-8", "replace")
        except FileNotFoundError:
            raise SocketUnavailable(
                f"HAProxy stats socket {self.address} does not exist: is haproxy running, "
                f"with 'stats socket {self.address} level admin' in its global section?"
            ) from None
        except PermissionError:
            raise SocketUnavailable(
                f"permission denied on HAProxy stats socket {self.address}: "
                "run as root (become: true) or as a user in the socket's group"
            ) from None
        except ConnectionRefusedError:
            raise SocketUnavailable(
                f"HAProxy refused the connection on {self.address}: haproxy is not running or the socket is stale"
            ) from None
        except socket.timeout:
            raise SocketUnavailable(f"no complete reply from HAProxy on {self.address} to {command!r} within {limit:g}s") from None
        except OSError as err:
            raise SocketUnavailable(f"cannot talk to HAProxy on {self.address}: {err}") from None

    def run(self, command: str) -> None:
        """Send a command that changes state; any text in the reply is an error."""
        reply = self.send(command).strip()
        if reply:
            raise CommandRejected(f"HAProxy rejected {command!r}: {reply}{_hint(reply)}")

    def show(self, command: str, timeout: float | None = None) -> str:
        """Send a read command; a known error reply raises."""
        reply = self.send(command, timeout)
        first = _first_line(reply)
        if first in ("No such proxy.", "Can't find backend."):
            raise UnknownTarget(first)
        if first.startswith(("Unknown command", "Permission denied")):
            raise CommandRejected(f"HAProxy rejected {command!r}: {first}{_hint(first)}")
        return reply

    def snapshot(self, backend: str | None = None, timeout: float | None = None) -> Snapshot:
        """Read every backend, or only one, with its servers."""
        if backend is None:
            stat, state = self.show("show stat", timeout), self.show("show servers state", timeout)
        else:
            try:
                stat = self.show(f"show stat {backend} 6 -1", timeout)
                state = self.show(f"show servers state {backend}", timeout)
            except UnknownTarget:
                Snapshot(self.backend_names()).backend(backend)  # raises, naming the backends
                raise
        snapshot = Snapshot(build_backends(parse_show_stat(stat), parse_servers_state(state)))
        if backend is not None:
            snapshot.backend(backend)  # a frontend of that name has no backend row
        return snapshot

    def backend_names(self) -> dict[str, BackendState]:
        """Every backend without its servers (cheap; for error messages)."""
        rows = parse_show_stat(self.show("show stat -1 2 -1"))
        return build_backends(rows, {})


def _remaining(deadline: float) -> float:
    """Seconds left before a deadline; raises socket.timeout when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout()
    return left


def _hint(reply: str) -> str:
    """Advice for replies whose cause is not obvious."""
    if reply.startswith("Permission denied"):
        return " (the stats socket needs 'level admin' to change servers)"
    if reply.startswith("Unknown command"):
        return " (this HAProxy version may not support the command)"
    if "static LB algorithm" in reply:
        return " (use a dynamic balance algorithm such as roundrobin or leastconn to set other weights)"
    return ""


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class Weight:
    """A requested weight: absolute (0-256) or a percentage of the configured weight."""

    value: int
    percent: bool

    @classmethod
    def parse(cls, text: str | int) -> "Weight":
        """Parse '10' or '50%'; raise RequestError on anything else."""
        match = WEIGHT_PATTERN.fullmatch(str(text))
        if not match:
            raise RequestError(
                f"weight must be an integer from 0 to {MAX_WEIGHT} or a percentage such as '50%', got {text!r}"
            )
        value, percent = int(match.group(1)), bool(match.group(2))
        if not percent and value > MAX_WEIGHT:
            raise RequestError(f"weight must be from 0 to {MAX_WEIGHT}, got {value}")
        return cls(value, percent)

    def resolve(self, initial_weight: int) -> int:
        """The user weight HAProxy will set, computed the way HAProxy does."""
        if not self.percent:
            return self.value
        return min(initial_weight * min(self.value, MAX_WEIGHT_PERCENT) // 100, MAX_WEIGHT)

    def argument(self) -> str:
        """The weight as written on the command line."""
        return f"{self.value}%" if self.percent else str(self.value)


def set_state_command(backend: str, server: str, admin_state: str) -> str:
    """`set server b/s state ready|drain|maint`."""
    return f"set server {backend}/{server} state {admin_state.lower()}"


def set_weight_command(backend: str, server: str, weight: Weight) -> str:
    """`set server b/s weight N|N%`."""
    return f"set server {backend}/{server} weight {weight.argument()}"


def shutdown_sessions_command(backend: str, server: str) -> str:
    """`shutdown sessions server b/s`."""
    return f"shutdown sessions server {backend}/{server}"


@dataclass(frozen=True)
class Plan:
    """Commands that take a server from its current state to the requested one."""

    current: ServerState
    predicted: ServerState
    commands: tuple[str, ...]

    @property
    def ends_sessions(self) -> bool:
        """True when the plan ends sessions that exist."""
        return self.current.sessions > 0 and any(c.startswith("shutdown sessions") for c in self.commands)

    @property
    def changes(self) -> bool:
        """True when the plan changes the server."""
        return self.ends_sessions or self.predicted.admin_view() != self.current.admin_view()


def plan_change(current: ServerState, admin_state: str | None, weight: Weight | None, shutdown_sessions: bool) -> Plan:
    """Plan only the commands needed: weight first (it can be refused), then state, then sessions."""
    commands = []
    predicted = current
    if weight is not None and weight.resolve(current.initial_weight) != current.weight:
        commands.append(set_weight_command(current.backend, current.server, weight))
        predicted = replace(predicted, weight=weight.resolve(current.initial_weight))
    if admin_state is not None and admin_state != current.admin_state:
        commands.append(set_state_command(current.backend, current.server, admin_state))
        predicted = replace(predicted, admin_state=admin_state)
    if shutdown_sessions:
        commands.append(shutdown_sessions_command(current.backend, current.server))
    return Plan(current, predicted, tuple(commands))


# ---------------------------------------------------------------- waiting and asserting


TARGET_DESCRIPTIONS = {
    "UP": "UP (health UP and admin READY)",
    "DOWN": "DOWN",
    "DRAIN": "in DRAIN",
    "MAINT": "in MAINT",
    "no_sessions": "without sessions",
}


def target_reached(server: ServerState, target: str) -> bool:
    """True when the server is in the awaited state."""
    if target == "UP":
        return server.is_up
    if target == "DOWN":
        return server.op_state == "DOWN"
    if target == "no_sessions":
        return server.sessions == 0
    return server.admin_state == target


@dataclass(frozen=True)
class WaitResult:
    """A wait that reached its target."""

    target: str
    elapsed_s: float
    server: ServerState

    def to_dict(self) -> dict[str, Any]:
        """For the module result."""
        return {"for": self.target, "elapsed_s": round(self.elapsed_s, 3), "server": self.server.to_dict()}


class ServerWaiter:
    """Polls a server until it reaches a state; every wait ends by its timeout."""

    def __init__(
        self,
        client: RuntimeClient,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.clock = clock
        self.sleep = sleep

    def wait_for(self, backend: str, server: str, target: str, timeout: float, interval: float) -> WaitResult:
        """Return once the server reaches target; raise WaitTimeout with the last state seen."""
        if target not in WAIT_TARGETS:
            raise RequestError(f"wait_for must be one of {', '.join(WAIT_TARGETS)}, got {target!r}")
        start = self.clock()
        deadline = start + timeout
        last_seen: ServerState | None = None
        last_error: RuntimeApiError | None = None
        while True:
            try:
                read_timeout = min(self.client.timeout, max(deadline - self.clock(), 0.1))
                last_seen = self.client.snapshot(backend, read_timeout).server(backend, server)
                last_error = None
                if target_reached(last_seen, target):
                    return WaitResult(target, self.clock() - start, last_seen)
            except SocketUnavailable as err:
                last_error = err  # haproxy may be reloading; retry until the deadline
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise WaitTimeout(_timeout_message(backend, server, target, timeout, last_seen, last_error))
            self.sleep(min(interval, remaining))


def _timeout_message(
    backend: str,
    server: str,
    target: str,
    timeout: float,
    last_seen: ServerState | None,
    last_error: RuntimeApiError | None,
) -> str:
    """Explain a timed-out wait: what was awaited and what was seen last."""
    message = f"timed out after {timeout:g}s waiting for {backend}/{server} to be {TARGET_DESCRIPTIONS[target]}"
    if last_seen is not None:
        message += f"; last seen: {last_seen.summary()}"
        if target == "UP" and last_seen.admin_state != "READY":
            message += f" (a server in {last_seen.admin_state} takes no new traffic, so it is never UP)"
    if last_error is not None:
        message += f"; last error: {last_error}"
    return message


def min_up_failure(backend: BackendState, min_up: int) -> str | None:
    """Describe why fewer than min_up servers are UP, or None when enough are."""
    up = backend.count_up()
    if up >= min_up:
        return None
    not_up = "; ".join(f"{s.server} ({s.summary()})" for s in backend.servers_not_up()) or "none"
    return (
        f"backend {backend.name} has {up} of {len(backend.servers)} servers UP, "
        f"fewer than min_up {min_up}; not UP: {not_up}"
    )


# ---------------------------------------------------------------- one request


@dataclass(frozen=True)
class ServerRequest:
    """What the module was asked to do."""

    backend: str | None = None
    server: str | None = None
    state: str | None = None
    weight: Weight | None = None
    shutdown_sessions: bool = False
    wait_for: str | None = None
    wait_timeout: float = 30.0
    wait_interval: float = 0.5
    min_up: int | None = None

    @property
    def admin_state(self) -> str | None:
        """The admin state to set, if any."""
        return ADMIN_STATE_OF_REQUEST.get(self.state or "info")

    def validate(self) -> None:
        """Raise RequestError on a request that is incomplete or contradicts itself."""
        for label, name in (("backend", self.backend), ("server", self.server)):
            if name is not None and not NAME_PATTERN.fullmatch(name):
                raise RequestError(f"{label} {name!r} is not a valid HAProxy name (letters, digits, '-', '_', '.', ':')")
        if self.state is not None and self.state not in STATE_REQUESTS:
            raise RequestError(f"state must be one of {', '.join(STATE_REQUESTS)}, got {self.state!r}")
        acts_on_server = self.admin_state is not None or self.weight is not None or self.shutdown_sessions or self.wait_for
        if acts_on_server and not self.server:
            raise RequestError("server is required with state ready/drain/maint, weight, shutdown_sessions or wait_for")
        if (self.server or self.min_up is not None) and not self.backend:
            raise RequestError("backend is required with server or min_up")
        if self.state == "info" and (self.weight is not None or self.shutdown_sessions):
            raise RequestError("state info only reads; drop weight and shutdown_sessions, or choose ready, drain or maint")
        if self.wait_timeout <= 0 or self.wait_interval <= 0:
            raise RequestError("wait_timeout and wait_interval must be greater than 0")
        if self.min_up is not None and self.min_up < 0:
            raise RequestError(f"min_up must be 0 or more, got {self.min_up}")
        needed = ADMIN_STATE_OF_TARGET.get(self.wait_for or "")
        if needed and self.admin_state and needed != self.admin_state:
            raise RequestError(
                f"wait_for {self.wait_for} can never be met after state {self.state}: it needs admin state "
                f"{needed}, and state {self.state} sets {self.admin_state}"
            )


@dataclass
class Outcome:
    """What a run did and saw; becomes the module result."""

    changed: bool = False
    commands: list[str] = field(default_factory=list)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    backends: dict[str, Any] = field(default_factory=dict)
    servers: list[dict[str, Any]] = field(default_factory=list)
    waited: dict[str, Any] | None = None

    def report(self, snapshot: Snapshot, server: str | None) -> None:
        """Report the backends and servers of a snapshot (one server if given)."""
        self.backends = {name: backend.to_dict() for name, backend in snapshot.backends.items()}
        self.servers = [s.to_dict() for s in snapshot.all_servers() if server is None or s.server == server]

    def to_result(self) -> dict[str, Any]:
        """As module return values."""
        return asdict(self)


class BackendOperator:
    """Carries out one ServerRequest: read, assess, change, wait, verify."""

    def __init__(self, client: RuntimeClient, waiter: ServerWaiter | None = None) -> None:
        self.client = client
        self.waiter = waiter or ServerWaiter(client)

    def run(self, request: ServerRequest, check_mode: bool = False) -> Outcome:
        """Run the request; on failure raise OperationFailed carrying what was done."""
        outcome = Outcome()
        try:
            self._run(request, check_mode, outcome)
        except RuntimeApiError as err:
            if outcome.commands:
                self._report_after_failure(request, outcome)
            raise OperationFailed(str(err), outcome) from err
        return outcome

    def _run(self, request: ServerRequest, check_mode: bool, outcome: Outcome) -> None:
        request.validate()
        snapshot = self.client.snapshot(request.backend)
        outcome.report(snapshot, request.server)
        if not request.server:
            if request.min_up is not None:
                self._assert_min_up(snapshot.backend(request.backend), request.min_up, "")
            return
        current = snapshot.server(request.backend, request.server)
        plan = plan_change(current, request.admin_state, request.weight, request.shutdown_sessions)
        outcome.before = current.admin_view()
        outcome.after = plan.predicted.admin_view()
        if request.min_up is not None:
            self._guard_min_up(snapshot.backend(request.backend), plan, request.min_up)
        if check_mode:
            outcome.commands = list(plan.commands)
            outcome.changed = plan.changes
            return
        for command in plan.commands:
            self.client.run(command)
            outcome.commands.append(command)
            outcome.changed = plan.changes
        if request.wait_for:
            waited = self.waiter.wait_for(request.backend, request.server, request.wait_for, request.wait_timeout, request.wait_interval)
            outcome.waited = waited.to_dict()
        if plan.commands or request.wait_for:
            self._verify(request, plan, outcome)

    def _verify(self, request: ServerRequest, plan: Plan, outcome: Outcome) -> None:
        """Re-read the server and report it; check HAProxy applied the commands it accepted."""
        snapshot = self.client.snapshot(request.backend)
        outcome.report(snapshot, request.server)
        outcome.after = snapshot.server(request.backend, request.server).admin_view()
        if plan.commands:
            # Only this run's commands count as a change, not what others did during a wait.
            outcome.changed = plan.ends_sessions or outcome.after != outcome.before
            wanted = {k: v for k, v in plan.predicted.admin_view().items() if v != outcome.before[k]}
            if any(outcome.after[k] != v for k, v in wanted.items()):
                raise RuntimeApiError(
                    f"HAProxy accepted {list(plan.commands)} but {request.backend}/{request.server} now has "
                    f"{outcome.after} instead of {plan.predicted.admin_view()} "
                    "(a state inherited from a tracked server cannot be changed here)"
                )
        if request.min_up is not None:
            self._assert_min_up(snapshot.backend(request.backend), request.min_up, "")

    def _report_after_failure(self, request: ServerRequest, outcome: Outcome) -> None:
        """After commands were sent, report the server as it is now, if HAProxy still answers."""
        try:
            snapshot = self.client.snapshot(request.backend)
            outcome.after = snapshot.server(request.backend, request.server).admin_view()
            outcome.report(snapshot, request.server)
        except RuntimeApiError:
            pass  # the original error is the one to report

    @staticmethod
    def _guard_min_up(backend: BackendState, plan: Plan, min_up: int) -> None:
        """Refuse a change that leaves too few servers UP; assert when there is no change."""
        after = backend.with_server(plan.predicted)
        failure = min_up_failure(after, min_up)
        if not failure:
            return
        if not plan.commands:
            raise MinUpNotMet(failure)
        if after.count_up() < backend.count_up():
            raise MinUpNotMet(f"refusing to run {list(plan.commands)}: afterwards {failure}")
        # A change that takes nothing out (ready on a down server) runs; the check after it decides.

    @staticmethod
    def _assert_min_up(backend: BackendState, min_up: int, prefix: str) -> None:
        failure = min_up_failure(backend, min_up)
        if failure:
            raise MinUpNotMet(prefix + failure)
