"""Unit tests for haproxy_runtime: parsing, command building, planning, waiting and asserting."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import pytest
from ansible_collections.nospof.webstack.plugins.module_utils import haproxy_runtime as hr

# Trimmed `show stat` of HAProxy 2.6: the parser goes by column name, so a subset will do.
SHOW_STAT = (
    "# pxname,svname,scur,status,weight,bck,lastchg,type,check_status,check_duration,check_desc,algo,uweight,\n"
    "fe,FRONTEND,0,OPEN,,,,0,,,,,,\n"
    "web,s1,2,UP,100,0,120,2,L7OK,1,Layer7 check passed,,100,\n"
    "web,s2,0,DRAIN,50,0,30,2,L7OK,3,Layer7 check passed,,50,\n"
    "web,s3,0,DOWN,1,0,5,2,* L4CON,0,Layer4 connection problem,,1,\n"
    "web,s4,0,MAINT,1,1,9,2,,,,,1,\n"
    "web,BACKEND,2,UP,150,,120,1,,,,roundrobin,150,\n"
    "empty,BACKEND,0,DOWN,0,,7,1,,,,roundrobin,0,\n"
    "\n"
)
SHOW_SERVERS_STATE = (
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
    "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl "
    "srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 web 1 s1 10.0.0.1 2 0 100 100 120 15 3 3 6 0 0 0 - 8080 - 0 0 - - 0\n"
    "3 web 2 s2 10.0.0.2 2 8 50 50 30 15 3 3 6 0 0 0 - 8080 - 0 0 - - 0\n"
    "3 web 3 s3 10.0.0.3 0 0 1 1 5 8 2 0 6 0 0 0 - 8080 - 0 0 - - 0\n"
    "3 web 4 s4 10.0.0.4 0 1 1 1 9 1 0 0 0 0 0 0 - 8080 - 0 0 - - 0\n"
    "\n"
)


def snapshot() -> hr.Snapshot:
    """The snapshot of the sample replies."""
    return hr.Snapshot(hr.build_backends(hr.parse_show_stat(SHOW_STAT), hr.parse_servers_state(SHOW_SERVERS_STATE)))


def server(name: str) -> hr.ServerState:
    """One server of the sample."""
    return snapshot().server("web", name)


# ---------------------------------------------------------------- parsing


def test_show_stat_rows_are_keyed_by_column() -> None:
    rows = hr.parse_show_stat(SHOW_STAT)
    assert [(r["pxname"], r["svname"]) for r in rows][:2] == [("fe", "FRONTEND"), ("web", "s1")]
    assert rows[1]["status"] == "UP" and rows[1]["uweight"] == "100"


def test_show_stat_rejects_an_error_reply() -> None:
    with pytest.raises(hr.CommandRejected, match="Unknown command"):
        hr.parse_show_stat("Unknown command, but maybe ...\n")


def test_servers_state_is_keyed_by_backend_and_server() -> None:
    rows = hr.parse_servers_state(SHOW_SERVERS_STATE)
    assert set(rows) == {("web", "s1"), ("web", "s2"), ("web", "s3"), ("web", "s4")}
    assert rows[("web", "s2")]["srv_admin_state"] == "8"


def test_servers_state_rejects_unknown_format() -> None:
    with pytest.raises(hr.CommandRejected, match="format '2'"):
        hr.parse_servers_state(SHOW_SERVERS_STATE.replace("1\n", "2\n", 1))
    with pytest.raises(hr.CommandRejected, match="Can't find backend"):
        hr.parse_servers_state("Can't find backend.\n")


@pytest.mark.parametrize(
    "flags, expected",
    [(0, "READY"), (0x08, "DRAIN"), (0x10, "DRAIN"), (0x01, "MAINT"), (0x02, "MAINT"),
     (0x20, "MAINT"), (0x05, "MAINT"), (0x09, "MAINT"), (0x40, "READY"), (0x48, "DRAIN")],
)
def test_admin_state_from_flags(flags: int, expected: str) -> None:
    assert hr.admin_state_from_flags(flags) == expected


@pytest.mark.parametrize("code, expected", [(0, "DOWN"), (1, "UP"), (2, "UP"), (3, "NOLB"), (9, "DOWN")])
def test_op_state_from_code(code: int, expected: str) -> None:
    assert hr.op_state_from_code(code) == expected


def test_server_fields_are_typed_and_merged() -> None:
    s1, s2, s3, s4 = (server(name) for name in ("s1", "s2", "s3", "s4"))
    assert s1 == hr.ServerState(
        backend="web", server="s1", address="10.0.0.1:8080", status="UP", op_state="UP",
        admin_state="READY", weight=100, initial_weight=100, effective_weight=100, sessions=2,
        backup=False, check_status="L7OK", check_duration_ms=1,
        check_description="Layer7 check passed", last_change_s=120,
    )
    assert (s2.status, s2.op_state, s2.admin_state) == ("DRAIN", "UP", "DRAIN")
    assert s3.check_status == "L4CON"  # "* " marks a check in progress
    assert (s4.admin_state, s4.op_state, s4.backup, s4.check_status, s4.check_duration_ms) == ("MAINT", "DOWN", True, None, None)


def test_backends_summarise_their_servers() -> None:
    backends = snapshot().backends
    assert list(backends) == ["web", "empty"]  # frontends are left out
    assert backends["web"].to_dict() == {
        "status": "UP", "algorithm": "roundrobin", "servers_total": 4,
        "servers_up": 1, "servers_not_up": ["s2", "s3", "s4"],
    }
    assert backends["empty"].to_dict()["servers_total"] == 0


def test_unknown_backend_and_server_name_what_exists() -> None:
    with pytest.raises(hr.UnknownTarget, match="backend 'api' not found in HAProxy; backends: empty, web"):
        snapshot().backend("api")
    with pytest.raises(hr.UnknownTarget, match="server 'zz' not found in backend 'web'; servers: s1, s2, s3, s4"):
        snapshot().server("web", "zz")


# ---------------------------------------------------------------- addresses and commands


@pytest.mark.parametrize(
    "address, family, target",
    [
        ("/run/haproxy/admin.sock", socket.AF_UNIX, "/run/haproxy/admin.sock"),
        ("unix@/tmp/a.sock", socket.AF_UNIX, "/tmp/a.sock"),
        ("127.0.0.1:9999", socket.AF_INET, ("127.0.0.1", 9999)),
        ("ipv4@127.0.0.1:9999", socket.AF_INET, ("127.0.0.1", 9999)),
        ("localhost:9999", socket.AF_INET, ("localhost", 9999)),
        ("[::1]:9999", socket.AF_INET6, ("::1", 9999)),
    ],
)
def test_parse_address(address: str, family: int, target: object) -> None:
    assert hr.parse_address(address) == (family, target)


@pytest.mark.parametrize("address", ["admin.sock", "127.0.0.1", "host:port", ""])
def test_parse_address_rejects_the_rest(address: str) -> None:
    with pytest.raises(hr.RequestError, match="neither a unix socket path nor host:port"):
        hr.parse_address(address)


@pytest.mark.parametrize(
    "text, weight",
    [("10", hr.Weight(10, False)), (10, hr.Weight(10, False)), ("0", hr.Weight(0, False)),
     ("256", hr.Weight(256, False)), ("50%", hr.Weight(50, True)), (" 7 ", hr.Weight(7, False)),
     ("1000%", hr.Weight(1000, True))],
)
def test_weight_parse(text: object, weight: hr.Weight) -> None:
    assert hr.Weight.parse(text) == weight


@pytest.mark.parametrize("text", ["257", "abc", "-1", "1.5", "%", "", "5%%", "10 %x"])
def test_weight_parse_rejects(text: str) -> None:
    with pytest.raises(hr.RequestError, match="weight must be"):
        hr.Weight.parse(text)


@pytest.mark.parametrize(
    "weight, initial, expected",
    [("7", 100, 7), ("50%", 50, 25), ("33%", 1, 0), ("200%", 100, 200), ("1000%", 50, 256), ("100%", 1, 1)],
)
def test_weight_resolves_like_haproxy(weight: str, initial: int, expected: int) -> None:
    assert hr.Weight.parse(weight).resolve(initial) == expected


def test_commands() -> None:
    assert hr.set_state_command("web", "s1", "DRAIN") == "set server web/s1 state drain"
    assert hr.set_weight_command("web", "s1", hr.Weight(50, True)) == "set server web/s1 weight 50%"
    assert hr.set_weight_command("web", "s1", hr.Weight(0, False)) == "set server web/s1 weight 0"
    assert hr.shutdown_sessions_command("web", "s1") == "shutdown sessions server web/s1"


def test_plan_sends_only_what_differs_in_order() -> None:
    s1 = server("s1")
    plan = hr.plan_change(s1, "MAINT", hr.Weight(10, False), True)
    assert plan.commands == (
        "set server web/s1 weight 10",
        "set server web/s1 state maint",
        "shutdown sessions server web/s1",
    )
    assert plan.predicted.admin_view() == {"admin_state": "MAINT", "weight": 10}
    assert plan.changes and plan.ends_sessions


def test_plan_of_the_current_state_is_empty() -> None:
    plan = hr.plan_change(server("s2"), "DRAIN", hr.Weight(100, True), False)
    assert plan.commands == () and not plan.changes


def test_shutdown_without_sessions_is_sent_but_changes_nothing() -> None:
    plan = hr.plan_change(server("s2"), None, None, True)
    assert plan.commands == ("shutdown sessions server web/s2",)
    assert not plan.changes


# ---------------------------------------------------------------- targets and min_up


@pytest.mark.parametrize(
    "name, reached",
    [("s1", {"UP"}), ("s2", {"DRAIN", "no_sessions"}), ("s3", {"DOWN", "no_sessions"}),
     ("s4", {"DOWN", "MAINT", "no_sessions"})],
)
def test_target_reached(name: str, reached: set[str]) -> None:
    assert {t for t in hr.WAIT_TARGETS if hr.target_reached(server(name), t)} == reached


def test_min_up_failure_lists_the_servers_not_up() -> None:
    web = snapshot().backend("web")
    assert hr.min_up_failure(web, 1) is None
    message = hr.min_up_failure(web, 2)
    assert message.startswith("backend web has 1 of 4 servers UP, fewer than min_up 2; not UP: s2 (op_state UP, admin_state DRAIN")
    assert "s3 (op_state DOWN, admin_state READY, status DOWN, check L4CON" in message
    assert "s4 (op_state DOWN, admin_state MAINT, status MAINT, weight 1, 0 sessions)" in message


# ---------------------------------------------------------------- requests


@pytest.mark.parametrize(
    "request_fields, message",
    [
        ({"backend": "web", "state": "drain"}, "server is required"),
        ({"backend": "web", "wait_for": "UP"}, "server is required"),
        ({"server": "s1", "state": "ready"}, "backend is required"),
        ({"min_up": 1}, "backend is required"),
        ({"backend": "web", "server": "s1", "state": "info", "weight": hr.Weight(1, False)}, "state info only reads"),
        ({"backend": "web", "server": "s1", "state": "drain", "wait_for": "UP"}, "wait_for UP can never be met after state drain"),
        ({"backend": "web", "server": "s1", "state": "maint", "wait_for": "DRAIN"}, "wait_for DRAIN can never be met"),
        ({"backend": "web", "server": "s1", "state": "ready", "wait_for": "MAINT"}, "wait_for MAINT can never be met"),
        ({"backend": "web;shutdown", "server": "s1"}, "not a valid HAProxy name"),
        ({"backend": "web", "server": "s 1"}, "not a valid HAProxy name"),
        ({"backend": "web", "server": "s1", "wait_for": "UP", "wait_timeout": 0}, "wait_timeout and wait_interval"),
        ({"backend": "web", "min_up": -1}, "min_up must be 0 or more"),
    ],
)
def test_request_validation(request_fields: dict, message: str) -> None:
    with pytest.raises(hr.RequestError, match=message):
        hr.ServerRequest(**request_fields).validate()


@pytest.mark.parametrize(
    "state, wait_for",
    [("drain", "DRAIN"), ("drain", "no_sessions"), ("drain", "DOWN"), ("maint", "DOWN"), ("ready", "UP"), (None, "MAINT")],
)
def test_consistent_waits_are_accepted(state: str, wait_for: str) -> None:
    hr.ServerRequest(backend="web", server="s1", state=state, wait_for=wait_for).validate()


# ---------------------------------------------------------------- fakes for the operator and the waiter


class FakeClock:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


class FakeHAProxy:
    """Stands in for RuntimeClient over the sample snapshot, applying the commands it gets."""

    timeout = 5.0

    def __init__(self, ignore: str = "") -> None:
        self.state = snapshot()
        self.sent: list[str] = []
        self.reads = 0
        self.ignore = ignore  # a command HAProxy "accepts" but does not apply
        self.on_read = lambda reads: None

    def snapshot(self, backend: str | None = None, timeout: float | None = None) -> hr.Snapshot:
        self.reads += 1
        self.on_read(self.reads)
        return self.state

    def update(self, name: str, **fields: object) -> None:
        web = self.state.backend("web")
        self.state = hr.Snapshot({**self.state.backends, "web": web.with_server(replace(web_server(web, name), **fields))})

    def run(self, command: str) -> None:
        self.sent.append(command)
        if command == self.ignore:
            return
        words = command.split()
        name = words[2].split("/")[1]
        if words[3] == "state":
            self.update(name, admin_state=words[4].upper())
        elif words[3] == "weight":
            self.update(name, weight=hr.Weight.parse(words[4]).resolve(web_server(self.state.backend("web"), name).initial_weight))


def web_server(backend: hr.BackendState, name: str) -> hr.ServerState:
    return next(s for s in backend.servers if s.server == name)


def operator(fake: FakeHAProxy, clock: FakeClock | None = None) -> hr.BackendOperator:
    clock = clock or FakeClock()
    return hr.BackendOperator(fake, hr.ServerWaiter(fake, clock, clock.sleep))


def test_drain_is_sent_once_and_reported() -> None:
    fake = FakeHAProxy()
    first = operator(fake).run(hr.ServerRequest(backend="web", server="s1", state="drain"))
    assert (first.changed, first.commands) == (True, ["set server web/s1 state drain"])
    assert (first.before, first.after) == ({"admin_state": "READY", "weight": 100}, {"admin_state": "DRAIN", "weight": 100})
    second = operator(fake).run(hr.ServerRequest(backend="web", server="s1", state="drain"))
    assert (second.changed, second.commands) == (False, [])
    assert fake.sent == ["set server web/s1 state drain"]


def test_check_mode_sends_nothing_and_predicts() -> None:
    fake = FakeHAProxy()
    outcome = operator(fake).run(
        hr.ServerRequest(backend="web", server="s2", state="ready", weight=hr.Weight(10, False), wait_for="UP"), check_mode=True
    )
    assert fake.sent == []
    assert outcome.changed and outcome.waited is None
    assert outcome.commands == ["set server web/s2 weight 10", "set server web/s2 state ready"]
    assert outcome.after == {"admin_state": "READY", "weight": 10}


def test_min_up_refuses_a_change_that_takes_too_much_out() -> None:
    fake = FakeHAProxy()
    with pytest.raises(hr.OperationFailed, match=r"refusing to run \['set server web/s1 state drain'\]: afterwards backend web has 0 of 4") as failed:
        operator(fake).run(hr.ServerRequest(backend="web", server="s1", state="drain", min_up=1))
    assert fake.sent == [] and failed.value.outcome.commands == []


def test_min_up_lets_a_server_come_back_and_checks_afterwards() -> None:
    fake = FakeHAProxy()
    outcome = operator(fake).run(hr.ServerRequest(backend="web", server="s2", state="ready", min_up=2))
    assert outcome.commands == ["set server web/s2 state ready"]
    with pytest.raises(hr.OperationFailed, match="backend web has 2 of 4 servers UP, fewer than min_up 3"):
        operator(fake).run(hr.ServerRequest(backend="web", server="s4", state="ready", min_up=3))
    assert fake.sent[-1] == "set server web/s4 state ready"  # s4 stays DOWN by health


def test_min_up_alone_is_an_assertion() -> None:
    operator(FakeHAProxy()).run(hr.ServerRequest(backend="web", min_up=1))
    with pytest.raises(hr.OperationFailed, match="fewer than min_up 2; not UP: s2"):
        operator(FakeHAProxy()).run(hr.ServerRequest(backend="web", min_up=2))


def test_a_command_haproxy_does_not_apply_fails_the_run() -> None:
    fake = FakeHAProxy(ignore="set server web/s1 state maint")
    with pytest.raises(hr.OperationFailed, match="but web/s1 now has") as failed:
        operator(fake).run(hr.ServerRequest(backend="web", server="s1", state="maint"))
    assert failed.value.outcome.commands == ["set server web/s1 state maint"]


def test_wait_for_drain_after_drain_returns_at_once() -> None:
    fake, clock = FakeHAProxy(), FakeClock()
    outcome = operator(fake, clock).run(hr.ServerRequest(backend="web", server="s1", state="drain", wait_for="DRAIN", wait_timeout=30))
    assert outcome.waited["for"] == "DRAIN" and outcome.waited["elapsed_s"] == 0
    assert clock.now == 1000.0


def test_wait_polls_until_reached() -> None:
    fake, clock = FakeHAProxy(), FakeClock()
    fake.on_read = lambda reads: fake.update("s3", op_state="UP", status="UP") if reads == 4 else None
    result = hr.ServerWaiter(fake, clock, clock.sleep).wait_for("web", "s3", "UP", timeout=10, interval=0.5)
    assert result.server.is_up and result.elapsed_s == pytest.approx(1.5)


def test_wait_never_outlives_its_timeout() -> None:
    fake, clock = FakeHAProxy(), FakeClock()
    waiter = hr.ServerWaiter(fake, clock, clock.sleep)
    with pytest.raises(hr.WaitTimeout) as timeout:
        waiter.wait_for("web", "s2", "UP", timeout=2, interval=0.7)
    assert clock.now == pytest.approx(1002.0)
    assert str(timeout.value) == (
        "timed out after 2s waiting for web/s2 to be UP (health UP and admin READY); last seen: op_state UP, "
        "admin_state DRAIN, status DRAIN, check L7OK, weight 50, 0 sessions (a server in DRAIN takes no new traffic, so it is never UP)"
    )


def test_wait_for_no_sessions_counts_sessions() -> None:
    fake, clock = FakeHAProxy(), FakeClock()
    with pytest.raises(hr.WaitTimeout, match="to be without sessions; last seen: .* 2 sessions"):
        hr.ServerWaiter(fake, clock, clock.sleep).wait_for("web", "s1", "no_sessions", timeout=1, interval=0.2)


def test_wait_rides_out_a_reload_but_not_past_the_deadline() -> None:
    fake, clock = FakeHAProxy(), FakeClock()

    def unavailable(reads: int) -> None:
        if reads < 3:
            raise hr.SocketUnavailable("HAProxy refused the connection")

    fake.on_read = unavailable
    assert hr.ServerWaiter(fake, clock, clock.sleep).wait_for("web", "s1", "UP", 5, 0.5).elapsed_s == pytest.approx(1.0)
    fake.on_read = lambda reads: unavailable(0)
    with pytest.raises(hr.WaitTimeout, match=r"to be UP \(health UP and admin READY\); last error: HAProxy refused"):
        hr.ServerWaiter(fake, clock, clock.sleep).wait_for("web", "s1", "UP", 2, 0.5)


# ---------------------------------------------------------------- the socket client, on a fake unix socket


@dataclass
class FakeSocket:
    """A unix socket path, the replies it gives per command, and the commands it got."""

    path: str
    replies: dict[str, bytes] = field(default_factory=dict)
    received: list[str] = field(default_factory=list)


@pytest.fixture
def fake_socket(tmp_path: Path) -> Iterator[FakeSocket]:
    """A unix socket that answers each line from a dict of replies; 'hang' never answers."""
    fake = FakeSocket(str(tmp_path / "s.sock"))
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(fake.path)
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn = listener.accept()[0]
            except socket.timeout:
                continue
            with conn:
                command = conn.makefile().readline().strip()
                fake.received.append(command)
                if command == "hang":
                    stop.wait(3)
                    continue
                conn.sendall(fake.replies.get(command, b"Unknown command, but maybe one of the following ones is a better match:\n\n"))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield fake
    stop.set()
    thread.join(5)
    listener.close()


def test_client_reads_a_snapshot(fake_socket: FakeSocket) -> None:
    fake_socket.replies["show stat web 6 -1"] = SHOW_STAT.encode()
    fake_socket.replies["show servers state web"] = SHOW_SERVERS_STATE.encode()
    assert hr.RuntimeClient(fake_socket.path).snapshot("web").server("web", "s2").admin_state == "DRAIN"
    assert fake_socket.received == ["show stat web 6 -1", "show servers state web"]


def test_client_names_backends_when_one_is_unknown(fake_socket: FakeSocket) -> None:
    fake_socket.replies["show stat api 6 -1"] = b"No such proxy.\n\n"
    fake_socket.replies["show stat -1 2 -1"] = SHOW_STAT.encode()
    with pytest.raises(hr.UnknownTarget, match="backend 'api' not found in HAProxy; backends: empty, web"):
        hr.RuntimeClient(fake_socket.path).snapshot("api")


@pytest.mark.parametrize(
    "reply, message",
    [
        (b"No such server.\n\n", "HAProxy rejected 'set server web/s1 state drain': No such server."),
        (b"Permission denied\n\n", "Permission denied (the stats socket needs 'level admin'"),
        (b"Unknown command, but maybe\n\n", "Unknown command, but maybe (this HAProxy version may not support"),
    ],
)
def test_client_raises_on_error_replies(fake_socket: FakeSocket, reply: bytes, message: str) -> None:
    fake_socket.replies["set server web/s1 state drain"] = reply
    with pytest.raises(hr.CommandRejected, match=message.replace("(", r"\(").replace(".", r"\.")):
        hr.RuntimeClient(fake_socket.path).run("set server web/s1 state drain")


def test_client_accepts_an_empty_reply(fake_socket: FakeSocket) -> None:
    fake_socket.replies["set server web/s1 weight 5"] = b"\n"
    hr.RuntimeClient(fake_socket.path).run("set server web/s1 weight 5")
    assert fake_socket.received == ["set server web/s1 weight 5"]


def test_client_times_out_on_a_silent_socket(fake_socket: FakeSocket) -> None:
    started = time.monotonic()
    with pytest.raises(hr.SocketUnavailable, match=r"no complete reply from HAProxy on .* to 'hang' within 0\.3s"):
        hr.RuntimeClient(fake_socket.path, timeout=0.3).send("hang")
    assert time.monotonic() - started < 1.5


def test_client_explains_a_missing_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "none.sock")
    with pytest.raises(hr.SocketUnavailable, match=f"HAProxy stats socket {path} does not exist: is haproxy running"):
        hr.RuntimeClient(path).snapshot()


def test_client_explains_a_stale_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    with pytest.raises(hr.SocketUnavailable, match="refused the connection"):
        hr.RuntimeClient(path).snapshot()


def test_a_wait_only_run_does_not_claim_what_others_changed() -> None:
    fake, clock = FakeHAProxy(), FakeClock()
    fake.on_read = lambda reads: fake.update("s1", admin_state="MAINT", op_state="DOWN") if reads == 3 else None
    outcome = operator(fake, clock).run(hr.ServerRequest(backend="web", server="s1", wait_for="MAINT", wait_timeout=5))
    assert outcome.waited["for"] == "MAINT" and outcome.commands == [] and outcome.changed is False
    assert (outcome.before["admin_state"], outcome.after["admin_state"]) == ("READY", "MAINT")


def test_a_failed_wait_reports_the_change_it_made() -> None:
    fake, clock = FakeHAProxy(), FakeClock()
    with pytest.raises(hr.OperationFailed, match="to be without sessions") as failed:
        operator(fake, clock).run(hr.ServerRequest(backend="web", server="s1", state="maint", wait_for="no_sessions", wait_timeout=1))
    outcome = failed.value.outcome
    assert outcome.changed and outcome.commands == ["set server web/s1 state maint"]
    assert outcome.after == {"admin_state": "MAINT", "weight": 100}
    assert [s["admin_state"] for s in outcome.servers] == ["MAINT"]
