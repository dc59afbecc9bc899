#!/usr/bin/env bash
# Installs a built edge-classifier checkout as a systemd service. Idempotent: a second run with
# nothing new to install changes nothing and says so ("no changes").
#
#   npm ci                      # builds dist/ (through `prepare`) and fetches node_modules/
#   sudo ./systemd/install.sh [--root DIR] [--no-systemctl]
#
#   --root DIR      install into DIR instead of / (an SD-card root file system mounted on a
#                   build host, or a test directory). The edge-classifier user is created with
#                   `useradd --root DIR` when DIR/etc/passwd exists, otherwise user creation and
#                   chown to it are skipped (and said so). Implies --no-systemctl.
#   --no-systemctl  do not run `systemctl daemon-reload` / `enable --now`.
#
# What it does, each step only when something differs:
#   $ROOT/opt/edge-classifier/      bin/, dist/, package.json, package-lock.json, config/ (examples),
#                                   docs/, node_modules/ (production dependencies only), root-owned
#   system user edge-classifier     --system, no home, nologin shell, member of group video
#   $ROOT/etc/systemd/system/edge-classifier.service
#   $ROOT/etc/edge-classifier/config.yaml   from config/config.yaml, ONLY if none exists
#   $ROOT/var/lib/edge-classifier/  0750, owned by edge-classifier
#   systemctl daemon-reload; systemctl try-restart (if something changed); systemctl enable --now
set -euo pipefail

APP=edge-classifier
SVC_USER=edge-classifier
ROOT=
SYSTEMCTL=1

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }; ROOT=$2; shift 2 ;;
    --root=*) ROOT=${1#--root=}; shift ;;
    --no-systemctl) SYSTEMCTL=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

if [ -n "$ROOT" ]; then
  [ -d "$ROOT" ] || { echo "install.sh: --root $ROOT: not a directory" >&2; exit 2; }
  ROOT=$(cd "$ROOT" && pwd)
  [ "$ROOT" = / ] && ROOT=
fi
[ -n "$ROOT" ] && SYSTEMCTL=0
IS_ROOT=0; [ "$(id -u)" = 0 ] && IS_ROOT=1
if [ -z "$ROOT" ] && [ $IS_ROOT = 0 ]; then
  echo "install.sh: run as root (sudo $0 $*), or use --root DIR" >&2
  exit 1
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for f in bin/$APP dist/cli/main.js package.json config/config.yaml systemd/$APP.service node_modules; do
  [ -e "$REPO/$f" ] || { echo "install.sh: $REPO/$f is missing; run \`npm ci\` in $REPO first" >&2; exit 1; }
done

CHANGES=0
changed() { CHANGES=$((CHANGES + 1)); echo "  changed:   $*"; }
same() { echo "  unchanged: $*"; }
note() { echo "  note:      $*"; }

echo "$APP install into ${ROOT:-/}"

# --- system user ----------------------------------------------------------------------------
# Looked up in the target's passwd/group files (the host's when --root is not given).
passwd_file=$ROOT/etc/passwd
group_file=$ROOT/etc/group
user_exists() { [ -f "$passwd_file" ] && grep -q "^$SVC_USER:" "$passwd_file"; }
root_args=(); [ -n "$ROOT" ] && root_args=(--root "$ROOT")
HAVE_USER=0
if user_exists; then
  same "user $SVC_USER"
  HAVE_USER=1
elif [ $IS_ROOT = 1 ] && [ -f "$passwd_file" ]; then
  # Group video holds /dev/video* (and the Jetson GPU nodes); the unit also sets
  # SupplementaryGroups=video, membership here helps `sudo -u edge-classifier ...` by hand.
  groups=(); grep -q '^video:' "$group_file" 2>/dev/null && groups=(--groups video)
  useradd "${root_args[@]}" --system --user-group --no-create-home --home-dir /var/lib/$APP \
    --shell /usr/sbin/nologin --comment "$APP daemon" "${groups[@]}" "$SVC_USER"
  changed "created system user $SVC_USER"
  HAVE_USER=1
else
  note "no $passwd_file (or not root): user $SVC_USER not created, files not chowned to it;"
  note "on the target run: useradd --system --user-group --no-create-home --shell /usr/sbin/nologin --groups video $SVC_USER"
fi
if [ $HAVE_USER = 1 ] && grep -q '^video:' "$group_file" 2>/dev/null; then
  if grep -E "^video:[^:]*:[^:]*:(.*,)?$SVC_USER(,|$)" "$group_file" >/dev/null; then
    same "user $SVC_USER in group video"
  elif [ $IS_ROOT = 1 ]; then
    usermod "${root_args[@]}" --append --groups video "$SVC_USER"
    changed "added $SVC_USER to group video"
  fi
fi
# Numeric ids from the target's files, so --root works for an image whose ids differ from the host.
SVC_UID=; SVC_GID=
if [ $HAVE_USER = 1 ]; then
  SVC_UID=$(awk -F: -v u="$SVC_USER" '$1 == u { print $3 }' "$passwd_file")
  SVC_GID=$(awk -F: -v u="$SVC_USER" '$1 == u { print $4 }' "$passwd_file")
fi

# --- application: $ROOT/opt/edge-classifier --------------------------------------------------
# Staged as hard links inside the checkout (instant, no space; a plain copy where links are not
# possible), compared with the installed tree by type, mode, size, mtime and link target (the
# rsync quick check: `cp -a` keeps mtimes), and only when they differ copied next to the old
# tree and swapped in with two renames.
DEST=$ROOT/opt/$APP
STAGE=$(mktemp -d "$REPO/.install-stage.XXXXXX")
NEW=; OLD=
cleanup() { rm -rf "$STAGE" ${NEW:+"$NEW"} ${OLD:+"$OLD"}; }
trap cleanup EXIT

items=(bin dist package.json config)
[ -f "$REPO/package-lock.json" ] && items+=(package-lock.json)
[ -d "$REPO/docs" ] && items+=(docs)
# Production dependencies only: the top-level packages of `npm ls --omit=dev` (each copied
# with its own nested node_modules). Without npm, all of node_modules (with a note).
prod=()
if command -v npm >/dev/null 2>&1; then
  while IFS= read -r p; do
    rel=${p#"$REPO"/}
    [[ $rel =~ ^node_modules/(@[^/]+/)?[^/]+$ ]] && [ -e "$REPO/$rel" ] && prod+=("$rel")
  done < <(cd "$REPO" && npm ls --omit=dev --all --parseable 2>/dev/null || true)
fi
if [ ${#prod[@]} -eq 0 ]; then
  note "npm not found or \`npm ls\` failed: copying all of node_modules (including dev dependencies)"
  items+=(node_modules)
fi

link_or_copy() { # SRC DST
  cp -al "$1" "$2" 2>/dev/null || { rm -rf "$2"; cp -a "$1" "$2"; }
}
for it in "${items[@]}"; do link_or_copy "$REPO/$it" "$STAGE/$it"; done
for p in "${prod[@]}"; do
  mkdir -p "$STAGE/$(dirname "$p")"
  link_or_copy "$REPO/$p" "$STAGE/$p"
done

# Directories: type and mode only (their mtimes change with every entry added).
manifest() {
  (cd "$1" && find . -mindepth 1 \( -type d -printf '%P d %m\n' \) -o \( -printf '%P %y %m %s %T@ %l\n' \)) | LC_ALL=C sort
}
if [ -d "$DEST" ] && [ "$(manifest "$STAGE")" = "$(manifest "$DEST")" ]; then
  same "$DEST"
else
  NEW=$ROOT/opt/.$APP.new.$$
  mkdir -p "$ROOT/opt"
  rm -rf "$NEW"
  cp -a "$STAGE" "$NEW"
  chmod 0755 "$NEW"
  if [ -d "$DEST" ]; then
    OLD=$ROOT/opt/.$APP.old.$$
    mv "$DEST" "$OLD"
  fi
  mv "$NEW" "$DEST"
  NEW=
  changed "$DEST (application files)"
fi
# Code is root's: the service user must not be able to rewrite what it runs.
if [ $IS_ROOT = 1 ] && [ -n "$(find "$DEST" ! \( -user 0 -group 0 \) -print -quit)" ]; then
  chown -R -h 0:0 "$DEST"
  changed "$DEST owned by root"
fi

# --- unit --------------------------------------------------------------------------------------
UNIT_DIR=$ROOT/etc/systemd/system
UNIT=$UNIT_DIR/$APP.service
UNIT_CHANGED=0
mkdir -p "$UNIT_DIR"
if [ -f "$UNIT" ] && cmp -s "$REPO/systemd/$APP.service" "$UNIT"; then
  same "$UNIT"
else
  install -m 0644 "$REPO/systemd/$APP.service" "$UNIT"
  changed "$UNIT"
  UNIT_CHANGED=1
fi

# --- configuration (never overwritten) ----------------------------------------------------------
CONF_DIR=$ROOT/etc/$APP
CONF=$CONF_DIR/config.yaml
if [ ! -d "$CONF_DIR" ]; then
  # 0755 root: what systemd's ConfigurationDirectory= would create; the file holds the secrets.
  install -d -m 0755 "$CONF_DIR"
  changed "$CONF_DIR"
fi
if [ -e "$CONF" ]; then
  same "$CONF (existing configuration kept; the shipped one is in $DEST/config/)"
else
  # Readable by the service's group only: it may hold MQTT credentials.
  if [ -n "$SVC_GID" ] && [ $IS_ROOT = 1 ]; then
    install -m 0640 -o 0 -g "$SVC_GID" "$REPO/config/config.yaml" "$CONF"
  else
    install -m 0644 "$REPO/config/config.yaml" "$CONF"
    note "$CONF is world-readable (no $SVC_USER group to give it to): chmod 0640 and chgrp $SVC_USER on the target"
  fi
  changed "$CONF (from config/config.yaml; edit it, then: $APP config check $CONF)"
fi

# --- state directory ---------------------------------------------------------------------------
# systemd's StateDirectory= would create it at start too; created here so a first
# `sudo -u edge-classifier edge-classifier ...` by hand works, with the same owner and mode.
STATE=$ROOT/var/lib/$APP
before=$CHANGES
if [ ! -d "$STATE" ]; then
  install -d -m 0750 "$STATE"
  changed "$STATE"
fi
if [ "$(stat -c %a "$STATE")" != 750 ]; then
  chmod 0750 "$STATE"
  changed "$STATE mode 0750"
fi
if [ -n "$SVC_UID" ] && [ $IS_ROOT = 1 ]; then
  if [ "$(stat -c %u:%g "$STATE")" != "$SVC_UID:$SVC_GID" ]; then
    chown "$SVC_UID:$SVC_GID" "$STATE"
    changed "$STATE owned by $SVC_USER"
  fi
fi
[ $CHANGES = "$before" ] && same "$STATE"

# --- systemd -------------------------------------------------------------------------------------
if [ $SYSTEMCTL = 1 ]; then
  if [ $UNIT_CHANGED = 1 ]; then
    echo "  run:       systemctl daemon-reload"
    systemctl daemon-reload
  fi
  if [ $CHANGES -gt 0 ]; then
    # Restart a running service onto the new code/unit; does nothing if it is stopped.
    echo "  run:       systemctl try-restart $APP"
    systemctl try-restart "$APP"
  fi
  if systemctl is-enabled --quiet "$APP" && systemctl is-active --quiet "$APP"; then
    same "$APP.service enabled and running"
  else
    echo "  run:       systemctl enable --now $APP"
    systemctl enable --now "$APP"
    changed "$APP.service enabled and started"
  fi
  echo "logs: journalctl -u $APP -f -o cat | jq"
else
  note "systemctl skipped${ROOT:+ (--root)}: on the target run: systemctl daemon-reload && systemctl enable --now $APP"
fi

if [ $CHANGES -eq 0 ]; then
  echo "$APP: no changes"
else
  echo "$APP: $CHANGES change(s)"
fi
