#!/usr/bin/env bash
# HTTP load benchmark: echo_gateway (release) behind ValidateJwtLayer, with and without the token
# cache, against the same Echo API with no authentication and behind a hand-written
# `jsonwebtoken::decode` middleware, on loopback.
#
#   scripts/http_bench.sh                  # needs wrk (Debian/Ubuntu: apt-get install wrk)
#   DURATION=20 CONNECTIONS=16 scripts/http_bench.sh
#
# The server runs on one core (SERVER_CPU, one Tokio worker), wrk and the key server on another
# (CLIENT_CPU), when taskset is available and the machine has two cores or more. Each scenario
# is a WARMUP-second run, then a DURATION-second measured run with CONNECTIONS connections;
# every request carries a bearer token, from one file of tokens rotated by
# scripts/rotate_tokens.lua (one token, or 10,000 distinct RS256 / ES256 ones). A run with any
# non-2xx answer fails the benchmark. Prints a Markdown table of requests per second.
set -euo pipefail

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-8}
TOKENS=${TOKENS:-10000}
CACHE=${CACHE:-20000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

cd "$(dirname "$0")/.."
ROOT=$(pwd)
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

echo "building the examples (release)…" >&2
cargo build --release --quiet --example echo_gateway --example handwritten_jsonwebtoken --example bench_idp
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples"

PIN=0
ON_SERVER_CPU=()
ON_CLIENT_CPU=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN=1
  ON_SERVER_CPU=(taskset -c "$SERVER_CPU")
  ON_CLIENT_CPU=(taskset -c "$CLIENT_CPU")
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The identity provider: keys, tokens and a JWKS / discovery endpoint on loopback.
"${ON_CLIENT_CPU[@]}" "$BIN/bench_idp" --out "$WORK/idp" --tokens "$TOKENS" 2>"$WORK/idp.log" &
PIDS+=($!)
for _ in $(seq 1 600); do [ -f "$WORK/idp/ready" ] && break; sleep 0.2; done
[ -f "$WORK/idp/ready" ] || { cat "$WORK/idp.log" >&2; echo "bench_idp did not start" >&2; exit 1; }
# shellcheck disable=SC1091
. "$WORK/idp/env"
head -n 1 "$WORK/idp/rs256.txt" >"$WORK/one.txt"

SERVER_PID=
ADDR=
start_server() { # start_server LOG command...
  local log=$1; shift
  TOKIO_WORKER_THREADS=1 "${ON_SERVER_CPU[@]}" "$@" >"$log.out" 2>"$log.err" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 1 300); do
    ADDR=$(sed -n 's/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$log.out" | head -n 1)
    [ -n "$ADDR" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$log.err" >&2
  echo "server did not start: $*" >&2
  exit 1
}
stop_server() { # Ctrl-C, so that echo_gateway prints its cache counters
  kill -INT "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}

# run TOKEN_FILE -> prints requests/s
run() {
  local tokens=$1 out
  TOKENS="$tokens" "${ON_CLIENT_CPU[@]}" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" \
    -s "$ROOT/scripts/rotate_tokens.lua" "$ADDR/echo" >/dev/null
  out=$(TOKENS="$tokens" "${ON_CLIENT_CPU[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
    -s "$ROOT/scripts/rotate_tokens.lua" "$ADDR/echo")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "$out" >&2
    echo "the server refused requests: see above" >&2
    exit 1
  fi
  awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out"
}

declare -A RESULT
bench_server() { # bench_server NAME command...
  local name=$1; shift
  start_server "$WORK/$name" "$@"
  RESULT[$name,one]=$(run "$WORK/one.txt")
  RESULT[$name,rs]=$(run "$WORK/idp/rs256.txt")
  RESULT[$name,es]=$(run "$WORK/idp/es256.txt")
  stop_server
  echo "$name: ${RESULT[$name,one]} / ${RESULT[$name,rs]} / ${RESULT[$name,es]} req/s" >&2
  if grep -q "token cache" "$WORK/$name.err"; then grep "token cache" "$WORK/$name.err" >&2; fi
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
AUTH=(--jwks-uri "$JWKS_URI" --issuer "$ISSUER" --audience "$AUDIENCE" --require-scope "$SCOPE" --listen 127.0.0.1:0)
bench_server none "$BIN/echo_gateway" --no-auth --listen 127.0.0.1:0
bench_server handwritten "$BIN/handwritten_jsonwebtoken" --jwks "$WORK/idp/jwks.json" \
  --issuer "$ISSUER" --audience "$AUDIENCE" --require-scope "$SCOPE" --listen 127.0.0.1:0
bench_server layer "$BIN/echo_gateway" "${AUTH[@]}"
bench_server layer_cache "$BIN/echo_gateway" "${AUTH[@]}" --token-cache "$CACHE"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
row() { # row NAME LABEL
  local n=$1
  printf '| %s | %s | %s | %s | %s / %s | %s / %s | %s / %s |\n' "$2" \
    "${RESULT[$n,one]}" "${RESULT[$n,rs]}" "${RESULT[$n,es]}" \
    "$(ratio "${RESULT[$n,one]}" "${RESULT[none,one]}")" "$(ratio "${RESULT[$n,one]}" "${RESULT[handwritten,one]}")" \
    "$(ratio "${RESULT[$n,rs]}" "${RESULT[none,rs]}")" "$(ratio "${RESULT[$n,rs]}" "${RESULT[handwritten,rs]}")" \
    "$(ratio "${RESULT[$n,es]}" "${RESULT[none,es]}")" "$(ratio "${RESULT[$n,es]}" "${RESULT[handwritten,es]}")"
}

CPU=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "$(nproc) cores ($CPU); server on CPU $SERVER_CPU with one Tokio worker, wrk (1 thread, $CONNECTIONS connections) on CPU $CLIENT_CPU (pinned: $PIN); ${DURATION} s per run after ${WARMUP} s of warm-up; load average $LOAD_BEFORE before, $LOAD_AFTER after."
echo
echo "| server | one RS256 token (req/s) | $TOKENS distinct RS256 | $TOKENS distinct ES256 | one token: vs none / vs hand-written | distinct RS256: vs none / vs hand-written | distinct ES256: vs none / vs hand-written |"
echo "|---|---:|---:|---:|---:|---:|---:|"
row none "no authentication (echo_gateway --no-auth)"
row handwritten "hand-written jsonwebtoken::decode"
row layer "echo_gateway, cache off"
row layer_cache "echo_gateway, --token-cache $CACHE"
