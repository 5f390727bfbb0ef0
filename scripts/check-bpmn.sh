#!/usr/bin/env bash
# Proves that our BPMN diagrams are something a designer can open and save in a standard modeler:
# bpmn-moddle (the model behind bpmn-js / Camunda Modeler) must import them without a single warning, and
# bpmnlint (config: tools/bpmn-check/.bpmnlintrc, with Qifu's rules from tools/bpmnlint-plugin-qifu) must
# report no errors. See tools/bpmn-check/README.md.
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

# Qifu's rule qifu/valid-expression takes the server's verdict on every expression: with the project's Python
# installed (.venv, as `make test` has it) export it, compiled the way a deploy compiles (web/designer_lint.py).
status=0
python="$root/.venv/bin/python"
if [ -z "${QIFU_LINT_DATA:-}" ] && [ -x "$python" ]; then
  lint_data="$(mktemp)"
  if PYTHONPATH="$root" "$python" -m web.designer_lint "${files[@]}" >"$lint_data"; then
    QIFU_LINT_DATA="$lint_data" node "$tool/check.mjs" "${files[@]}" || status=$?
  else
    echo "check-bpmn: could not export the server's lint data (web.designer_lint failed)" >&2
    status=1
  fi
  rm -f "$lint_data"
  exit "$status"
fi
if [ -z "${QIFU_LINT_DATA:-}" ]; then
  echo "check-bpmn: no .venv: expressions are checked without the server's verdict (JUEL habits only)" >&2
fi
exec node "$tool/check.mjs" "${files[@]}"
