#!/usr/bin/env bash
# ansible-test needs the collection under .../ansible_collections/qflow/ops and pip for its per-test venvs.
# Stage the collection content (what galaxy.yml builds; not the lab, the Python package or the lab tests)
# into build/, install the get-pip shim (ansible-test's own download host is not reachable), run sanity.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# Outside the checkout: inside it, ansible-test would ask git which files exist and skip the (ignored) copy.
work=$(mktemp -d "${TMPDIR:-/tmp}/qflow-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage="$work/ansible_collections/qflow/ops"
mkdir -p "$stage"
cd "$root"
git ls-files -co --exclude-standard -- galaxy.yml meta plugins roles playbooks docs tests/unit/plugins tests/sanity \
  changelogs README.md LICENSE 2>/dev/null | while read -r f; do
  [ -e "$f" ] || continue
  mkdir -p "$stage/$(dirname "$f")" && cp -p "$f" "$stage/$f"
done
cache="${HOME}/.ansible/test/cache"
mkdir -p "$cache"
pip_version=$("$root/.venv/bin/python" -c 'from ansible_test._internal.python_requirements import get_venv_packages as g
class P: version = "3.11"
print(g(P())["pip"].replace(".", "_"))')
cp "$root/tools/get_pip_shim.py" "$cache/get_pip_${pip_version}.py"
cd "$stage"
"$root/.venv/bin/ansible-test" sanity --venv --python 3.11 --color no "$@" 2>&1 | tee "$work/sanity.log"
rc=${PIPESTATUS[0]}
if grep -q "All targets skipped" "$work/sanity.log"; then
  echo "ansible-test sanity checked nothing: the staged collection is empty" >&2
  exit 1
fi
exit "$rc"
