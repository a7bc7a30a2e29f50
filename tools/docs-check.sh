#!/usr/bin/env bash
# ansible-doc must render every module, filter and role of the collection.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
for f in plugins/modules/*.py; do
  name=$(basename "$f" .py)
  if ! out=$(ansible-doc -t module "qflow.ops.$name" 2>&1) || ! grep -q "RETURN VALUES\|RETURN" <<<"$out"; then
    echo "ansible-doc failed for module qflow.ops.$name:"; echo "$out" | head -20; fail=1
  fi
done
for f in plugins/filter/*.yml; do
  name=$(basename "$f" .yml)
  ansible-doc -t filter "qflow.ops.$name" >/dev/null 2>&1 || { echo "ansible-doc failed for filter qflow.ops.$name"; fail=1; }
done
for d in roles/*/; do
  name=$(basename "$d")
  ansible-doc -t role "qflow.ops.$name" >/dev/null 2>&1 || { echo "ansible-doc failed for role qflow.ops.$name"; fail=1; }
done
n_mod=$(ls plugins/modules/*.py | wc -l); n_role=$(ls -d roles/*/ | wc -l)
[ $fail -eq 0 ] && echo "ansible-doc renders $n_mod modules, $(ls plugins/filter/*.yml | wc -l) filters and $n_role roles"
exit $fail
