#!/usr/bin/env bash
# Regenerates tests/interop/fixtures/*.json with independent JOSE libraries:
# PyJWT + cryptography and jwcrypto (pinned in requirements.txt), and jose (pinned in
# package-lock.json). The fixtures are committed; CI does not run this script.
#
#   tests/interop/minters/regenerate.sh [venv dir]   (default: a temporary directory)
set -euo pipefail
cd "$(dirname "$0")"
export PYTHONDONTWRITEBYTECODE=1

venv="${1:-}"
if [ -z "$venv" ]; then
  venv="$(mktemp -d)"
  trap 'rm -rf "$venv"' EXIT
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
"$venv/bin/python" mint_pyjwt.py
"$venv/bin/python" mint_jwcrypto.py

npm ci --no-audit --no-fund --loglevel=error
node mint_jose.mjs
