#!/usr/bin/env bash
# Runs the dashboard's browser test against the mock API (no Rust build):
#   bash tests/browser/mock_e2e.sh [SCREENSHOT.png]
# Needs python3 and Debian's chromium + chromium-driver. Exit status is the
# driver's (0 passed, 1 failed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../target/dashboard-mock.png}
mkdir -p "$(dirname "$out")"
log=$(mktemp)
python3 "$here/mock_api.py" --port 0 --quiet --alarm-after 6 >"$log" 2>&1 &
mock=$!
trap 'kill "$mock" 2>/dev/null || true; wait "$mock" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 50); do
    grep -q '^mock_api listening on ' "$log" && break
    sleep 0.1
done
url=$(sed -n 's/^mock_api listening on //p' "$log")
if [ -z "$url" ]; then
    echo "dashboard_e2e: FAIL: mock_api did not start: $(head -c 300 "$log")"
    exit 1
fi
python3 "$here/dashboard_e2e.py" --url "$url/" --token operator --attack-wait 30 --screenshot "$out"
