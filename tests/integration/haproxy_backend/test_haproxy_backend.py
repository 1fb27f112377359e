"""nospof.webstack.haproxy_backend against a real haproxy with real HTTP servers, run as Ansible runs it."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from haproxy_lab import SERVER_NAMES, Lab, Step, wait_until

WEB_DEFAULTS = {name: {"admin_state": "READY", "weight": weight} for name, weight in (("s1", 100), ("s2", 50), ("s3", 1))}


def on(lab: Lab, **args: Any) -> dict[str, Any]:
    """Module arguments for the lab's admin socket."""
    return {"socket": lab.admin_socket, "wait_interval": 0.1, **args}


def test_info_lists_every_backend_and_server(lab: Lab, run) -> None:
    everything, one_backend, over_tcp = run(
        on(lab),
        on(lab, backend="web"),
        {"socket": lab.tcp_socket, "backend": "web", "server": "s2"},
    )
    for result in (everything, one_backend, over_tcp):
        assert not result.get("failed"), result["msg"]
        assert (result["changed"], result["commands"], result["waited"]) == (False, [], None)
    assert everything["backends"] == {
        "web": {"status": "UP", "algorithm": "roundrobin", "servers_total": 3, "servers_up": 3, "servers_not_up": []},
        "static": {"status": "UP", "algorithm": "source", "servers_total": 1, "servers_up": 1, "servers_not_up": []},
    }
    assert [(s["backend"], s["server"]) for s in everything["servers"]] == [("web", "s1"), ("web", "s2"), ("web", "s3"), ("static", "a")]
    for server in one_backend["servers"]:
        assert server["address"] == f"127.0.0.1:{lab.http[server['server']].port}"
        assert (server["status"], server["op_state"], server["admin_state"]) == ("UP", "UP", "READY")
        assert server["weight"] == server["initial_weight"] == server["effective_weight"] == WEB_DEFAULTS[server["server"]]["weight"]
        assert server["sessions"] == 0 and server["backup"] is False
        assert (server["check_status"], server["check_description"]) == ("L7OK", "Layer7 check passed")
        assert isinstance(server["check_duration_ms"], int) and isinstance(server["last_change_s"], int)
    assert list(one_backend["backends"]) == ["web"]
    assert [s["server"] for s in over_tcp["servers"]] == ["s2"]
    assert over_tcp["before"] == over_tcp["after"] == {"admin_state": "READY", "weight": 50}


def test_drain_changes_once_and_waits_return_at_once(lab: Lab, run) -> None:
    drained, again, up = run(
        on(lab, backend="web", server="s1", state="drain", wait_for="DRAIN", wait_timeout=10),
        on(lab, backend="web", server="s1", state="drain"),
        on(lab, backend="web", server="s3", wait_for="UP", wait_timeout=10),
    )
    assert drained["changed"] is True
    assert drained["commands"] == ["set server web/s1 state drain"]
    assert drained["before"] == {"admin_state": "READY", "weight": 100}
    assert drained["after"] == drained["diff"]["after"] == {"admin_state": "DRAIN", "weight": 100}
    assert drained["diff"]["before"] == drained["before"]
    # s1 is UP by health the whole time: the wait reads the admin state, so it cannot hang.
    assert drained["waited"]["for"] == "DRAIN" and drained["waited"]["elapsed_s"] < 0.5
    assert drained["waited"]["server"]["op_state"] == "UP"
    assert drained["duration_s"] < 3
    assert (again["changed"], again["commands"]) == (False, [])
    assert lab.server("s1").admin_state == "DRAIN" and lab.server("s1").status == "DRAIN"
    assert not up.get("failed") and up["changed"] is False and up["commands"] == []
    assert up["waited"]["elapsed_s"] < 0.5 and up["duration_s"] < 3


def test_check_mode_sends_nothing_and_predicts(lab: Lab, run) -> None:
    maint, weight, noop = run(
        Step(on(lab, backend="web", server="s2", state="maint", weight="10%", wait_for="MAINT"), check_mode=True),
        Step(on(lab, backend="web", server="s3", weight=7), check_mode=True),
        Step(on(lab, backend="web", server="s1", state="ready", weight="100%"), check_mode=True),
    )
    assert maint["changed"] is True and maint["waited"] is None
    assert maint["commands"] == ["set server web/s2 weight 10%", "set server web/s2 state maint"]
    assert maint["after"] == maint["diff"]["after"] == {"admin_state": "MAINT", "weight": 5}
    assert weight["commands"] == ["set server web/s3 weight 7"] and weight["after"]["weight"] == 7
    assert (noop["changed"], noop["commands"]) == (False, [])
    assert lab.admin_views() == WEB_DEFAULTS


def test_weight_absolute_and_percent(lab: Lab, run) -> None:
    absolute, percent, percent_again, doubled, bad, static = run(
        on(lab, backend="web", server="s1", weight=7),
        on(lab, backend="web", server="s2", weight="50%"),
        on(lab, backend="web", server="s2", weight="50%"),
        on(lab, backend="web", server="s2", weight="200%"),
        on(lab, backend="web", server="s2", weight="300"),
        on(lab, backend="static", server="a", weight=5),
    )
    assert absolute["commands"] == ["set server web/s1 weight 7"] and absolute["changed"] is True
    assert absolute["after"] == {"admin_state": "READY", "weight": 7}
    assert percent["commands"] == ["set server web/s2 weight 50%"]
    assert (percent["before"]["weight"], percent["after"]["weight"]) == (50, 25)
    assert (percent_again["changed"], percent_again["commands"]) == (False, [])
    assert doubled["after"]["weight"] == 100
    assert bad["failed"] and bad["msg"] == "weight must be from 0 to 256, got 300"
    assert lab.server("s1").weight == 7 and lab.server("s1").effective_weight == 7
    assert lab.server("s2").weight == 100
    # balance source: HAProxy refuses, and says why.
    assert static["failed"] and static["changed"] is False and static["commands"] == []
    assert "HAProxy rejected 'set server static/a weight 5': Backend is using a static LB algorithm" in static["msg"]
    assert lab.server("a", "static").weight == 1


def test_maint_then_ready_and_wait_for_up(lab: Lab, run) -> None:
    maint, ready = run(
        on(lab, backend="web", server="s2", state="maint", wait_for="DOWN", wait_timeout=10),
        on(lab, backend="web", server="s2", state="ready", wait_for="UP", wait_timeout=10),
    )
    assert maint["changed"] and maint["commands"] == ["set server web/s2 state maint"]
    assert maint["after"] == {"admin_state": "MAINT", "weight": 50}
    assert maint["waited"]["server"]["status"] == "MAINT" and maint["waited"]["server"]["op_state"] == "DOWN"
    assert ready["changed"] and ready["commands"] == ["set server web/s2 state ready"]
    assert ready["after"] == {"admin_state": "READY", "weight": 50}
    assert ready["waited"]["server"]["op_state"] == "UP"
    assert lab.admin_views() == WEB_DEFAULTS


def test_killed_http_server_goes_down_and_fails_min_up(lab: Lab, run) -> None:
    lab.http["s3"].kill()
    down, three_up, two_up = run(
        on(lab, backend="web", server="s3", wait_for="DOWN", wait_timeout=10),
        on(lab, backend="web", min_up=3),
        on(lab, backend="web", min_up=2),
    )
    assert not down.get("failed"), down["msg"]
    assert down["waited"]["server"]["op_state"] == "DOWN"
    assert down["waited"]["server"]["check_status"] in ("L4CON", "L4TOUT", "L7RSP")
    assert three_up["failed"] and three_up["commands"] == []
    assert three_up["msg"].startswith(
        "backend web has 2 of 3 servers UP, fewer than min_up 3; not UP: s3 (op_state DOWN, admin_state READY, status DOWN, check L4"
    )
    assert not two_up.get("failed") and two_up["backends"]["web"]["servers_not_up"] == ["s3"]

    lab.http["s3"].start()
    back = run(on(lab, backend="web", server="s3", wait_for="UP", wait_timeout=10, min_up=3))[0]
    assert not back.get("failed"), back["msg"]
    assert back["waited"]["server"]["check_status"] == "L7OK"


def test_min_up_refuses_a_drain_that_leaves_too_few(lab: Lab, run) -> None:
    refused, checked, allowed = run(
        on(lab, backend="web", server="s1", state="drain", min_up=3),
        Step(on(lab, backend="web", server="s1", state="drain", min_up=3), check_mode=True),
        on(lab, backend="web", server="s1", state="drain", min_up=2),
    )
    for result in (refused, checked):
        assert result["failed"] and result["changed"] is False and result["commands"] == []
        assert result["msg"] == (
            "refusing to run ['set server web/s1 state drain']: afterwards backend web has 2 of 3 servers UP, "
            "fewer than min_up 3; not UP: s1 (op_state UP, admin_state DRAIN, status UP, check L7OK, weight 100, 0 sessions)"
        )
    assert not allowed.get("failed") and allowed["commands"] == ["set server web/s1 state drain"]
    assert lab.server("s1").admin_state == "DRAIN"


def test_waits_that_cannot_succeed_fail_within_their_timeout(lab: Lab, run) -> None:
    never_down, contradiction, maint, never_up = run(
        on(lab, backend="web", server="s1", wait_for="DOWN", wait_timeout=1),
        on(lab, backend="web", server="s1", state="drain", wait_for="UP", wait_timeout=30),
        on(lab, backend="web", server="s2", state="maint"),
        on(lab, backend="web", server="s2", wait_for="UP", wait_timeout=1),
    )
    assert never_down["failed"] and never_down["changed"] is False
    assert never_down["msg"].startswith(
        "timed out after 1s waiting for web/s1 to be DOWN; last seen: op_state UP, admin_state READY, status UP, check L7OK"
    )
    assert 1 <= never_down["duration_s"] < 3.5
    assert contradiction["failed"] and contradiction["commands"] == [] and contradiction["duration_s"] < 3
    assert contradiction["msg"].startswith("wait_for UP can never be met after state drain")
    assert maint["changed"]
    assert never_up["failed"] and never_up["duration_s"] < 3.5
    assert never_up["msg"].endswith("(a server in MAINT takes no new traffic, so it is never UP)")
    assert lab.server("s1").admin_state == "READY"


def test_unknown_names_fail_clearly_and_change_nothing(lab: Lab, run) -> None:
    server, backend, injected = run(
        on(lab, backend="web", server="s9", state="maint"),
        on(lab, backend="api", server="s1", state="maint"),
        on(lab, backend="web", server="s1;shutdown", state="maint"),
    )
    assert server["failed"] and server["commands"] == [] and server["changed"] is False
    assert server["msg"] == "server 's9' not found in backend 'web'; servers: s1, s2, s3"
    assert backend["failed"] and backend["msg"] == "backend 'api' not found in HAProxy; backends: static, web"
    assert injected["failed"] and "is not a valid HAProxy name" in injected["msg"]
    assert lab.admin_views() == WEB_DEFAULTS


def test_socket_problems_fail_clearly(lab: Lab, run) -> None:
    missing_path = str(lab.workdir / "missing.sock")
    missing, user_level = run(
        {"socket": missing_path, "backend": "web", "server": "s1", "state": "drain"},
        {"socket": lab.user_socket, "backend": "web", "server": "s1", "state": "drain"},
    )
    assert missing["failed"] and missing["commands"] == []
    assert missing["msg"] == (
        f"HAProxy stats socket {missing_path} does not exist: is haproxy running, "
        f"with 'stats socket {missing_path} level admin' in its global section?"
    )
    assert user_level["failed"] and user_level["commands"] == []
    assert user_level["msg"] == (
        "HAProxy rejected 'set server web/s1 state drain': Permission denied "
        "(the stats socket needs 'level admin' to change servers)"
    )
    assert lab.server("s1").admin_state == "READY"


def test_sessions_are_awaited_and_ended(lab: Lab, run) -> None:
    held, name = lab.open_session()
    with held:
        drained, ended, none_left, nothing_to_end = run(
            on(lab, backend="web", server=name, state="drain", wait_for="no_sessions", wait_timeout=0.5),
            on(lab, backend="web", server=name, shutdown_sessions=True),
            on(lab, backend="web", server=name, wait_for="no_sessions", wait_timeout=5),
            on(lab, backend="web", server=name, shutdown_sessions=True),
        )
        held.settimeout(5)
        assert held.recv(1) == b""  # haproxy closed the client side
    assert drained["failed"] and drained["changed"] is True
    assert drained["commands"] == [f"set server web/{name} state drain"]
    assert f"timed out after 0.5s waiting for web/{name} to be without sessions; last seen:" in drained["msg"]
    assert drained["msg"].endswith(", 1 sessions")
    assert ended["changed"] is True and ended["commands"] == [f"shutdown sessions server web/{name}"]
    assert not none_left.get("failed") and none_left["waited"]["server"]["sessions"] == 0
    assert nothing_to_end["changed"] is False and nothing_to_end["commands"] == [f"shutdown sessions server web/{name}"]


def test_wait_for_no_sessions_returns_when_the_last_one_closes(lab: Lab, run_one) -> None:
    held, name = lab.open_session()

    def close_after_drain() -> None:
        wait_until(lambda: lab.server(name).admin_state == "DRAIN", 30, "the module to drain the server")
        time.sleep(0.6)
        held.shutdown(socket.SHUT_RDWR)
        held.close()

    closer = threading.Thread(target=close_after_drain, daemon=True)
    closer.start()
    result = run_one(on(lab, backend="web", server=name, state="drain", wait_for="no_sessions", wait_timeout=15))
    closer.join(5)
    assert not result.get("failed"), result["msg"]
    assert result["commands"] == [f"set server web/{name} state drain"]
    assert 0.5 <= result["waited"]["elapsed_s"] < 5
    assert result["waited"]["server"]["sessions"] == 0
    assert {s: lab.server(s).admin_state for s in SERVER_NAMES if s != name} == {s: "READY" for s in SERVER_NAMES if s != name}
