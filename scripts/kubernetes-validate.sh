#!/usr/bin/env bash
# kubernetes-validate (PyPI), which bundles the Kubernetes JSON schemas of v1.25 to v1.37, for
# test/deploy/kubernetes.test.ts: installs it into a virtualenv of its own under
# .runnel/kubernetes-validate when it is missing, and prints the path of its command (the only
# line on stdout; everything else goes to stderr, so callers can write BIN="$(bash scripts/…)").
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$PWD/.runnel/kubernetes-validate"
VERSION="1.37.0"

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9

# The venv's python runs the module, not the entry script: that script's first line names the path
# the venv was created under, which breaks when that path is a symlink that later goes away.
installed() { "$VENV/bin/python3" -c "import kubernetes_validate" 2>/dev/null; }

if ! installed || [ "$("$VENV/bin/python3" -m pip show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p')" != "$VERSION" ]; then
  echo "installing kubernetes-validate $VERSION (PyPI) into $VENV" >&2
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$VERSION" >&2 || {
    echo "kubernetes-validate: not installed and 'pip install kubernetes-validate' failed" >&2
    exit 1
  }
fi

# A wrapper beside the venv, so callers run one path whatever the venv's layout.
BIN="$VENV/run"
cat >"$BIN" <<EOF
#!/usr/bin/env bash
exec "$VENV/bin/python3" -m kubernetes_validate "\$@"
EOF
chmod +x "$BIN"
echo "$BIN"
