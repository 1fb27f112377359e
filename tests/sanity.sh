#!/usr/bin/env bash
# ansible-test needs the collection at .../ansible_collections/nospof/webstack,
# so sanity runs on a copy of the tracked and new files laid out that way.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
sanity_venv=$repo/.venv-sanity
core=$(grep -E '^ansible-core==' "$repo/requirements.txt")
if [[ ! -x $sanity_venv/bin/ansible-test ]] || ! "$sanity_venv/bin/pip" freeze 2>/dev/null | grep -qx "$core"; then
  python3 -m venv "$sanity_venv"
  "$sanity_venv/bin/pip" install -q --disable-pip-version-check "$core"
fi
# Pre-seed ansible-test's pip bootstrap cache with the offline stand-in.
pip_bootstrap_version=$(sed -n "s/^ *pip='\([0-9.]*\)',$/\1/p" \
  "$sanity_venv"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -1)
pip_bootstrap_version=${pip_bootstrap_version:-24.2}
bootstrap_cache=~/.ansible/test/cache/get_pip_${pip_bootstrap_version//./_}.py
if ! cmp -s "$repo/tests/ansible_test_get_pip.py" "$bootstrap_cache"; then
  install -D -m 0644 "$repo/tests/ansible_test_get_pip.py" "$bootstrap_cache"
fi
work=$(mktemp -d /tmp/nospof-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/nospof/webstack
mkdir -p "$dest"
rsync -a --exclude .git --exclude .venv --exclude .venv-sanity --exclude .cache --exclude .lab --exclude collections \
  --exclude tests/output --exclude '*.tar.gz' --exclude __pycache__ --exclude .pytest_cache \
  --exclude .ansible "$repo/" "$dest/"
cd "$dest"
# ansible-test installs its pinned checkers (--requirements) into a venv kept
# apart from the project one, so their pins never meet ours. Its own --venv
# mode needs a download from ci-files.testing.ansible.com, which is unreachable.
"$sanity_venv/bin/ansible-test" sanity --requirements --python 3.11 --color no --truncate 0 "$@"
