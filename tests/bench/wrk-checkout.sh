#!/usr/bin/env bash
# Checkout benchmark with wrk as a separate load-generator process.
# Needs `apt-get install wrk` and a release build: cargo build --release -p caja-node
set -euo pipefail
BIN=${BIN:-"$(dirname "$0")/../../target/release/caja-node"}
D=$(mktemp -d)
$BIN serve --data-dir "$D" --listen 127.0.0.1:18080 > "$D/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$D"' EXIT
for i in $(seq 1 50); do curl -sf http://127.0.0.1:18080/health/ready >/dev/null && break; sleep 0.1; done
for i in $(seq 0 99); do
  curl -sf -X PUT "http://127.0.0.1:18080/v1/products/B$(printf %04d $i)" -H 'content-type: application/json' \
    -d "{\"name\":\"bench item $i\",\"unit_price\":\"$(( (100 + i * 7) / 100 )).$(printf %02d $(( (100 + i * 7) % 100 )))\",\"tax_rate\":\"0.20\"}" > /dev/null
done
for c in 1 8 64; do
  echo "== $c connections, 15 s"
  wrk -t $(( c < 2 ? 1 : 2 )) -c $c -d 15s -s "$(dirname "$0")/wrk-sale.lua" http://127.0.0.1:18080 | grep -E "Requests/sec|p50"
done
