#!/usr/bin/env bash
# Fuzzes a fresh region with schemathesis (pinned in tests/schemathesis/requirements.txt)
# against its own /openapi.json, every check on, as the region's operator: fails on any 5xx,
# any answer that breaks the document, and any rejection of a schema-valid request that is not
# one of the documented deviations (tests/schemathesis/stratus_hooks.py).
#
# usage: scripts/schemathesis.sh [STRATUS_BINARY]   (default target/debug/stratus)
#
# One worker: Hypothesis's internal caches are not safe across schemathesis's worker threads
# (runs with two failed now and then inside Hypothesis itself, never in what they tested).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/debug/stratus}
venv=target/schemathesis-venv
if ! cmp -s tests/schemathesis/requirements.txt "$venv/requirements.txt"; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/schemathesis/requirements.txt
  cp tests/schemathesis/requirements.txt "$venv/requirements.txt"
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '[host]\ndriver = "sim"\n[sim]\nprepare-ms = 10\nboot-ms = 10\nstop-ms = 10\npause-ms = 10\n' > "$work/stratus.toml"
"$binary" serve --listen "127.0.0.1:$port" --data-dir "$work/data" --config "$work/stratus.toml" \
  > "$work/serve.log" 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null; wait $serve 2>/dev/null; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -sf "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
token=$(curl -sf -X POST "$base/v1/regions/global/auth/token" -H 'Content-Type: application/json' \
  -d "{\"grant_type\":\"api_key\",\"api_key\":\"$(cat "$work/data/admin-api-key")\"}" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
key_id=$(curl -sf -H "Authorization: Bearer $token" "$base/v1/regions/global/iam/apikeys?createdBy=*" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["apiKeys"][0]["id"])')
report="$work/report"
STRATUS_FUZZ_PROTECTED="$key_id" SCHEMATHESIS_HOOKS=stratus_hooks \
PYTHONPATH="$PWD/tests/schemathesis" \
  "$venv/bin/st" run "$base/openapi.json" \
    --checks all --header "Authorization: Bearer $token" \
    --max-examples "${STRATUS_FUZZ_EXAMPLES:-30}" --seed "${STRATUS_FUZZ_SEED:-1}" \
    --workers 1 --no-color --report ndjson --report-dir "$report" \
    --warnings off --no-shrink --generation-database none \
    --suppress-health-check filter_too_much
echo "schemathesis: done against $base"
