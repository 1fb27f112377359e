#!/usr/bin/env bash
# Build the lab's base image from Debian with debootstrap, then import it.
# Usage: build-image.sh [bookworm|trixie]   (no registry is needed)
set -euo pipefail
release=${1:-bookworm}
engine=${NOSPOF_ENGINE:-podman}
image=localhost/nospof-debian:$release
mirror=http://deb.debian.org/debian
security=http://deb.debian.org/debian-security
acng=http://127.0.0.1:3142

case $release in bookworm|trixie) ;; *) echo "unsupported release: $release" >&2; exit 2 ;; esac

# The image is labelled with a hash of this script: a changed recipe rebuilds it.
recipe=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
built=$("$engine" image inspect --format '{{ index .Labels "nospof.recipe" }}' "$image" 2>/dev/null || true)
if [[ $built == "$recipe" && ${NOSPOF_REBUILD:-0} != 1 ]]; then
  echo "[build-image] $image is up to date (recipe $recipe)"; exit 0
fi

fetch_mirror=$mirror
if curl -s -o /dev/null --max-time 2 "$acng/acng-report.html"; then
  fetch_mirror="$acng/deb.debian.org/debian"
fi

root=$(mktemp -d /var/tmp/nospof-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
packages=python3,python3-apt,systemd,systemd-sysv,dbus,iproute2,procps,ca-certificates,openssh-server,curl
echo "[build-image] debootstrap $release from $fetch_mirror"
debootstrap --variant=minbase --include="$packages" "$release" "$root" "$fetch_mirror" >/dev/null

cat > "$root/etc/apt/sources.list" <<SOURCES
deb $mirror $release main
deb $mirror $release-updates main
deb $security $release-security main
SOURCES
# A fresh install of Debian takes the release's updates and security fixes, so
# the image does too; otherwise the first converge upgrades them on every host.
proxy=()
[[ $fetch_mirror == "$mirror" ]] || proxy=(-o "Acquire::http::Proxy=$acng")
mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true; rm -rf "$root"' EXIT
echo "[build-image] applying $release's updates"
chroot "$root" apt-get "${proxy[@]}" -o APT::Sandbox::User=root -qq update
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get "${proxy[@]}" -o APT::Sandbox::User=root -qq -y \
  -o Dpkg::Options::=--force-confold upgrade >/dev/null
chroot "$root" apt-get clean
umount "$root/proc"
rm -f "$root"/etc/ssh/ssh_host_*
cat > "$root/etc/systemd/system/ssh-host-keys.service" <<'UNIT'
[Unit]
Description=Generate this host's own SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/ssh-host-keys.service "$root/etc/systemd/system/multi-user.target.wants/ssh-host-keys.service"
# Units that only make sense on real hardware or a console.
for unit in getty@tty1.service console-getty.service systemd-remount-fs.service \
            systemd-udevd.service systemd-modules-load.service sys-kernel-config.mount \
            sys-kernel-debug.mount sys-kernel-tracing.mount; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
install -d -m 0700 "$root/root/.ssh"
: > "$root/etc/machine-id"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# Empty package lists must look stale, so the first converge refreshes them.
touch -d @0 "$root/var/lib/apt/lists"

echo "[build-image] importing $image"
tar -C "$root" -c . | "$engine" import --change 'CMD ["/sbin/init"]' --change "LABEL nospof.recipe=$recipe" - "$image" >/dev/null 2>&1
echo "[build-image] built $image"
