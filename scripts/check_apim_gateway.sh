#!/usr/bin/env bash
# Runs the README's gateway command (`cargo run --features apim --example apim_gateway -- --demo`):
# the APIM policy examples/apim_policy.xml in front of the Echo API, with the example's
# in-process Entra ID stand-in. Checks that a valid token reaches the backend with the claim
# headers (and a forged one does not), and that no token and a token for another audience get
# 401. Used by .ci/run; needs curl.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v curl >/dev/null || { echo "check_apim_gateway: curl is not installed" >&2; exit 1; }

cargo build --quiet --features apim --example apim_gateway
out=$(mktemp)
cargo run --quiet --features apim --example apim_gateway -- --demo --listen 127.0.0.1:0 >"$out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$out"' EXIT

for _ in $(seq 1 300); do
  grep -q '^OID=' "$out" && break
  kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; echo "check_apim_gateway: the gateway exited" >&2; exit 1; }
  sleep 0.1
done
value() { sed -n "s/^$1=//p" "$out"; }
gateway=$(value GATEWAY)
token=$(value TOKEN)
other=$(value OTHER_AUDIENCE_TOKEN)
oid=$(value OID)
[ -n "$gateway" ] && [ -n "$token" ] || { cat "$out" >&2; echo "check_apim_gateway: no token printed" >&2; exit 1; }

fail() { echo "check_apim_gateway: $*" >&2; exit 1; }

# A valid token: 200, and the backend's echo shows the claims as headers, never the forged one.
body=$(mktemp)
status=$(curl -s -o "$body" -w '%{http_code}' -H "Authorization: Bearer $token" \
  -H 'x-user-oid: forged' -H 'x-user-roles: Admin' "$gateway/files")
echo=$(cat "$body"); rm -f "$body"
[ "$status" = 200 ] || fail "expected 200 with a valid token, got $status: $echo"
grep -qF "\"x-user-oid\":[\"$oid\"]" <<<"$echo" || fail "the backend did not see x-user-oid=$oid: $echo"
grep -qF '"x-user-roles":["Files.Read.All,Echo.Admin"]' <<<"$echo" || fail "no x-user-roles: $echo"
grep -qF '"x-user-scopes":["Files.Read"]' <<<"$echo" || fail "no x-user-scopes: $echo"
grep -qF 'forged' <<<"$echo" && fail "a forged header reached the backend: $echo"
grep -qF '"Admin"' <<<"$echo" && fail "a forged header reached the backend: $echo"
echo "check_apim_gateway: 200, the backend saw x-user-oid, x-user-roles and x-user-scopes" >&2

# No token, and a token for another audience: 401, with the policy's message.
status=$(curl -s -o /dev/null -w '%{http_code}' -H 'x-user-oid: forged' "$gateway/files")
[ "$status" = 401 ] || fail "expected 401 without a token, got $status"
answer=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $other" "$gateway/files")
[ "${answer##* }" = 401 ] || fail "expected 401 for another audience, got $answer"
grep -qF 'Unauthorized. Access token is missing or invalid.' <<<"$answer" \
  || fail "the policy's failed-validation-error-message is missing: $answer"
echo "check_apim_gateway: 401 without a token and for another audience" >&2
