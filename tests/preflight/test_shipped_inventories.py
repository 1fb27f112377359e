"""The inventories the project ships pass preflight, and vaulted secrets stay hidden."""

from __future__ import annotations

import os
import subprocess

from preflight_helpers import ANSIBLE_PLAYBOOK, REPO_ROOT

EXAMPLE_VAULT_PASSWORD = "nospof-example"
EXAMPLE_SECRETS = (
    "example-repl-Zr8vQ2mN",
    "example-app-Kc4tW7pL",
    "example-mon-Hy3sB9xD",
    "example-stats-Pq6fJ1nR",
)


def run_preflight(inventory: str, *extra: str) -> subprocess.CompletedProcess:
    """Run the preflight playbook (it never connects to a host) on a shipped inventory."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", inventory, "playbooks/preflight.yml", *extra],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def test_lab_inventory_passes_preflight() -> None:
    result = run_preflight("inventories/lab")
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_inventory_passes_preflight_with_its_vault_password(tmp_path) -> None:
    password_file = tmp_path / "vault-pass"
    password_file.write_text(EXAMPLE_VAULT_PASSWORD + "\n")
    result = run_preflight("inventories/example", "-v", "--vault-password-file", str(password_file))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for secret in EXAMPLE_SECRETS:
        assert secret not in output


def test_example_secrets_are_encrypted_at_rest() -> None:
    vault_file = REPO_ROOT / "inventories/example/group_vars/all/vault.yml"
    text = vault_file.read_text()
    assert text.startswith("$ANSIBLE_VAULT;1.1;AES256")
    for secret in EXAMPLE_SECRETS:
        assert secret not in text


def test_example_inventory_without_vault_password_fails() -> None:
    result = run_preflight("inventories/example")
    assert result.returncode != 0
    assert "vault" in (result.stdout + result.stderr).lower()
