#!/usr/bin/env bash
# Print where the demo answers and a short status of the lab.
set -euo pipefail
inventory=${1:-inventories/lab}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/.venv/bin
vip=$("$bin/ansible" localhost -i "$inventory" -o -m ansible.builtin.debug -a 'msg={{ webstack_vip }}' 2>/dev/null \
      | sed -n 's/.*"msg": "\([0-9.]*\)".*/\1/p')
echo
echo "== nospof.webstack demo =="
"$bin/python" "$repo/scripts/lab/lab.py" status --inventory "$inventory" || true
echo
if [[ -n $vip ]]; then
  code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 3 "https://$vip/" || true)
  echo "Open: https://$vip/   (HTTP $code from this host)"
fi
echo "Status of every tier: ansible-playbook playbooks/status.yml -i $inventory (when available)"
echo "Remove the lab: make demo-down"
