"""Promtool and amtool from Debian's packages, and the monitoring roles' templates rendered for an inventory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
RENDER_PLAYBOOK = Path(__file__).resolve().parent / "render.yml"
LAB_INVENTORY = REPO_ROOT / "inventories" / "lab"
# Downloaded .deb files are kept here between runs; they are only unpacked, never installed.
DEB_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nospof-webstack" / "monitoring-debs"
# promtool, amtool and the blackbox exporter (for --config.check), and the package of each.
TOOL_PACKAGES = {
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
}
# The monitoring host the contract adds to the lab.
MONITORING_HOST = {"mon1": {"ansible_host": "10.89.20.41"}}
# Short intervals, as the lab sets them.
LAB_SHORT_INTERVALS = {
    "monitoring_scrape_interval": "5s",
    "monitoring_alert_instance_down_for": "15s",
    "monitoring_alert_backend_down_for": "10s",
    "monitoring_alert_vip_for": "10s",
    "monitoring_alert_replication_stopped_for": "10s",
    "monitoring_alert_replication_lag_for": "10s",
    "monitoring_alert_semi_sync_for": "10s",
    "monitoring_alert_tls_expiry_for": "5s",
    "monitoring_alert_probe_failed_for": "10s",
}


class ToolsUnavailable(Exception):
    """The Debian packages cannot be downloaded or unpacked here."""


def cached_deb(package: str) -> Path | None:
    """The newest downloaded .deb of package in the cache, if any."""
    debs = sorted(DEB_CACHE.glob(f"{package}_*.deb"), key=lambda deb: deb.stat().st_mtime)
    return debs[-1] if debs else None


def unpack_tools(destination: Path) -> dict[str, Path]:
    """Download (once) and unpack the packages; return each tool's path. Nothing is installed."""
    for program in ("apt-get", "dpkg-deb"):
        if shutil.which(program) is None:
            raise ToolsUnavailable(f"{program} is not available (not a Debian controller)")
    packages = sorted(set(TOOL_PACKAGES.values()))
    missing = [package for package in packages if cached_deb(package) is None]
    if missing:
        DEB_CACHE.mkdir(parents=True, exist_ok=True)
        try:
            download = subprocess.run(["apt-get", "download", *missing], cwd=DEB_CACHE, capture_output=True,
                                      text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired as error:
            raise ToolsUnavailable(f"apt-get download {' '.join(missing)} timed out") from error
        if download.returncode != 0 or any(cached_deb(package) is None for package in missing):
            raise ToolsUnavailable(f"apt-get download {' '.join(missing)} failed: {download.stderr.strip()[-500:]}")
    for package in packages:
        subprocess.run(["dpkg-deb", "-x", str(cached_deb(package)), str(destination)], check=True)
    return {tool: destination / "usr" / "bin" / tool for tool in TOOL_PACKAGES}


@dataclass
class Rendered:
    """The templates of both roles, rendered for the lab inventory plus a monitoring host."""

    root: Path
    extra_vars: dict[str, Any]

    @property
    def config_dir(self) -> Path:
        return self.root / "etc" / "prometheus"

    @property
    def prometheus_config(self) -> Path:
        return self.config_dir / "prometheus.yml"

    @property
    def rules(self) -> Path:
        return self.config_dir / "rules" / "nospof-webstack.rules.yml"

    @property
    def rule_tests(self) -> Path:
        return self.config_dir / "nospof-tests" / "nospof-webstack.alerts_test.yml"

    @property
    def alertmanager_config(self) -> Path:
        return self.config_dir / "alertmanager.yml"

    @property
    def blackbox_config(self) -> Path:
        return self.config_dir / "blackbox.yml"

    def monitoring_file(self, name: str, host: str = "mon1") -> Path:
        """A template of the monitoring role that is not a configuration file, e.g. prometheus.default."""
        return self.root / "monitoring" / host / name

    def exporters_file(self, host: str, name: str) -> Path:
        return self.root / "exporters" / host / name

    def load(self, path: Path) -> Any:
        return yaml.safe_load(path.read_text())


def role_defaults() -> dict[str, Any]:
    """Both roles' defaults, which the test inventory gives the lowest precedence (all:vars of an inventory file)."""
    defaults: dict[str, Any] = {}
    for role in ("monitoring", "exporters"):
        defaults.update(yaml.safe_load((REPO_ROOT / "roles" / role / "defaults" / "main.yml").read_text()))
    return defaults


def render_templates(root: Path, ca_file: Path, overrides: dict[str, Any] | None = None) -> Rendered:
    """Render both roles' templates into root with ansible-playbook (connection local) and return where."""
    inventory = root / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "vars": role_defaults(),
        "children": {"monitoring": {"hosts": MONITORING_HOST}},
    }}))
    extra_vars = {
        "render_output_dir": str(root),
        "monitoring_prometheus_config_dir": str(root / "etc" / "prometheus"),
        "monitoring_blackbox_ca_file": str(ca_file),
        "ansible_python_interpreter": sys.executable,
        **(overrides or {}),
    }
    extra_vars_file = root / "extra-vars.json"
    extra_vars_file.write_text(json.dumps(extra_vars))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FACT_CACHING="memory", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), str(RENDER_PLAYBOOK), "-i", str(inventory), "-i", str(LAB_INVENTORY),
         "-e", f"@{extra_vars_file}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    # The json callback's document; other callbacks may print around it.
    start = 0 if result.stdout.startswith("{") else result.stdout.index("\n{") + 1
    document = json.JSONDecoder().raw_decode(result.stdout[start:])[0]
    for play in document["plays"]:
        for task in play["tasks"]:
            for host_result in task["hosts"].values():
                for item in host_result["results"]:
                    destination = Path(item["msg"]["dest"])
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    destination.write_text(item["msg"]["content"])
    # What the role writes besides the templates: the HAProxy password file and the CA.
    config_dir = Path(extra_vars["monitoring_prometheus_config_dir"])
    (config_dir / "haproxy-stats.password").write_text("not-the-real-password")
    shutil.copyfile(ca_file, config_dir / "webstack-ca.crt")
    return Rendered(root, extra_vars)


def run(command: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its output as text."""
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=60,
                          check=False, **kwargs)
