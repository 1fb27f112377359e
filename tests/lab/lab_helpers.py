"""Drive the container lab from the controller: inventory, containers, VIP, HTTP."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def container_engine() -> str:
    """The engine the lab was created with (scripts/setup-host.sh records it)."""
    recorded = REPO_ROOT / ".lab/engine"
    if os.environ.get("NOSPOF_ENGINE"):
        return os.environ["NOSPOF_ENGINE"]
    return recorded.read_text().strip() if recorded.exists() else "podman"


def publish_report(report: dict, output: Optional[str]) -> None:
    """Print a benchmark's JSON report, and keep a copy in `output` when one is given."""
    text = json.dumps(report, indent=2)
    print(text)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text + "\n")


@dataclass
class Response:
    """One HTTP answer, or the error that replaced it."""

    status: int
    headers: dict
    body: bytes
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status < 300

    def json(self):
        return json.loads(self.body)


def plain_ansible_env(**extra: str) -> dict:
    """The environment for an ansible command whose output is parsed: the
    checkout's ansible.cfg and no colour, even under make, which forces it."""
    return {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", **extra}


class Lab:
    """The lab an inventory describes (the same one scripts/lab/lab.py builds)."""

    def __init__(self, inventory: str) -> None:
        listing = json.loads(subprocess.run(
            [str(VENV_BIN / "ansible-inventory"), "-i", inventory, "--list"],
            check=True, capture_output=True, text=True, cwd=REPO_ROOT,
            env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")}).stdout)
        self.inventory = inventory
        self.hostvars = listing["_meta"]["hostvars"]
        self.groups = {name: self._members(listing, name) for name in listing if name != "_meta"}
        sample = next(iter(self.hostvars.values()))
        self.name = sample.get("lab_name", "nospof")
        network = sample["webstack_lb_network"]
        # webstack_vip is templated in group_vars; render it the way the roles do.
        self.vip = self.render("webstack_vip")
        self.network = network
        self.engine = container_engine()

    @classmethod
    def _members(cls, listing: dict, group: str) -> list:
        """Hosts of a group, its children's included, in inventory order."""
        members = list(listing.get(group, {}).get("hosts", []))
        for child in listing.get(group, {}).get("children", []):
            members += [host for host in cls._members(listing, child) if host not in members]
        return members

    def render(self, expression: str, host: str = "localhost") -> str:
        """Evaluate a variable or Jinja expression with the lab's inventory."""
        result = subprocess.run(
            [str(VENV_BIN / "ansible"), host, "-i", self.inventory, "-o", "-m", "ansible.builtin.debug",
             "-a", f"msg={{{{ {expression} }}}}"],
            check=True, capture_output=True, text=True, cwd=REPO_ROOT, env=plain_ansible_env())
        # The one-line result; other callbacks (profile_tasks under Molecule) may print more lines.
        # Read the first JSON object only: a warning can end up on the same line after it.
        line = next(line for line in result.stdout.splitlines() if " | SUCCESS => " in line)
        return json.JSONDecoder().raw_decode(line.split(" => ", 1)[1])[0]["msg"]

    def role_setting(self, role: str, name: str):
        """A role variable as the lab's inventory sets it, or else as the role's defaults file does."""
        default = yaml.safe_load((REPO_ROOT / "roles" / role / "defaults" / "main.yml").read_text())[name]
        return self.render(f"{name} | default({json.dumps(default)})")

    def static_root(self) -> str:
        """The directory nginx serves at /static/ on the web nodes."""
        return self.role_setting("nginx", "nginx_static_root")

    def address(self, host: str) -> str:
        hostvars = self.hostvars[host]
        return hostvars.get("webstack_address", hostvars["ansible_host"])

    def container(self, host: str) -> str:
        return f"{self.name}-{host}"

    def live_replicas(self) -> list:
        """The database hosts whose server is read-only now: after a switchover
        or a failover (make bench runs one), not the inventory's db_replicas."""
        return [host for host in self.groups["databases"]
                if self.exec(host, "mariadb", "-N", "-B", "-e", "SELECT @@read_only", check=False)
                .stdout.strip() == "1"]

    def live_primary(self) -> str:
        """The one database host whose server takes writes now."""
        replicas = self.live_replicas()
        writable = [host for host in self.groups["databases"] if host not in replicas]
        assert len(writable) == 1, f"expected one writable database server, found {writable}"
        return writable[0]

    def engine_cmd(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([self.engine, *args], check=check, capture_output=True, text=True, timeout=timeout)

    def exec(self, host: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.engine_cmd("exec", self.container(host), *command, check=check)

    def pid(self, host: str) -> int:
        return int(self.engine_cmd("inspect", "--format", "{{.State.Pid}}", self.container(host)).stdout)

    def host_pids(self, host: str, command: str) -> list:
        """Host-side PIDs of the processes named `command` inside the host's container."""
        namespace = os.readlink(f"/proc/{self.pid(host)}/ns/pid")
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "comm").read_text().strip() == command and os.readlink(entry / "ns/pid") == namespace:
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def holds_vip(self, host: str) -> bool:
        """Whether the VIP is on the host's interfaces, read in its network namespace (fast)."""
        try:
            pid = self.pid(host)
        except subprocess.CalledProcessError:
            return False
        if pid <= 0:
            return False
        out = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-4", "-o", "addr", "show"],
                             capture_output=True, text=True, check=False).stdout
        return f" {self.vip}/" in out

    def vip_holders(self) -> list:
        return [host for host in self.groups["loadbalancers"] if self.holds_vip(host)]

    def wait_for_single_holder(self, timeout: float = 20, not_on: Optional[str] = None) -> str:
        """Wait until exactly one LB (other than not_on) holds the VIP, and return it."""
        deadline = time.monotonic() + timeout
        holders: list = []
        while time.monotonic() < deadline:
            holders = self.vip_holders()
            if len(holders) == 1 and holders[0] != not_on:
                return holders[0]
            time.sleep(0.05)
        raise AssertionError(f"VIP {self.vip} holders after {timeout}s: {holders} (wanted one, not {not_on})")

    def preferred_lb(self) -> str:
        """The LB with the highest keepalived priority: it holds the VIP when all is well."""
        return max(self.groups["loadbalancers"], key=lambda host: int(self.hostvars[host]["keepalived_priority"]))

    def wait_until_settled(self, timeout: float = 60, steady: float = 3) -> None:
        """Wait until the preferred LB alone has held the VIP for `steady` seconds."""
        deadline = time.monotonic() + timeout
        since = None
        while time.monotonic() < deadline:
            if self.vip_holders() == [self.preferred_lb()]:
                since = since or time.monotonic()
                if time.monotonic() - since >= steady:
                    return
            else:
                since = None
            time.sleep(0.1)
        raise AssertionError(f"the VIP did not settle on {self.preferred_lb()} within {timeout}s: {self.vip_holders()}")

    def backend_states(self, lb: str) -> dict:
        """State of every web server as one LB's HAProxy sees it (show stat)."""
        stat = self.exec(lb, "sh", "-c", "echo 'show stat' | socat stdio unix-connect:/run/haproxy/admin.sock",
                         check=False).stdout
        return {fields[1]: fields[17] for fields in (line.split(",") for line in stat.splitlines())
                if len(fields) > 17 and fields[0] == "web_servers" and fields[1] not in ("FRONTEND", "BACKEND")}

    def wait_until_all_backends_up(self, timeout: float = 90) -> None:
        """Wait until every LB sees every web server UP (after a node came back)."""
        deadline = time.monotonic() + timeout
        states: dict = {}
        while time.monotonic() < deadline:
            states = {lb: self.backend_states(lb) for lb in self.groups["loadbalancers"]}
            if all(set(seen.values()) == {"UP"} and len(seen) == len(self.groups["webservers"])
                   for seen in states.values()):
                return
            time.sleep(0.5)
        raise AssertionError(f"web servers not all UP after {timeout}s: {states}")

    def restore(self) -> None:
        """Start any stopped lab container again (services come back enabled)."""
        subprocess.run([sys.executable, str(REPO_ROOT / "scripts/lab/lab.py"), "up", "--inventory", self.inventory],
                       check=True, capture_output=True, text=True)

    def ansible_playbook(self, playbook: str, *args: str, env: Optional[dict] = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", self.inventory, playbook, *args],
            capture_output=True, text=True, cwd=REPO_ROOT, check=False, env=plain_ansible_env(**(env or {})))

    def tls_context(self) -> ssl.SSLContext:
        """Trust the lab CA the haproxy role generated for this VIP."""
        ca = Path.home() / ".local/share/nospof-webstack/pki" / self.vip / "ca.crt"
        context = ssl.create_default_context(cafile=str(ca))
        return context


class Client:
    """A keep-alive HTTPS client to the VIP that turns every failure into a Response."""

    IDEMPOTENT = ("GET", "HEAD")

    def __init__(self, lab: Lab, timeout: float = 5) -> None:
        self.lab = lab
        self.timeout = timeout
        self.context = lab.tls_context()
        self.connection: Optional[http.client.HTTPSConnection] = None
        self.keepalive_retries = 0

    def request(self, method: str, path: str, body: Optional[dict] = None,
                headers: Optional[dict] = None) -> Response:
        """Send one request. Like browsers and curl (RFC 9112, 9.3.1), an idempotent
        request that finds its reused keep-alive connection closed before any answer
        is sent again once on a new connection; keepalive_retries counts those."""
        reused = self.connection is not None
        answer = self._send(method, path, body, headers or {})
        if reused and method in self.IDEMPOTENT and answer.error and answer.error.startswith(
                ("RemoteDisconnected", "ConnectionResetError", "BrokenPipeError")):
            self.keepalive_retries += 1
            answer = self._send(method, path, body, headers or {})
        return answer

    def _send(self, method: str, path: str, body: Optional[dict], extra_headers: dict) -> Response:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        headers.update(extra_headers)
        try:
            if self.connection is None:
                self.connection = http.client.HTTPSConnection(
                    self.lab.vip, 443, timeout=self.timeout, context=self.context)
            self.connection.request(method, path, body=payload, headers=headers)
            answer = self.connection.getresponse()
            data = answer.read()
            return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)
        except (OSError, http.client.HTTPException) as error:
            self.close()
            return Response(0, {}, b"", error=f"{type(error).__name__}: {error}")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def plain_http(host: str, path: str, timeout: float = 5) -> Response:
    """One request over plain HTTP on port 80 (no redirect following)."""
    connection = http.client.HTTPConnection(host, 80, timeout=timeout)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())
    finally:
        connection.close()


class TrafficLoop:
    """Client threads sending a steady mix of GET and POST through the VIP, counting outcomes
    and which web node answered."""

    def __init__(self, lab: Lab, clients: int = 4, post_every: int = 4, path: str = "/api/users?limit=5") -> None:
        """Every post_every-th request is a POST (0: GETs only); GETs ask for path."""
        self.lab = lab
        self.post_every = post_every
        self.path = path
        self.served_by: Counter = Counter()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.non_2xx: list = []
        self.socket_errors: list = []
        self.keepalive_retries = 0
        self.threads = [threading.Thread(target=self.loop, args=(index,), daemon=True) for index in range(clients)]
        self.started = self.ended = 0.0

    def __enter__(self) -> "TrafficLoop":
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.ended = time.monotonic()

    def loop(self, index: int) -> None:
        client = Client(self.lab, timeout=10)
        sent = 0
        while not self.stop.is_set():
            sent += 1
            if self.post_every and sent % self.post_every == 0:
                answer = client.request("POST", "/api/users", {"name": f"load-{index}-{sent}"})
            else:
                answer = client.request("GET", self.path)
            with self.lock:
                if answer.error:
                    self.socket_errors.append(answer.error)
                elif answer.ok:
                    self.ok += 1
                    self.served_by[answer.headers.get("x-served-by")] += 1
                else:
                    self.non_2xx.append((answer.status, answer.body[:200]))
        with self.lock:
            self.keepalive_retries += client.keepalive_retries
        client.close()

    @property
    def requests_per_second(self) -> float:
        elapsed = (self.ended or time.monotonic()) - self.started
        return round((self.ok + len(self.non_2xx) + len(self.socket_errors)) / elapsed, 1) if elapsed else 0.0
