#!/usr/bin/env bash
# Debian's Chromium for the browser tests (test/web): installs the `chromium` package when
# /usr/bin/chromium is missing. Browser builds downloaded by test tools cannot be fetched here.
# Prints the executable's path.
set -euo pipefail
BIN=/usr/bin/chromium
if [ ! -x "$BIN" ]; then
  echo "installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2
fi
echo "$BIN"
