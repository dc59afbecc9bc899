#!/usr/bin/env bash
# Installs what the test suites need on Debian 12 with Node 20, then the npm dependencies.
#   bash test/setup.sh && npm test
# Debian packages (only when missing; needs root): mosquitto (broker for the integration
# tests), fswebcam (the real webcam capture program, used with its TEST device), ffmpeg (stream
# cameras), GStreamer's gst-launch with base/good plugins (CSI/libcamera-style pipelines) and
# its RTSP server through python3-gi (a real RTSP server on loopback for the RTSP tests), nginx
# (serves model releases with Range/ETag in the update tests), openssl (test certificates),
# chromium (the preview page is tested in a real headless browser, driven by playwright-core)
# and systemd (systemd-analyze verifies and rates the unit file; nothing is started with it).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v fswebcam >/dev/null 2>&1 || need+=(fswebcam)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v gst-launch-1.0 >/dev/null 2>&1 || need+=(gstreamer1.0-tools)
[ -x /usr/sbin/nginx ] || need+=(nginx)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
for pkg in gstreamer1.0-plugins-base gstreamer1.0-plugins-good python3-gi gir1.2-gst-rtsp-server-1.0 openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test/setup.sh: installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "test/setup.sh: missing Debian packages: ${need[*]}" >&2
    echo "  run as root, or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

# The Debian mosquitto package starts a system broker on port 1883; tests start their own on
# free ports, so the system one is left alone.
node -e 'const [maj, min, patch] = process.versions.node.split(".").map(Number); if (maj < 20 || (maj === 20 && (min < 18 || (min === 18 && patch < 1)))) { console.error(`Node >= 20.18.1 required, found ${process.version}`); process.exit(1); }'
npm ci --no-audit --no-fund
