#!/usr/bin/env bash
# Build the collection tarball, install it into an empty collections path and
# prove that ansible-doc and ansible-playbook nospof.webstack.site can use it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/.venv/bin
work=$(mktemp -d /tmp/nospof-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$bin/ansible-galaxy" collection build "$repo" --output-path "$work/dist" --force
tarball=$(ls "$work"/dist/nospof-webstack-*.tar.gz)
echo "built $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB)"
if tar -tzf "$tarball" | grep -E '^(\.venv|collections|\.git|\.cache)/' ; then
  echo "FAIL: the tarball carries development files" >&2; exit 1
fi

# From here on: an empty directory and no ansible.cfg, so the checkout is not used.
cd "$work"
printf '[defaults]\n' > "$work/ansible.cfg"
export ANSIBLE_CONFIG=$work/ansible.cfg ANSIBLE_COLLECTIONS_PATH=$work/collections ANSIBLE_NOCOLOR=1

# Dependencies come from the ansible package's bundled collections (no Galaxy here).
"$bin/ansible-galaxy" collection install "$tarball" -p "$work/collections" --offline --no-deps
test -f "$work/collections/ansible_collections/nospof/webstack/MANIFEST.json"
listed=$("$bin/ansible-doc" -t role -l nospof.webstack)
echo "$listed"
for role in common preflight haproxy keepalived nginx app mysql_replication; do
  grep -q "nospof.webstack.$role" <<<"$listed" || { echo "FAIL: ansible-doc does not list role $role" >&2; exit 1; }
done
"$bin/ansible-doc" -t role nospof.webstack.common >/dev/null
for module in haproxy_backend mysql_replica; do
  "$bin/ansible-doc" -t module "nospof.webstack.$module" | grep -q "nospof.webstack.$module" \
    || { echo "FAIL: ansible-doc cannot read module $module" >&2; exit 1; }
done
"$bin/ansible-playbook" nospof.webstack.site -i "$repo/inventories/lab" --syntax-check
"$bin/ansible-playbook" nospof.webstack.site -i "$repo/inventories/lab" --list-tasks >/dev/null
# The installed preflight runs for real (it never connects to a host).
"$bin/ansible-playbook" nospof.webstack.preflight -i "$repo/inventories/lab"
echo "build-test: OK"
