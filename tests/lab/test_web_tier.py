"""Issue 4: the web and app tier through the VIP, rolling deploys and rollback."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time

from lab_helpers import REPO_ROOT, Client, Lab, TrafficLoop

BROKEN_APP = REPO_ROOT / "tests/lab/fixtures/broken_app"
DEMO_APP = REPO_ROOT / "roles/app/files/demo_app"


def replica_addresses(lab: Lab) -> set:
    return {lab.address(host) for host in lab.live_replicas()}


def current_releases(lab: Lab) -> dict:
    return {host: lab.exec(host, "readlink", "/srv/nospof-app/current").stdout.strip().rsplit("/", 1)[-1]
            for host in lab.groups["webservers"]}


def test_every_web_node_serves_the_api_through_the_vip(lab: Lab) -> None:
    lab.wait_until_all_backends_up()
    client = Client(lab)
    served = {client.request("GET", "/api/users?limit=1").headers.get("x-served-by") for _request in range(30)}
    assert served == set(lab.groups["webservers"])


def test_a_user_created_through_the_vip_is_read_from_a_replica_within_2s(lab: Lab) -> None:
    client = Client(lab)
    created = client.request("POST", "/api/users", {"name": "replicated-read", "email": "r@example.com"})
    assert created.status == 201, created.body
    user_id = created.json()["id"]
    deadline = time.monotonic() + 2
    while True:
        answer = client.request("GET", f"/api/users/{user_id}")
        if answer.status == 200 and answer.headers.get("x-db-read-host") in replica_addresses(lab):
            break
        assert time.monotonic() < deadline, (answer.status, answer.headers)
        time.sleep(0.05)
    assert answer.json()["name"] == "replicated-read"


def test_bad_input_gets_a_4xx_with_json(lab: Lab) -> None:
    client = Client(lab)
    for method, path, body in (("POST", "/api/users", {}), ("POST", "/api/users", {"name": "x" * 65}),
                               ("GET", "/api/users/999999999", None), ("GET", "/api/nothing", None)):
        answer = client.request(method, path, body)
        assert 400 <= answer.status < 500, (method, path, answer.status)
        assert "error" in answer.json()


def test_rolling_deploy_and_rollback_under_load_fail_no_request(lab: Lab) -> None:
    before = current_releases(lab)
    release = f"rolling-{int(time.time())}"
    with TrafficLoop(lab) as traffic:
        time.sleep(1)
        deploy = lab.ansible_playbook("playbooks/rolling_deploy.yml", "-e", f"app_release={release}")
        time.sleep(1)
    assert deploy.returncode == 0, deploy.stdout[-3000:]
    assert set(current_releases(lab).values()) == {release}
    assert not traffic.non_2xx and not traffic.socket_errors, (traffic.non_2xx[:3], traffic.socket_errors[:3])
    assert traffic.ok > 100

    with TrafficLoop(lab) as traffic:
        rollback = lab.ansible_playbook("playbooks/rollback.yml")
    assert rollback.returncode == 0, rollback.stdout[-3000:]
    assert current_releases(lab) == before
    assert not traffic.non_2xx and not traffic.socket_errors, (traffic.non_2xx[:3], traffic.socket_errors[:3])


def test_pruning_keeps_the_releases_that_ran_last_so_a_rollback_finds_the_one_before(lab: Lab) -> None:
    """A release made long ago that ran again lately is newest by use, oldest on disk."""
    before = current_releases(lab)
    assert len(set(before.values())) == 1, before
    old_release = next(iter(before.values()))
    stamp = int(time.time())

    def deploy(release: str, keep: int) -> None:
        result = lab.ansible_playbook("playbooks/rolling_deploy.yml", "-e", f"app_release={release}",
                                      "-e", f"app_keep_releases={keep}")
        assert result.returncode == 0, result.stdout[-3000:]
        assert set(current_releases(lab).values()) == {release}

    deploy(f"prune-a-{stamp}", 3)
    deploy(old_release, 3)
    for host in lab.groups["webservers"]:
        lab.exec(host, "touch", "-d", "@0", f"/srv/nospof-app/releases/{old_release}")
    deploy(f"prune-b-{stamp}", 2)
    for host in lab.groups["webservers"]:
        kept = set(lab.exec(host, "ls", "/srv/nospof-app/releases").stdout.split())
        assert kept == {f"prune-b-{stamp}", old_release}, (host, kept)
    rollback = lab.ansible_playbook("playbooks/rollback.yml")
    assert rollback.returncode == 0, rollback.stdout[-3000:]
    assert current_releases(lab) == before


def test_a_release_that_fails_its_health_check_is_rolled_back_and_the_rest_keep_serving(lab: Lab) -> None:
    before = current_releases(lab)
    with TrafficLoop(lab) as traffic:
        deploy = lab.ansible_playbook("playbooks/rolling_deploy.yml", "-e", "app_source_type=directory",
                                      "-e", f"app_source_path={BROKEN_APP}", "-e", "app_health_timeout=10")
    assert deploy.returncode != 0
    assert "failed its health check" in deploy.stdout
    assert current_releases(lab) == before
    assert not traffic.non_2xx and not traffic.socket_errors, (traffic.non_2xx[:3], traffic.socket_errors[:3])
    client = Client(lab)
    assert {client.request("GET", "/healthz").headers.get("x-served-by") for _request in range(30)} == set(
        lab.groups["webservers"])


def test_the_app_deploys_from_an_archive_and_from_git(lab: Lab, tmp_path) -> None:
    """The user's own app arrives as an archive on the controller or a git version."""
    archive = tmp_path / "app.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "--exclude=__pycache__", "-C", str(DEMO_APP), "."], check=True)
    deploy = lab.ansible_playbook("playbooks/rolling_deploy.yml", "-e", "app_source_type=archive",
                                  "-e", f"app_source_path={archive}")
    assert deploy.returncode == 0, deploy.stdout[-3000:]
    checksum = hashlib.sha256(archive.read_bytes()).hexdigest()[:12]
    assert set(current_releases(lab).values()) == {checksum}

    repository = tmp_path / "app.git"
    work = tmp_path / "work"
    shutil.copytree(DEMO_APP, work, ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "app"], check=True)
    subprocess.run([*git, "tag", "v1"], check=True)
    tagged = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    # main moves on past the tag, so the tag is not what the clone's HEAD is.
    (work / "CHANGES").write_text("after v1\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "after v1"], check=True)
    latest = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(repository)], check=True)
    for host in lab.groups["webservers"]:  # the nodes clone it from their own disk
        lab.engine_cmd("exec", lab.container(host), "rm", "-rf", "/srv/app-source.git")
        lab.engine_cmd("cp", str(repository), f"{lab.container(host)}:/srv/app-source.git")
    for version, commit in (("v1", tagged), ("main", latest)):
        deploy = lab.ansible_playbook("playbooks/rolling_deploy.yml", "-e", "app_source_type=git",
                                      "-e", "app_git_repo=/srv/app-source.git", "-e", f"app_git_version={version}")
        assert deploy.returncode == 0, deploy.stdout[-3000:]
        assert set(current_releases(lab).values()) == {commit[:12]}, version

    back = lab.ansible_playbook("site.yml", "--limit", "webservers")
    assert back.returncode == 0, back.stdout[-3000:]
