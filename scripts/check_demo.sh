#!/usr/bin/env bash
# Runs the README's demo command (`cargo run --example echo_gateway`) and checks that every
# curl line it prints answers with the status printed above it. Used by .ci/run; needs curl.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v curl >/dev/null || { echo "check_demo: curl is not installed" >&2; exit 1; }

cargo build --quiet --example echo_gateway
out=$(mktemp)
cargo run --quiet --example echo_gateway >"$out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$out"' EXIT

for _ in $(seq 1 300); do
  [ "$(grep -c '^curl ' "$out" || true)" -ge 5 ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; echo "check_demo: the demo exited" >&2; exit 1; }
  sleep 0.1
done

checked=0
expect=
while IFS= read -r line; do
  case "$line" in
    "# "[0-9][0-9][0-9]*) expect=${line:2:3} ;;
    "curl "*)
      url=${line##* }
      header=$(sed -n "s/^curl -i -H '\([^']*\)'.*/\1/p" <<<"$line")
      args=(-s -o /dev/null -w '%{http_code}')
      [ -n "$header" ] && args+=(-H "$header")
      got=$(curl "${args[@]}" "$url")
      if [ "$got" != "$expect" ]; then
        echo "check_demo: expected $expect, got $got: $line" >&2
        exit 1
      fi
      echo "check_demo: $got as printed" >&2
      checked=$((checked + 1))
      ;;
  esac
done <"$out"
[ "$checked" -ge 5 ] || { cat "$out" >&2; echo "check_demo: found $checked curl lines" >&2; exit 1; }

# `--resource URL` (RFC 9728): the metadata at the URL's well-known path, without a token, and
# the challenge pointing at it.
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
resource=http://127.0.0.1:3001/echo
cargo run --quiet --example echo_gateway -- --listen 127.0.0.1:3001 --resource "$resource" >"$out" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  grep -q '^protected resource metadata' "$out" && break
  kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; echo "check_demo: the --resource demo exited" >&2; exit 1; }
  sleep 0.1
done
metadata=http://127.0.0.1:3001/.well-known/oauth-protected-resource/echo
curl -sf "$metadata" | grep -q "\"resource\": \"$resource\"" \
  || { echo "check_demo: no metadata for $resource at $metadata" >&2; exit 1; }
challenge=$(curl -s -o /dev/null -D - http://127.0.0.1:3001/echo | tr -d '\r' | sed -n 's/^www-authenticate: //Ip')
[ "$challenge" = "Bearer resource_metadata=\"$metadata\"" ] \
  || { echo "check_demo: --resource challenge was: $challenge" >&2; exit 1; }
echo "check_demo: --resource serves its metadata and every challenge points at it" >&2
