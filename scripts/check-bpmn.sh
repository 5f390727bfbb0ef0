#!/usr/bin/env bash
# Proves that our BPMN diagrams are something a designer can open and save in a standard modeler:
# bpmn-moddle (the model behind bpmn-js / Camunda Modeler) must import them without a single warning, and
# bpmnlint (config: tools/bpmn-check/.bpmnlintrc) must report no errors. See tools/bpmn-check/README.md.
#
#   scripts/check-bpmn.sh                 # processes/*.bpmn and web/demo/*.bpmn (what `make test` runs)
#   scripts/check-bpmn.sh a.bpmn b.bpmn   # just these files
#
# Installs the pinned tools with `npm ci` when node_modules is missing or older than package-lock.json.
# Without node/npm this FAILS (exit 127): a check that silently skips proves nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tool="$root/tools/bpmn-check"

for cmd in node npm; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    echo "check-bpmn: '$cmd' not found. Install Node.js >= 18 and npm (Debian: apt-get install nodejs npm;" \
         ".ci/run does this). The BPMN check cannot be skipped." >&2
    exit 127
  fi
done
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 18 ]; then
  echo "check-bpmn: Node.js >= 18 needed, found $(node --version)" >&2
  exit 127
fi

# node_modules is current when the lock file it was installed from equals the committed one.
stamp="$tool/node_modules/.qifu-package-lock.json"
if ! cmp -s "$tool/package-lock.json" "$stamp"; then
  echo "check-bpmn: installing pinned bpmn-moddle/bpmnlint (npm ci in tools/bpmn-check)" >&2
  (cd "$tool" && npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$tool/package-lock.json" "$stamp"
fi

files=()
if [ $# -gt 0 ]; then
  files=("$@")
else
  shopt -s nullglob
  files=("$root"/processes/*.bpmn "$root"/web/demo/*.bpmn)
  shopt -u nullglob
  if [ ${#files[@]} -eq 0 ]; then
    echo "check-bpmn: no diagrams found in processes/ or web/demo/" >&2
    exit 1
  fi
  # Paths relative to the repository make the report readable.
  files=("${files[@]#"$root"/}")
  cd "$root"
fi

exec node "$tool/check.mjs" "${files[@]}"
