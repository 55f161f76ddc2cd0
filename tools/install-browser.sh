#!/usr/bin/env bash
# Debian's Chromium for the query API's live-page test (tests/query/test_board_browser.py).
# playwright drives it through executable_path; `playwright install` is never used
# (it downloads a browser build from outside the package registries).
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-browser: /usr/bin/chromium is missing; run: sudo apt-get install -y chromium" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
