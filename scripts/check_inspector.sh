#!/usr/bin/env bash
# The token inspector in a real browser: starts the demo with `--inspector` and drives Debian's
# Chromium through its page (tests/browser/inspector.mjs, playwright-core from that folder's
# lockfile), pasting the demo's valid, expired and no-scope tokens and asserting the verdicts.
# `scripts/check_inspector.sh --screenshot` also writes docs/inspector.png (the README's picture).
# Used by .ci/run, which installs chromium and the npm packages. Outside CI (CI unset, "false" or
# "0") a missing node, chromium or npm install skips with a reason; in CI it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${CI:-}" in "" | false | 0) in_ci=false ;; *) in_ci=true ;; esac
skip() {
  if [ "$in_ci" = true ]; then
    echo "check_inspector: $1" >&2
    exit 1
  fi
  echo "check_inspector: skipped: $1" >&2
  exit 0
}
command -v node >/dev/null || skip "node is not installed"
[ -x /usr/bin/chromium ] || skip "Debian's chromium is not installed (apt-get install chromium)"
[ -d tests/browser/node_modules/playwright-core ] ||
  skip "playwright-core is not installed: (cd tests/browser && npm ci)"
screenshot=
[ "${1:-}" = --screenshot ] && screenshot="$PWD/docs/inspector.png"

cargo build --quiet --example echo_gateway
out=$(mktemp)
"${CARGO_TARGET_DIR:-target}/debug/examples/echo_gateway" --inspector --listen 127.0.0.1:0 >"$out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$out"' EXIT

for _ in $(seq 1 300); do
  grep -q '^# why a token is refused' "$out" && break
  kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; echo "check_inspector: the demo exited" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^# why a token is refused.* at \(http:[^ ]*\)$/\1/p' "$out")
[ -n "$url" ] || { cat "$out" >&2; echo "check_inspector: the demo printed no inspector URL" >&2; exit 1; }
valid=$(sed -n '/^valid token:$/{n;p;}' "$out")
expired=$(sed -n '/^expired token:$/{n;p;}' "$out")
no_scope=$(sed -n '/^# 403/{n;s/^curl -i -H .Authorization: Bearer \([^'"'"']*\).*/\1/p;}' "$out")
for t in valid expired no_scope; do
  [ -n "${!t}" ] || { cat "$out" >&2; echo "check_inspector: no $t token in the demo's output" >&2; exit 1; }
done

INSPECTOR_URL="$url" VALID_TOKEN="$valid" EXPIRED_TOKEN="$expired" NO_SCOPE_TOKEN="$no_scope" \
  SCREENSHOT="$screenshot" node tests/browser/inspector.mjs
