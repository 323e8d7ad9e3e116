#!/usr/bin/env bash
# Checkout benchmark with wrk as a separate load-generator process.
# Needs `apt-get install wrk` and a release build: cargo build --release -p caja-node
# (the access token lasts 15 minutes: the whole run takes under one).
set -euo pipefail
BIN=${BIN:-"$(dirname "$0")/../../target/release/caja-node"}
D=$(mktemp -d)
# A standalone node with one admin (it writes the catalog and sells); every sale then pays
# for authentication like a till's (EdDSA check, revocation and staff lookup).
CAJA_NODE_PASSWORD=wrk-bench-password $BIN user add bench --role admin --data-dir "$D" > /dev/null
$BIN serve --data-dir "$D" --listen 127.0.0.1:18080 --requests-per-second 1000000 > "$D/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$D"' EXIT
for i in $(seq 1 50); do curl -sf http://127.0.0.1:18080/health/ready >/dev/null && break; sleep 0.1; done
CAJA_TOKEN=$(curl -sf http://127.0.0.1:18080/v1/auth/login -H 'content-type: application/json' \
  -d '{"username":"bench","password":"wrk-bench-password"}' | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
export CAJA_TOKEN
for i in $(seq 0 99); do
  curl -sf -H "Authorization: Bearer $CAJA_TOKEN" -X PUT "http://127.0.0.1:18080/v1/products/B$(printf %04d $i)" -H 'content-type: application/json' \
    -d "{\"name\":\"bench item $i\",\"unit_price\":\"$(( (100 + i * 7) / 100 )).$(printf %02d $(( (100 + i * 7) % 100 )))\",\"tax_rate\":\"0.20\"}" > /dev/null
done
for c in 1 8 64; do
  echo "== $c connections, 15 s"
  wrk -t $(( c < 2 ? 1 : 2 )) -c $c -d 15s -s "$(dirname "$0")/wrk-sale.lua" http://127.0.0.1:18080 | grep -E "Requests/sec|p50"
done
