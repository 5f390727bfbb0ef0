#!/usr/bin/env bash
# Installs the modeler's pinned npm packages (web/modeler/package-lock.json, `npm ci`) when node_modules is
# missing or was installed from another lock file, then bundles web/static/modeler/src/ with esbuild into
# web/static/modeler/dist/ (modeler.js, modeler.css, LICENSES.txt; not committed). `make run` runs this;
# the browser tests run it too.
#
# Without node/npm the modeler cannot be built: this says so and exits 0 (the rest of Qifu runs; the modeler
# page shows how to build it), unless QIFU_REQUIRE_NODE=1 (CI), where it fails with 127.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pkg="$root/web/modeler"

for cmd in node npm; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    echo "build-modeler: '$cmd' not found: the in-browser modeler is not built (Debian: apt-get install nodejs npm)." >&2
    [ "${QIFU_REQUIRE_NODE:-}" = "1" ] && exit 127
    exit 0
  fi
done

stamp="$pkg/node_modules/.qifu-package-lock.json"
if ! cmp -s "$pkg/package-lock.json" "$stamp"; then
  echo "build-modeler: installing the pinned modeler packages (npm ci in web/modeler)" >&2
  (cd "$pkg" && npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$pkg/package-lock.json" "$stamp"
fi
exec node "$pkg/build.mjs"
