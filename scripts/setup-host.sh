#!/usr/bin/env bash
# Prepare the controller: apt packages, a working container engine, the apt cache.
# Safe to re-run; leaves a host where podman or docker already works alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive

log() { printf '[setup-host] %s\n' "$*"; }

host_packages=(debootstrap graphviz make openssh-client python3-venv rsync git
               busybox-static apt-cacher-ng curl shellcheck nftables
               # real daemons for the module and app tests on loopback
               mariadb-server mariadb-client haproxy)

engine=${NOSPOF_ENGINE:-}
if [[ -z $engine ]]; then
  if command -v podman >/dev/null; then engine=podman
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker
  else engine=podman
  fi
fi
[[ $engine == podman ]] && host_packages+=(podman runc netavark aardvark-dns iptables)

install_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

probe_image=localhost/nospof-probe:latest

build_probe_image() {
  "$engine" image exists "$probe_image" 2>/dev/null && return 0
  local root; root=$(mktemp -d)
  mkdir -p "$root/bin"
  cp /bin/busybox "$root/bin/busybox"
  tar -C "$root" -c . | "$engine" import - "$probe_image" >/dev/null 2>&1
  rm -rf "$root"
}

probe_container() {
  "$engine" run --rm --network none "$probe_image" /bin/busybox true 2>&1
}

install_runtime_shim() {
  log "containers fail with the stock runtime here; installing the runc shim"
  install -D -m 0755 "$here/lab/runc-norlimits" /usr/local/libexec/nospof/runc-norlimits
  install -d /etc/containers/containers.conf.d
  cat > /etc/containers/containers.conf.d/50-nospof-runtime.conf <<'CONF'
# Installed by nospof.webstack scripts/setup-host.sh: this host cannot set
# rlimits (no CAP_SYS_RESOURCE) and crun fails on its cgroup hybrid, so podman
# runs containers through runc with rlimits removed from the OCI spec.
[engine]
runtime = "runc-norlimits"
runtime_supports_json = ["crun", "runc", "runc-norlimits"]

[engine.runtimes]
runc-norlimits = ["/usr/local/libexec/nospof/runc-norlimits"]
CONF
}

start_apt_cache() {
  # The packaged default backend (ftp.debian.org) may be unreachable; use the
  # mirror this host's own apt uses.
  local backends=/etc/apt-cacher-ng/backends_debian
  if ! grep -qx 'http://deb.debian.org/debian/' "$backends" 2>/dev/null; then
    echo 'http://deb.debian.org/debian/' > "$backends"
    /etc/init.d/apt-cacher-ng stop >/dev/null 2>&1 || true
  fi
  # Release files (InRelease) pass through uncached. Caching them, the cache
  # swaps its stored copy on each refresh, and two hosts refreshing the same
  # one within a second collide ("Failure to move file ... out of the way"):
  # a 503, or an apt-get update left hanging. The packages stay cached.
  local settings=/etc/apt-cacher-ng/zz-nospof-lab.conf
  local wanted='DontCacheRequested: /InRelease$'
  if [[ -d /etc/apt-cacher-ng && "$(cat "$settings" 2>/dev/null)" != "$wanted" ]]; then
    echo "$wanted" > "$settings"
    /etc/init.d/apt-cacher-ng stop >/dev/null 2>&1 || true
  fi
  if curl -s -o /dev/null --max-time 2 http://127.0.0.1:3142/acng-report.html; then return 0; fi
  log "starting apt-cacher-ng"
  if [[ -d /run/systemd/system ]]; then
    systemctl enable --now apt-cacher-ng >/dev/null 2>&1 || true
  else
    /etc/init.d/apt-cacher-ng start >/dev/null 2>&1 || true
  fi
  for _ in $(seq 20); do
    curl -s -o /dev/null --max-time 2 http://127.0.0.1:3142/acng-report.html && return 0
    sleep 0.5
  done
  log "apt-cacher-ng did not start; the lab will use the mirror directly"
}

install_packages "${host_packages[@]}"
build_probe_image
if ! out=$(probe_container); then
  if [[ $engine == podman && ! -f /etc/containers/containers.conf.d/50-nospof-runtime.conf ]]; then
    log "trial container failed: ${out##*$'\n'}"
    install_runtime_shim
    out=$(probe_container) || { log "containers still fail: $out"; exit 1; }
  else
    log "trial container failed: $out"; exit 1
  fi
fi
log "container engine $engine works"
start_apt_cache
state_dir=${NOSPOF_STATE_DIR:-$here/../.lab}
mkdir -p "$state_dir"
echo "$engine" > "$state_dir/engine"
