#!/usr/bin/env bash
# The update and download tests under other Node release lines than the machine's (which runs
# them in `npm test`): every line bundles another undici in its global fetch, and the update
# path must not depend on it (src/updates/http-client.ts).
#
#   bash test/node-lines.sh                      # Node 22, 24 and 26 (npm run test:node-lines)
#   NODE_LINES="22.23.5" bash test/node-lines.sh # one line
#   FILES="test/integration/download-close.test.ts" bash test/node-lines.sh
#
# Each Node binary comes from the npm registry (the node-linux-<arch> package, `npm pack`) and is
# cached in .tmp/node-lines/<version>/ (gitignored). Vitest runs under that binary, with its bin
# directory first on PATH, so everything the tests start runs on the same line: vitest's workers
# and the children spawned with process.execPath, and bin/edge-classifier (`#!/usr/bin/env node`).
# Native addons: onnxruntime-node and sharp are N-API (one build for every line); the optional
# unix-dgram is built for the machine's Node and is only loaded when NOTIFY_SOCKET is set, which
# is removed from the environment here (a mismatch would only disable sd_notify, logged).
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=(${NODE_LINES:-22.23.5 24.22.3 26.12.1})
DEFAULT_FILES=(
  test/unit/updates-manifest.test.ts
  test/unit/downloader.test.ts
  test/integration/downloader.test.ts
  test/integration/download-close.test.ts
  test/integration/updates-e2e.test.ts
  test/integration/updates-urls.test.ts
  test/integration/updates-disk-full.test.ts
  # The hostile inputs (issue 12) lean on fs, net and crypto behaviour that a line could change.
  test/unit/safe-read.test.ts
  test/unit/command-auth.test.ts
  test/integration/directory-hostile.test.ts
  test/integration/mqtt-command-auth.test.ts
  test/integration/embedded-broker.test.ts
)
FILES=(${FILES:-${DEFAULT_FILES[@]}})
CACHE=.tmp/node-lines
case "$(uname -m)" in
  x86_64) ARCH=x64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) echo "test/node-lines.sh: no node-linux package for $(uname -m)" >&2; exit 1 ;;
esac

# Prints the path of the node binary of `version`, fetching it into the cache when missing.
node_bin() {
  local version=$1 dir="$CACHE/$1"
  local bin="$dir/package/bin/node"
  if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "v$version" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    echo "node-lines: fetching node-linux-$ARCH@$version" >&2
    local tgz
    tgz=$(npm pack --silent --ignore-scripts --pack-destination "$dir" "node-linux-$ARCH@$version" | tail -1)
    tar -xzf "$dir/$tgz" -C "$dir" && rm -f "$dir/$tgz"
    [ "$("$bin" --version)" = "v$version" ] || { echo "node-lines: $bin is not v$version" >&2; exit 1; }
  fi
  echo "$bin"
}

npm run build --silent
results=()
failed=0
for version in "${LINES[@]}"; do
  bin=$(node_bin "$version")
  bindir=$(cd "$(dirname "$bin")" && pwd)
  dgram=$("$bin" -e 'try { require("unix-dgram"); console.log("loads") } catch (e) { console.log(`does not load (${e.code ?? e.message.split("\n")[0]})`) }' 2>&1 || true)
  echo "=== Node $("$bin" --version) (global fetch: undici $("$bin" -p process.versions.undici); update path: undici $("$bin" -p 'require("undici/package.json").version'); unix-dgram $dgram)"
  start=$(date +%s)
  rc=0
  env -u NOTIFY_SOCKET -u WATCHDOG_USEC -u WATCHDOG_PID PATH="$bindir:$PATH" \
    "$bin" node_modules/vitest/vitest.mjs run --project unit --project integration "${FILES[@]}" || rc=$?
  secs=$(($(date +%s) - start))
  results+=("Node $version: $([ $rc = 0 ] && echo passed || echo "FAILED (exit $rc)") in ${secs} s")
  [ $rc = 0 ] || failed=1
done
echo "=== node lines"
printf '  %s\n' "${results[@]}"
exit $failed
