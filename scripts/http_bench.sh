#!/usr/bin/env bash
# HTTP load benchmark: echo_gateway (release) behind ValidateJwtLayer, with and without the token
# cache, against the same Echo API with no authentication, behind a signature-only middleware
# (the ceiling for validated traffic: echo_gateway --signature-only, benches/support/signature_only.rs,
# in the same binary as the layer so that the crypto sits at the same addresses) and behind a hand-written
# `jsonwebtoken::decode` middleware, on loopback.
#
#   scripts/http_bench.sh                  # needs wrk (Debian/Ubuntu: apt-get install wrk)
#   ROUNDS=5 DURATION=10 CONNECTIONS=16 scripts/http_bench.sh
#   BASELINE_GATEWAY=/path/to/older/echo_gateway scripts/http_bench.sh   # before/after, one run
#
# The servers run on one core (SERVER_CPU, one Tokio worker each; only the one under load is
# busy), wrk and the key server on another (CLIENT_CPU), when taskset is available and the
# machine has two cores or more. All servers start first; then each of ROUNDS rounds loads every
# server with every token file in turn (a WARMUP-second run, then a DURATION-second measured run
# with CONNECTIONS connections; the servers' order reversed every other round), so a machine that
# drifts affects all servers alike. Every
# request carries a bearer token, from a file rotated by scripts/rotate_tokens.lua (one token,
# or 10,000 distinct RS256 / ES256 ones). A run with any non-2xx answer fails the benchmark.
# Per server and token file: the median over the rounds of the server's CPU time per request
# (from /proc/<pid>/task/*/schedstat: on a virtual machine it leaves out what the hypervisor
# takes, so it is the steadier figure) and of requests/s, each as a ratio to the signature-only
# server; the spread of echo_gateway's per-round ratios; and the steal time (/proc/stat) of the
# server's CPU (a run with more than STEAL_LIMIT %, default 5, is measured again). Prints Markdown.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
STEAL_LIMIT=${STEAL_LIMIT:-5}
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
cargo build --release --quiet --example echo_gateway --example handwritten_jsonwebtoken \
  --example bench_idp
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

declare -A ADDR_OF PID_OF
start_server() { # start_server NAME command...
  local name=$1 log="$WORK/$1" addr pid; shift
  TOKIO_WORKER_THREADS=1 "${ON_SERVER_CPU[@]}" "$@" >"$log.out" 2>"$log.err" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$log.out" | head -n 1)
    if [ -n "$addr" ]; then
      ADDR_OF[$name]=$addr
      PID_OF[$name]=$pid
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$log.err" >&2
  echo "server did not start: $*" >&2
  exit 1
}
stop_server() { # Ctrl-C, so that echo_gateway prints its cache counters
  local pid=${PID_OF[$1]}
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
# The CPU time (ns) every thread of a process has run so far.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'; }

# Ticks the hypervisor took from the server's CPU so far (steal, /proc/stat), and all its ticks.
steal_ticks() { awk -v c="cpu$SERVER_CPU" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t }' /proc/stat; }

# measure NAME TOKEN_FILE -> "requests/s cpu-µs-per-request steal-%"
measure() {
  local name=$1 tokens=$2 out before after s0 t0 s1 t1 addr=${ADDR_OF[$1]} pid=${PID_OF[$1]}
  TOKENS="$tokens" "${ON_CLIENT_CPU[@]}" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" \
    -s "$ROOT/scripts/rotate_tokens.lua" "$addr/echo" >/dev/null
  before=$(cpu_ns "$pid")
  read -r s0 t0 <<<"$(steal_ticks)"
  out=$(TOKENS="$tokens" "${ON_CLIENT_CPU[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
    -s "$ROOT/scripts/rotate_tokens.lua" "$addr/echo")
  after=$(cpu_ns "$pid")
  read -r s1 t1 <<<"$(steal_ticks)"
  if grep -q "Non-2xx" <<<"$out"; then
    echo "$out" >&2
    echo "$name refused requests: see above" >&2
    exit 1
  fi
  awk -v cpu=$((after - before)) -v steal=$((s1 - s0)) -v ticks=$((t1 - t0)) '
    /^Requests\/sec:/ { rps = $2 }
    / requests in / { n = $1 }
    END { printf "%.0f %.2f %.1f", rps, cpu / n / 1000, ticks ? 100 * steal / ticks : 0 }' <<<"$out"
}

# ONLY="signature layer" measures a subset (the signature-only server is always measured).
read -ra SERVERS <<<"${ONLY:-none signature handwritten layer layer_cache}"
[[ " ${SERVERS[*]} " == *" signature "* ]] || SERVERS=(signature "${SERVERS[@]}")
wanted() { [[ " ${SERVERS[*]} " == *" $1 "* ]]; }
declare -A LABEL=(
  [none]="no authentication (echo_gateway --no-auth)"
  [signature]="**signature only** (the ceiling)"
  [handwritten]="hand-written jsonwebtoken::decode"
  [layer]="echo_gateway, cache off"
  [layer_cache]="echo_gateway, --token-cache $CACHE"
)
SCENARIOS=(rs es one)
declare -A FILE_OF=([one]="$WORK/one.txt" [rs]="$WORK/idp/rs256.txt" [es]="$WORK/idp/es256.txt")

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
AUTH=(--jwks-uri "$JWKS_URI" --issuer "$ISSUER" --audience "$AUDIENCE" --require-scope "$SCOPE" --listen 127.0.0.1:0)
wanted none && start_server none "$BIN/echo_gateway" --no-auth --listen 127.0.0.1:0
start_server signature "$BIN/echo_gateway" --signature-only "$WORK/idp/jwks.json" --listen 127.0.0.1:0
wanted handwritten && start_server handwritten "$BIN/handwritten_jsonwebtoken" --jwks "$WORK/idp/jwks.json" \
  --issuer "$ISSUER" --audience "$AUDIENCE" --require-scope "$SCOPE" --listen 127.0.0.1:0
wanted layer && start_server layer "$BIN/echo_gateway" "${AUTH[@]}"
wanted layer_cache && start_server layer_cache "$BIN/echo_gateway" "${AUTH[@]}" --token-cache "$CACHE"
# Another build of echo_gateway (an older commit, say), measured in the same rounds.
if [ -n "${BASELINE_GATEWAY:-}" ]; then
  SERVERS+=(baseline)
  LABEL[baseline]="echo_gateway, cache off ($BASELINE_GATEWAY)"
  start_server baseline "$BASELINE_GATEWAY" "${AUTH[@]}"
fi

declare -A RPS CPU
STEALS=""
DISCARDED=0
for round in $(seq 1 "$ROUNDS"); do
  # Every other round the servers go in the reverse order, so that going first (just after
  # another token file's runs) or last favours none of them.
  ORDER=("${SERVERS[@]}")
  if [ $((round % 2)) -eq 0 ]; then
    ORDER=()
    for ((k = ${#SERVERS[@]} - 1; k >= 0; k--)); do ORDER+=("${SERVERS[k]}"); done
  fi
  for scenario in "${SCENARIOS[@]}"; do
    line="round $round, $scenario:"
    for name in "${ORDER[@]}"; do
      # A run during which the hypervisor took more than STEAL_LIMIT % of the server's CPU is
      # measured again (up to four more times): such runs say more about the host than the server.
      for attempt in 1 2 3 4 5; do
        read -r rps cpu steal <<<"$(measure "$name" "${FILE_OF[$scenario]}")"
        awk -v s="$steal" -v l="$STEAL_LIMIT" 'BEGIN { exit !(s <= l) }' && break
        DISCARDED=$((DISCARDED + 1))
        echo "  ($name, $scenario: $steal % steal, measured again)" >&2
      done
      RPS[$name,$scenario]+="$rps "
      CPU[$name,$scenario]+="$cpu "
      STEALS+="$steal "
      line+=" $name $rps req/s $cpu µs (steal $steal %);"
    done
    echo "$line" >&2
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
for name in "${SERVERS[@]}"; do stop_server "$name"; done
if wanted layer_cache && grep -q "token cache" "$WORK/layer_cache.err"; then grep "token cache" "$WORK/layer_cache.err" >&2; fi

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# spread TABLE A B SCENARIO: the per-round ratios of A to B ("RPS": A ÷ B; "CPU": B ÷ A, the
# capacity ratio), as "median (min–max)".
spread() {
  local -n table=$1
  paste <(tr ' ' '\n' <<<"${table[$2,$4]}" | grep .) <(tr ' ' '\n' <<<"${table[$3,$4]}" | grep .) |
    awk -v cpu="$([ "$1" = CPU ] && echo 1)" '{ print cpu ? $2 / $1 : $1 / $2 }' | sort -g |
    awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%.3f× (%.3f–%.3f)", m, v[1], v[NR] }'
}
cell() { # cell NAME SCENARIO -> "cpu µs (capacity ratio×) · req/s (ratio×)"
  local rps cpu base_rps base_cpu
  rps=$(median <<<"${RPS[$1,$2]}")
  cpu=$(median <<<"${CPU[$1,$2]}")
  base_rps=$(median <<<"${RPS[signature,$2]}")
  base_cpu=$(median <<<"${CPU[signature,$2]}")
  awk -v r="$rps" -v br="$base_rps" -v c="$cpu" -v bc="$base_cpu" \
    'BEGIN { printf "%.1f µs (%.3f×) · %.0f req/s (%.3f×)", c, bc / c, r, r / br }'
}

CPUNAME=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
STEAL_MEDIAN=$(median <<<"$STEALS")
STEAL_MAX=$(tr ' ' '\n' <<<"$STEALS" | grep . | sort -g | tail -n 1)
echo
echo "$(nproc) cores ($CPUNAME); servers on CPU $SERVER_CPU with one Tokio worker each, wrk (1 thread, $CONNECTIONS connections) on CPU $CLIENT_CPU (pinned: $PIN); $ROUNDS rounds of ${DURATION} s per server and token file after ${WARMUP} s of warm-up; load average $LOAD_BEFORE before, $LOAD_AFTER after; the hypervisor took $STEAL_MEDIAN % of the server's CPU (median of the runs kept; at most $STEAL_MAX %; $DISCARDED runs over $STEAL_LIMIT % measured again)."
echo
echo "Median over the rounds of the server's CPU time per request (in brackets: the signature-only server's ÷ this one's, the share of its capacity) and of requests/s (in brackets: ÷ the signature-only server's):"
echo
echo "| server | $TOKENS distinct RS256 | $TOKENS distinct ES256 | one RS256 token |"
echo "|---|---:|---:|---:|"
for name in "${SERVERS[@]}"; do
  printf '| %s | %s | %s | %s |\n' "${LABEL[$name]}" "$(cell "$name" rs)" "$(cell "$name" es)" "$(cell "$name" one)"
done
echo
wanted layer && echo "echo_gateway (cache off) against the signature-only server, per round, median (min–max):"
wanted layer && echo "- CPU per request (signature only ÷ echo_gateway): distinct RS256 $(spread CPU layer signature rs); distinct ES256 $(spread CPU layer signature es); one RS256 token $(spread CPU layer signature one)."
wanted layer && echo "- requests/s (echo_gateway ÷ signature only): distinct RS256 $(spread RPS layer signature rs); distinct ES256 $(spread RPS layer signature es); one RS256 token $(spread RPS layer signature one)."
