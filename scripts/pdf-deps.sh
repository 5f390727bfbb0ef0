#!/usr/bin/env bash
# The 简报's PDF is printed by Debian's chromium with the Noto CJK fonts (web/read/monthly.py). `make run`
# installs them where they are missing and apt-get may be used (root); otherwise it says what to install and
# goes on: everything but the PDF download works without them.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
ls /usr/share/fonts/opentype/noto/NotoSansCJK* >/dev/null 2>&1 || need+=(fonts-noto-cjk)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "pdf-deps: installing ${need[*]} (the 简报's PDF)" >&2
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }; then
    echo "pdf-deps: apt-get could not install ${need[*]}; the 简报's PDF is unavailable until it does" >&2
  fi
else
  echo "pdf-deps: ${need[*]} missing (apt-get install ${need[*]}); the 简报 renders as HTML, its PDF is unavailable" >&2
fi
