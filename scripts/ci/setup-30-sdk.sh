#!/usr/bin/env bash
# The official E2B SDKs (pinned) for the SDK compatibility tests, installed outside the
# checkout so they cannot disturb other tools: Python e2b in its own venv, JS e2b in its own
# npm prefix; plus older releases for the version matrix (docs/COMPATIBILITY.md), one venv or
# prefix each. Idempotent.
set -euo pipefail
venv="${BULKHEAD_SDK_VENV:-/opt/bulkhead-sdk-venv}"
js_dir="${BULKHEAD_SDK_JS:-/opt/bulkhead-sdk-js}"
py_version="2.63.0"
# The test-suite tooling of tests/sdk and bench/sdk, pinned like the SDK itself.
py_test_pins=(
  "e2b==2.63.0"
  "e2b-code-interpreter==2.11.5"
  "httpx==0.28.1"
  "pytest==9.2.0"
  "pytest-asyncio==1.5.0"
  "pytest-timeout==2.4.0"
  "hypothesis==6.170.15"
  "prometheus-client==0.26.0"
)
js_version="2.51.0"
# The JS code interpreter SDK, beside e2b in the same prefix (it needs e2b ^2.48).
js_ci_version="2.8.0"
# The version matrix: venv -> e2b and e2b-code-interpreter releases (the tooling pins above
# apply to each; h2 because the domain pass speaks HTTP/2 over TLS).
matrix_venvs=(
  "${BULKHEAD_SDK_2_45_VENV:-/opt/bulkhead-sdk-2.45-venv} e2b==2.45.1 e2b-code-interpreter==2.0.0"
  "${BULKHEAD_SDK_2_2_VENV:-/opt/bulkhead-sdk-2.2-venv} e2b==2.2.0 e2b-code-interpreter==2.0.0"
)
matrix_tool_pins=("httpx==0.28.1" "pytest==9.2.0" "pytest-asyncio==1.5.0" "pytest-timeout==2.4.0"
  "hypothesis==6.170.15" "h2==4.4.1")
js_old_dir="${BULKHEAD_SDK_JS_OLD:-/opt/bulkhead-sdk-js-2.2}"
js_old_version="2.2.10"

# Interpreters: use what the machine has, else Debian's packages.
need=()
python3 -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3 "${need[@]}"
fi

if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('e2b') != '$py_version')" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "e2b==$py_version"
fi
# pip's own check: every pin installed at exactly its version, else (re)install them all.
if ! "$venv/bin/python" - "${py_test_pins[@]}" <<'PY' 2>/dev/null; then
import importlib.metadata as m, sys
sys.exit(any(m.version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))
PY
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${py_test_pins[@]}"
fi

installed_js=$(node -p "require('$js_dir/node_modules/e2b/package.json').version" 2>/dev/null || true)
if [ "$installed_js" != "$js_version" ]; then
  mkdir -p "$js_dir"
  [ -f "$js_dir/package.json" ] || echo '{"name":"bulkhead-sdk-js","private":true}' > "$js_dir/package.json"
  npm install --prefix "$js_dir" --silent --no-audit --no-fund "e2b@$js_version"
fi
installed_js_ci=$(node -p "require('$js_dir/node_modules/@e2b/code-interpreter/package.json').version" 2>/dev/null || true)
if [ "$installed_js_ci" != "$js_ci_version" ]; then
  npm install --prefix "$js_dir" --silent --no-audit --no-fund \
    "e2b@$js_version" "@e2b/code-interpreter@$js_ci_version"
fi

# pip's check again, per matrix venv: its pins at exactly their versions, else (re)install.
for entry in "${matrix_venvs[@]}"; do
  read -r dir sdk ci <<<"$entry"
  pins=("$sdk" "$ci" "${matrix_tool_pins[@]}")
  if ! "$dir/bin/python" - "${pins[@]}" <<'PY' 2>/dev/null; then
import importlib.metadata as m, sys
sys.exit(any(m.version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))
PY
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  fi
done

installed_js_old=$(node -p "require('$js_old_dir/node_modules/e2b/package.json').version" 2>/dev/null || true)
if [ "$installed_js_old" != "$js_old_version" ]; then
  mkdir -p "$js_old_dir"
  [ -f "$js_old_dir/package.json" ] || echo '{"name":"bulkhead-sdk-js-old","private":true}' > "$js_old_dir/package.json"
  npm install --prefix "$js_old_dir" --silent --no-audit --no-fund "e2b@$js_old_version"
fi
