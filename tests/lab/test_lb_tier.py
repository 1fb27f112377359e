"""Issue 3: the load-balancer tier, exercised through the VIP of a running lab."""

from __future__ import annotations

import base64
import socket
import ssl
import urllib.error
import urllib.request
import time
import warnings
from collections import Counter

import pytest

from lab_helpers import Client, Lab, TrafficLoop, plain_http

SPLIT_TOLERANCE = 0.05
SPLIT_REQUESTS = 1000


def urlopen_status(url: str, credentials: tuple = ()) -> int:
    request = urllib.request.Request(url)
    if credentials:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def served_by_counts(lab: Lab, requests: int) -> Counter:
    client = Client(lab)
    counts: Counter = Counter()
    for _request in range(requests):
        answer = client.request("GET", "/healthz")
        assert answer.ok, answer.error or answer.status
        counts[answer.headers["x-served-by"]] += 1
    client.close()
    return counts


def haproxy_master_pid(lab: Lab, host: str) -> str:
    return lab.exec(host, "systemctl", "show", "--property", "MainPID", "--value", "haproxy").stdout.strip()


def haproxy_reloads(lab: Lab, host: str) -> int:
    """Workers started so far: a reload starts a new one."""
    info = lab.exec(host, "sh", "-c", "echo 'show info' | socat stdio unix-connect:/run/haproxy/admin.sock").stdout
    return int(next(line.split(":")[1] for line in info.splitlines() if line.startswith("Pid:")))


def set_weight(lab: Lab, web_node: str, weight: str) -> None:
    result = lab.ansible_playbook("playbooks/set_weight.yml", "-e", f"web_node={web_node}", "-e", f"weight={weight}")
    assert result.returncode == 0, result.stdout + result.stderr


def assert_split(counts: Counter, expected: dict) -> None:
    total = sum(counts.values())
    for host, share in expected.items():
        measured = counts[host] / total
        assert abs(measured - share) <= SPLIT_TOLERANCE, f"{host}: {measured:.3f} of {total}, expected {share}: {counts}"


def test_exactly_one_lb_holds_the_vip(lab: Lab) -> None:
    assert len(lab.vip_holders()) == 1, lab.vip_holders()


def test_http_answers_308_to_https(lab: Lab) -> None:
    answer = plain_http(lab.vip, "/api/users?limit=1")
    assert answer.status == 308
    assert answer.headers["location"] == f"https://{lab.vip}/api/users?limit=1"


def test_lb_health_path_is_not_redirected(lab: Lab) -> None:
    assert plain_http(lab.vip, "/lb-health").status == 200


def test_https_serves_the_app_through_every_web_node_with_hsts(lab: Lab) -> None:
    client = Client(lab)
    answers = [client.request("GET", "/healthz") for _request in range(40)]
    assert all(answer.ok for answer in answers), [a.error or a.status for a in answers if not a.ok]
    assert {a.headers["x-served-by"] for a in answers} == set(lab.groups["webservers"])
    assert answers[0].headers["strict-transport-security"] == "max-age=63072000"


def write_static_file(lab: Lab, static_root: str, name: str, body: str) -> None:
    for host in lab.groups["webservers"]:
        lab.exec(host, "sh", "-c", f"mkdir -p {static_root} && printf %s '{body}' > {static_root}/{name}")


def test_static_files_are_served_from_the_lb_cache_and_the_app_never_is(lab: Lab) -> None:
    static_root = lab.static_root()
    name = f"cache-test-{time.time_ns()}.txt"
    client = Client(lab)
    try:
        write_static_file(lab, static_root, name, "first")
        first = client.request("GET", f"/static/{name}")
        assert first.status == 200 and first.body == b"first", first
        write_static_file(lab, static_root, name, "second")
        cached = client.request("GET", f"/static/{name}")
        # Still the first version, from the LB's memory (HAProxy adds Age).
        assert cached.status == 200 and cached.body == b"first", cached
        assert "age" in cached.headers, cached.headers
        fresh = client.request("GET", f"/static/{name}", headers={"Cache-Control": "no-cache"})
        assert fresh.status == 200 and fresh.body == b"second", fresh
        for _request in range(2):
            app = client.request("GET", "/api/users?limit=1")
            assert app.ok and "age" not in app.headers, app.headers
    finally:
        client.close()
        for host in lab.groups["webservers"]:
            lab.exec(host, "rm", "-f", f"{static_root}/{name}", check=False)


def test_only_tls_12_and_13_are_accepted(lab: Lab) -> None:
    for version, accepted in (("TLSv1_1", False), ("TLSv1_2", True), ("TLSv1_3", True)):
        context = lab.tls_context()
        if version == "TLSv1_1":
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = getattr(ssl.TLSVersion, version)
        try:
            with socket.create_connection((lab.vip, 443), timeout=5) as raw:
                with context.wrap_socket(raw, server_hostname=lab.vip):
                    handshake = True
        except (ssl.SSLError, OSError):
            handshake = False
        assert handshake == accepted, f"{version}: handshake {handshake}"


def stats_status(lab: Lab, url: str, auth=None) -> int:
    """Status of a stats page as the monitoring host sees it (the firewall opens the
    stats port to the monitoring hosts only); from here without a monitoring group."""
    monitors = lab.groups.get("monitoring") or []
    if not monitors:
        return urlopen_status(url, auth)
    command = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"]
    if auth:
        command += ["-u", f"{auth[0]}:{auth[1]}"]
    return int(lab.exec(monitors[0], *command, url, check=False).stdout or 0)


def test_stats_and_metrics_are_internal_and_behind_auth(lab: Lab) -> None:
    lb = lab.groups["loadbalancers"][0]
    password = lab.render("haproxy_stats_password", host=lb)
    stats = f"http://{lab.address(lb)}:8404"
    assert stats_status(lab, f"{stats}/metrics") == 401
    assert stats_status(lab, f"{stats}/metrics", ("stats", password)) == 200
    assert stats_status(lab, f"{stats}/stats", ("stats", password)) == 200
    with pytest.raises(OSError):
        socket.create_connection((lab.vip, 8404), timeout=2).close()
    assert Client(lab).request("GET", "/metrics").headers.get("x-served-by"), "/metrics on :443 must go to the app"


def test_reload_under_load_fails_no_request(lab: Lab) -> None:
    lab.wait_until_settled()
    holder = lab.preferred_lb()
    with TrafficLoop(lab, post_every=0, path="/healthz") as traffic:
        for _reload in range(3):
            time.sleep(1)
            lab.exec(holder, "systemctl", "reload", "haproxy")
        time.sleep(1)
    failures = traffic.non_2xx + traffic.socket_errors
    assert not failures, f"{len(failures)} failed requests across reloads, first: {failures[:3]}"
    assert traffic.ok > 100


def test_weights_split_traffic_and_change_at_runtime_without_reload(lab: Lab) -> None:
    webs = lab.groups["webservers"]
    weights = {host: int(lab.hostvars[host]["haproxy_backend_weight"]) for host in webs}
    total_weight = sum(weights.values())
    assert_split(served_by_counts(lab, SPLIT_REQUESTS), {h: w / total_weight for h, w in weights.items()})

    lbs = lab.groups["loadbalancers"]
    before = {lb: (haproxy_master_pid(lab, lb), haproxy_reloads(lab, lb)) for lb in lbs}
    equal = max(weights.values())
    try:
        for host in webs:
            set_weight(lab, host, str(equal))
        assert {lb: (haproxy_master_pid(lab, lb), haproxy_reloads(lab, lb)) for lb in lbs} == before, "haproxy reloaded"
        assert_split(served_by_counts(lab, SPLIT_REQUESTS), {h: 1 / len(webs) for h in webs})

        for lb in lbs:
            lab.exec(lb, "systemctl", "reload", "haproxy")
        time.sleep(1)
        assert all(haproxy_reloads(lab, lb) != before[lb][1] for lb in lbs), "the reload did not happen"
        assert_split(served_by_counts(lab, SPLIT_REQUESTS), {h: 1 / len(webs) for h in webs})
    finally:
        for host in webs:
            set_weight(lab, host, "inventory")


@pytest.mark.parametrize("break_it", ["stop haproxy", "stop keepalived", "kill the container"])
def test_vip_moves_when_the_holder_breaks(lab: Lab, break_it: str) -> None:
    lab.wait_until_settled()
    holder = lab.wait_for_single_holder()
    try:
        if break_it == "stop haproxy":
            lab.exec(holder, "systemctl", "stop", "haproxy")
        elif break_it == "stop keepalived":
            lab.exec(holder, "systemctl", "stop", "keepalived")
        else:
            lab.engine_cmd("kill", lab.container(holder))
        new_holder = lab.wait_for_single_holder(timeout=10, not_on=holder)
        assert new_holder != holder
        assert Client(lab).request("GET", "/healthz").ok
    finally:
        lab.restore()
        lab.exec(holder, "systemctl", "start", "haproxy", "keepalived")
        lab.wait_until_settled()
        lab.wait_until_all_backends_up()


def test_killing_a_web_node_fails_no_get_request(lab: Lab) -> None:
    lab.wait_until_settled()
    victim = lab.groups["webservers"][-1]
    try:
        with TrafficLoop(lab, post_every=0, path="/healthz") as traffic:
            time.sleep(2)
            lab.engine_cmd("kill", lab.container(victim))
            time.sleep(6)
    finally:
        lab.restore()
        lab.wait_until_all_backends_up()
    failures = traffic.non_2xx + traffic.socket_errors
    assert not failures, f"{len(failures)} failed GETs, first: {failures[:3]}"
    assert traffic.served_by[victim] > 0 and sum(traffic.served_by.values()) > 200, traffic.served_by
