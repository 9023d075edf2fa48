#!/usr/bin/env bash
# Fuzzes a freshly started Runnel from its own OpenAPI document with Schemathesis (PyPI): no
# answer may be a 5xx, every error must be API.md's JSON shape (the document's Error schema),
# content types must match. Bounded: FUZZ_EXAMPLES cases per operation (default 5).
# Installs schemathesis with pip when `st` is missing; fails loudly if that is impossible.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v st >/dev/null 2>&1; then
  echo "== installing schemathesis (pip)" >&2
  python3 -m pip install --quiet schemathesis >&2 || {
    echo "fuzz: schemathesis is not installed and 'pip install schemathesis' failed" >&2
    exit 3
  }
fi

data="$(mktemp -d -t runnel-fuzz-XXXXXX)"
log="$data/server.log"
password="fuzz-admin-password"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

RUNNEL_DATA_DIR="$data/data" RUNNEL_ADMIN_PASSWORD="$password" RUNNEL_LOG_LEVEL=warn \
  node --import tsx bin/runnel.ts start --port 0 2>"$log" &
server=$!
url=""
for _ in $(seq 1 600); do
  url="$(grep -o 'listening on http://[^ ]*' "$log" | head -1 | sed 's/listening on //' || true)"
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; echo "fuzz: server exited before listening" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { cat "$log" >&2; echo "fuzz: server did not start" >&2; exit 1; }

token="$(curl -fsS -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$password\"}" "$url/api/v1/auth/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

# Event streams never end, so they are left to the isolation matrix, which reads them over a socket.
run_st() {
  st run "$url/api/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance \
    --exclude-path-regex '(/tail|/stream)$' \
    --max-examples "${FUZZ_EXAMPLES:-5}" \
    --phases examples,coverage,fuzzing \
    --request-timeout 10 \
    --workers 2 \
    --seed "$1" \
    --no-shrink \
    --suppress-health-check all \
    --warnings off \
    "${@:2}"
}
status=0
run_st "${FUZZ_SEED:-7}" "$@" 2>&1 | tee "$data/st.out" || status=$?
# Schemathesis sometimes crashes inside its own generator (a Python "Runtime Error" listed under
# ERRORS, with no FAILURES section): that is the tool failing to build a case, not a finding about
# our API, and it strikes a different operation each run. Such a run passes with a warning; any
# real finding (FAILURES: a 5xx, a malformed error, a wrong content type) still fails.
# Only the tool's own Runtime Errors qualify: network errors or timeouts against our server never do.
other_errors="$(grep -E '🚫 [A-Za-z ]+: [0-9]+' "$data/st.out" | grep -vc 'Runtime Error' || true)"
if [ "$status" -ne 0 ] && ! grep -q '= FAILURES =' "$data/st.out" && grep -q '= ERRORS =' "$data/st.out" &&
  [ "$other_errors" -eq 0 ]; then
  echo "fuzz: no findings; schemathesis crashed internally on $(grep -c 'Runtime Error' "$data/st.out") case(s) (tool errors, not findings)" >&2
  status=0
fi
kill -0 "$server" 2>/dev/null || { cat "$log" >&2; echo "fuzz: the server died during the run" >&2; exit 1; }
if grep -q '"level":50\|"level":60' "$log"; then
  echo "fuzz: the server logged errors:" >&2
  grep '"level":50\|"level":60' "$log" >&2 | head -20
  exit 1
fi
exit $status
