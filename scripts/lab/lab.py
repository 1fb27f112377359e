"""Create, inspect and remove the local container lab described by an inventory.

The inventory is the single source of truth: every host with an `ansible_host`
becomes a Debian systemd container with that address on one container network.
Lab-wide settings come from the inventory's `all` vars:
  lab_name     container/network name prefix (default: nospof)
  lab_network  the network's CIDR, e.g. 10.89.20.0/24
  lab_release  Debian release of the image (bookworm or trixie)
A container gets a memory limit by its groups (LAB_MEMORY_MB), or a host's
`lab_memory_mb` var, so the roles size their services for the container's own
memory (read from its cgroup), as on a real host, not the whole machine's.
A new limit takes effect when the container is created again.
"""
import argparse
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEY_DIR = Path(os.environ.get("NOSPOF_LAB_KEY_DIR", Path.home() / ".local/share/nospof-lab"))
KEY = KEY_DIR / "id_ed25519"
APT_CACHE_PORT = 3142
# MiB of memory per inventory group (podman/docker --memory). A host in several
# groups gets the largest; a host in none (monitoring, clients) gets no limit.
LAB_MEMORY_MB = {"loadbalancers": 512, "webservers": 768, "databases": 1024}


def log(message: str) -> None:
    print(f"[lab] {message}", flush=True)


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, check=False, text=True, capture_output=True)
    if check and result.returncode != 0:
        raise SystemExit(f"[lab] command failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr.strip()}")
    return result


def container_engine() -> str:
    chosen = os.environ.get("NOSPOF_ENGINE")
    state = REPO / ".lab/engine"
    if not chosen and state.exists():
        chosen = state.read_text().strip()
    if not chosen:
        chosen = "podman" if shutil.which("podman") else "docker"
    return chosen


def ansible_tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    venv = REPO / ".venv/bin" / name
    for candidate in (beside, venv):
        if candidate.exists():
            return str(candidate)
    return name


def group_members(listing: dict, group: str) -> set:
    """Hosts of an `ansible-inventory --list` group, its child groups' included."""
    entry = listing.get(group, {})
    members = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        members |= group_members(listing, child)
    return members


def memory_limit_mb(listing: dict, host: str) -> int | None:
    """MiB a host's container may use: its lab_memory_mb, else the largest of its groups' (None: no limit)."""
    own = listing["_meta"]["hostvars"][host].get("lab_memory_mb")
    if own:
        return int(own)
    return max((mb for group, mb in LAB_MEMORY_MB.items() if host in group_members(listing, group)), default=None)


class Lab:
    """One lab: a network plus one container per inventory host."""

    def __init__(self, inventory: str) -> None:
        listing = json.loads(run(ansible_tool("ansible-inventory"), "-i", inventory, "--list").stdout)
        hostvars = listing.get("_meta", {}).get("hostvars", {})
        self.hosts = {name: hv["ansible_host"] for name, hv in sorted(hostvars.items())
                      if "ansible_host" in hv}
        if not self.hosts:
            raise SystemExit(f"no host with ansible_host in inventory {inventory}")
        self.memory_mb = {host: memory_limit_mb(listing, host) for host in self.hosts}
        sample = next(iter(hostvars.values()))
        self.name = sample.get("lab_name", "nospof")
        self.network = ipaddress.ip_network(sample.get("lab_network", "10.89.20.0/24"))
        self.release = sample.get("lab_release", "bookworm")
        self.image = f"localhost/nospof-debian:{self.release}"
        self.gateway = str(next(self.network.hosts()))
        self.engine = container_engine()
        for host, address in self.hosts.items():
            if ipaddress.ip_address(address) not in self.network:
                raise SystemExit(f"{host}: ansible_host {address} is outside lab_network {self.network}")

    def container(self, host: str) -> str:
        return f"{self.name}-{host}"

    def engine_run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(self.engine, *args, check=check)

    def container_state(self, host: str) -> str:
        result = self.engine_run("container", "inspect", "--format", "{{.State.Status}}",
                                 self.container(host), check=False)
        return result.stdout.strip() if result.returncode == 0 else "absent"

    def ensure_key(self) -> None:
        if KEY.exists():
            return
        KEY_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nospof-lab", "-f", str(KEY))

    def ensure_image(self) -> None:
        env = dict(os.environ, NOSPOF_ENGINE=self.engine)
        subprocess.run(["bash", str(REPO / "scripts/lab/build-image.sh"), self.release],
                       check=True, env=env)

    def ensure_network(self) -> None:
        exists = self.engine_run("network", "inspect", self.name, check=False).returncode == 0
        if not exists:
            log(f"creating network {self.name} {self.network}")
            self.engine_run("network", "create", "--subnet", str(self.network),
                            "--gateway", self.gateway, self.name)

    def run_args(self, host: str) -> list:
        # A fixed MAC per address: a restarted container keeps it, so its
        # neighbours' ARP caches stay right (a real host keeps its MAC too).
        mac = "02:42:" + ":".join(f"{int(octet):02x}" for octet in self.hosts[host].split("."))
        args = ["run", "-d", "--name", self.container(host), "--hostname", host,
                "--network", self.name, "--ip", self.hosts[host], "--mac-address", mac,
                "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
                "--label", f"nospof.lab={self.name}",
                "-v", f"{KEY}.pub:/root/.ssh/authorized_keys:ro"]
        if self.memory_mb[host]:
            args += ["--memory", f"{self.memory_mb[host]}m"]
        if self.engine == "podman":
            args += ["--systemd", "always"]
            if os.path.ismount("/sys/fs/cgroup/unified"):
                # cgroup v1/v2 hybrid host: systemd needs the v2 hierarchy to track units.
                args += ["-v", "/sys/fs/cgroup/unified:/sys/fs/cgroup/unified:rw"]
        else:
            args += ["--privileged", "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                     "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp"]
        return args + [self.image, "/sbin/init"]

    def apt_cache_reachable(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", APT_CACHE_PORT), timeout=1):
                return True
        except OSError:
            return False

    def configure_apt_proxy(self, host: str) -> None:
        # A request the cache stalls on fails after 30 s (the default is 120 s per
        # read, forever while bytes trickle) and apt tries it again. No HTTP
        # pipelining: one request at a time on each connection to the cache.
        lines = (f'Acquire::http::Proxy "http://{self.gateway}:{APT_CACHE_PORT}";',
                 'Acquire::http::Timeout "30";',
                 'Acquire::http::Pipeline-Depth "0";',
                 'Acquire::Retries "3";')
        self.engine_run("exec", self.container(host), "sh", "-c",
                        "printf '%s\\n' " + " ".join(f"'{line}'" for line in lines)
                        + " > /etc/apt/apt.conf.d/01nospof-lab-cache")

    def configure_lab_dpkg(self, host: str) -> None:
        """Lab hosts are throwaway: dpkg skips fsync, documentation, man pages
        and translations, and man-db's index rebuild; apt skips translations
        and fetches gzip package lists, which unpack in a third less CPU time
        than xz (eight hosts refresh at once on the lab's cores). Real hosts
        keep Debian's defaults."""
        dpkg = ("force-unsafe-io", "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
                "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*",
                "path-exclude=/usr/share/locale/*")
        self.engine_run("exec", self.container(host), "sh", "-c",
                        "printf '%s\\n' " + " ".join(f"'{line}'" for line in dpkg)
                        + " > /etc/dpkg/dpkg.cfg.d/01nospof-lab"
                        + " && printf '%s\\n' 'Acquire::Languages \"none\";' 'Acquire::CompressionTypes::Order:: \"gz\";'"
                        + " > /etc/apt/apt.conf.d/02nospof-lab-lists"
                        + " && rm -f /var/lib/man-db/auto-update")

    def wait_for_ssh(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        pending = dict(self.hosts)
        while pending:
            for host, address in list(pending.items()):
                try:
                    with socket.create_connection((address, 22), timeout=1) as conn:
                        if conn.recv(4).startswith(b"SSH"):
                            del pending[host]
                except OSError:
                    pass
            if pending and time.monotonic() > deadline:
                raise SystemExit(f"sshd did not answer within {timeout:.0f}s on: {', '.join(pending)}")
            if pending:
                time.sleep(0.5)

    def forget_facts(self, host: str) -> None:
        """Drop cached facts of a host whose container is new. ansible-core 2.19
        names a host's file with a schema id before the host (s1_web1), after
        any fact_caching_prefix; older versions use the bare name."""
        cache = Path(os.environ.get("ANSIBLE_CACHE_PLUGIN_CONNECTION", REPO / ".cache/facts"))
        prefix = os.environ.get("ANSIBLE_CACHE_PLUGIN_PREFIX", "")
        cached_name = re.compile(rf"{re.escape(prefix)}(s\d+_)?{re.escape(host)}")
        for path in cache.glob(f"*{host}"):
            if cached_name.fullmatch(path.name):
                path.unlink(missing_ok=True)

    # States `start` accepts; any other but running and absent means the container is stuck.
    STARTABLE_STATES = ("created", "configured", "stopped", "exited")

    def up(self) -> None:
        self.ensure_key()
        self.ensure_image()
        self.ensure_network()
        use_cache = self.apt_cache_reachable()
        for host in self.hosts:
            state = self.container_state(host)
            if state == "running":
                continue
            if state not in ("absent", *self.STARTABLE_STATES):
                # Left half-stopped (a killed engine, a restored machine): start it afresh.
                log(f"removing {self.container(host)} ({state})")
                self.engine_run("rm", "-f", self.container(host))
                state = "absent"
            if state == "absent":
                log(f"starting {self.container(host)} at {self.hosts[host]}")
                self.forget_facts(host)
                self.engine_run(*self.run_args(host))
            else:
                log(f"restarting {self.container(host)} ({state})")
                self.engine_run("start", self.container(host))
            self.configure_lab_dpkg(host)
            if use_cache:
                self.configure_apt_proxy(host)
        self.wait_for_ssh()
        log(f"lab {self.name} is up: {len(self.hosts)} hosts on {self.network}")

    def down(self) -> None:
        for host in self.hosts:
            if self.container_state(host) != "absent":
                log(f"removing {self.container(host)}")
                self.engine_run("rm", "-f", *(["-t", "2"] if self.engine == "podman" else []), self.container(host))
        if self.engine_run("network", "inspect", self.name, check=False).returncode == 0:
            self.engine_run("network", "rm", self.name)
        log(f"lab {self.name} removed")

    def status(self) -> int:
        unhealthy = 0
        for host, address in self.hosts.items():
            state = self.container_state(host)
            unhealthy += state != "running"
            print(f"{host:8} {address:15} {self.container(host):24} {state}")
        return 1 if unhealthy else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("-i", "--inventory", default=str(REPO / "inventories/lab"))
    options = parser.parse_args()
    lab = Lab(options.inventory)
    if options.action == "up":
        lab.up()
    elif options.action == "down":
        lab.down()
    else:
        return lab.status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
