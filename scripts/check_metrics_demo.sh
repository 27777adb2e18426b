#!/usr/bin/env bash
# Runs `cargo run --example metrics_gateway --features metrics,axum` and checks that every curl
# line it prints answers with the status printed above it, then that the request metrics and the
# health JSON say what those requests did. Used by .ci/run; needs curl.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v curl >/dev/null || { echo "check_metrics_demo: curl is not installed" >&2; exit 1; }

cargo build --quiet --example metrics_gateway --features metrics,axum
out=$(mktemp)
cargo run --quiet --example metrics_gateway --features metrics,axum -- --listen 127.0.0.1:0 >"$out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$out"' EXIT

for _ in $(seq 1 300); do
  [ "$(grep -c '^curl ' "$out" || true)" -ge 5 ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; echo "check_metrics_demo: the demo exited" >&2; exit 1; }
  sleep 0.1
done

checked=0
expect=
base=
while IFS= read -r line; do
  case "$line" in
    "# "[0-9][0-9][0-9]*) expect=${line:2:3} ;;
    "curl "*)
      url=${line##* }
      base=${url%/*}
      header=$(sed -n "s/^curl -i -H '\([^']*\)'.*/\1/p" <<<"$line")
      args=(-s -o /dev/null -w '%{http_code}')
      [ -n "$header" ] && args+=(-H "$header")
      got=$(curl "${args[@]}" "$url")
      if [ "$got" != "$expect" ]; then
        echo "check_metrics_demo: expected $expect, got $got: $line" >&2
        exit 1
      fi
      checked=$((checked + 1))
      ;;
  esac
done <"$out"
[ "$checked" -ge 5 ] || { cat "$out" >&2; echo "check_metrics_demo: found $checked curl lines" >&2; exit 1; }

metrics=$(curl -s "$base/metrics")
# Two cache misses: the valid token's first lookup and the expired token's (never cached).
for want in \
  'validate_jwt_requests_total{outcome="accepted",reason="none"} 1' \
  'validate_jwt_requests_total{outcome="refused",reason="expired"} 1' \
  'validate_jwt_requests_total{outcome="refused",reason="missing"} 1' \
  'validate_jwt_key_fetches_total{source=' \
  'validate_jwt_token_cache_misses_total 2'; do
  grep -qF "$want" <<<"$metrics" || { echo "$metrics" >&2; echo "check_metrics_demo: no '$want' in /metrics" >&2; exit 1; }
done
curl -s "$base/healthz" | grep -q '"status":"ready"' || { echo "check_metrics_demo: /healthz is not ready" >&2; exit 1; }
echo "check_metrics_demo: $checked curl lines answered as printed; /metrics and /healthz agree" >&2
