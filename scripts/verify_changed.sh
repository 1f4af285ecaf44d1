#!/usr/bin/env bash
# Verify (re-run and compare) every submission whose files changed since BASE (default: origin/main,
# else the previous commit). Tasks whose data does not ship with subclassbench are skipped, which keeps
# this cheap enough for every pull request; reviewers verify those with --data.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE="${1:-${SUBCLASSBENCH_VERIFY_BASE:-}}"
if [ -z "$BASE" ]; then
  if git rev-parse --verify -q origin/main >/dev/null; then BASE=$(git merge-base HEAD origin/main); else BASE=HEAD~1; fi
fi
if ! git rev-parse --verify -q "$BASE" >/dev/null; then
  echo "verify_changed: no base revision '$BASE'; nothing to compare against"
  exit 0
fi
changed=$(git diff --name-only "$BASE" -- submissions | awk -F/ 'NF > 2 {print $1 "/" $2}' | sort -u)
status=0
for folder in $changed; do
  if [ -f "$folder/model.yaml" ]; then
    echo "verify $folder"
    .venv/bin/subclassbench verify "$folder" --shipped-data-only --quiet || status=1
  fi
done
[ -n "$changed" ] || echo "verify_changed: no submission changed since $BASE"
exit $status
