#!/usr/bin/env bash
# build-xdpw.sh — build a GPU-less xdg-desktop-portal-wlr for the headless ScreenCast testbed.
#
# Usage:
#   scripts/testbed/build-xdpw.sh [CACHE_DIR]        (default CACHE_DIR: /var/cache/glasscast-testbed)
#   -> CACHE_DIR/bin/xdg-desktop-portal-wlr (+ .patch-sha256 stamp); wayland-session.sh calls it.
#   Env: XDPW_JOBS (ninja -j, default 1), FORCE=1 (rebuild even if cached), XDPW_SRC_METHOD=pool (skip
#   apt-get source, download from the mirror's pool/ directory). Must run as root (apt-get).
#
# What it does (every step idempotent):
#   1. apt-get install --no-install-recommends of the missing build deps (meson ninja-build pkg-config gcc
#      libdrm-dev libinih-dev libgbm-dev libpipewire-0.3-dev libwayland-dev wayland-protocols libsystemd-dev
#      scdoc dpkg-dev patch xz-utils); runs apt-get update only if the install fails without it.
#   2. Fetches Debian bookworm's xdg-desktop-portal-wlr 0.7.0-1 source with `apt-get source --download-only`
#      through a PRIVATE deb-src list, lists dir and no pkgcache (-o Dir::Etc::SourceList=CACHE_DIR/apt/...,
#      Dir::State::Lists=..., Dir::Cache::{src,}pkgcache=): the system's apt configuration and lists are not
#      touched. The mirror is the one in /etc/apt/sources.list.d (deb.debian.org here). If apt-get fails it
#      downloads the same three files from MIRROR/pool/main/x/xdg-desktop-portal-wlr/. Either way the files are
#      checked against the SHA-256 sums pinned below, and kept in CACHE_DIR/src.
#   3. dpkg-source -x, then applies scripts/testbed/xdpw-shm-without-gpu.patch (start_screencast(): require an
#      SHM format only, not also a DMA-BUF one when screencopy v3 is offered; upstream
#      emersion/xdg-desktop-portal-wlr#289). Debian 0.7.0-1 carries no patches of its own.
#   4. meson setup --buildtype=release -Dsd-bus-provider=libsystemd -Dsystemd=disabled -Dman-pages=disabled;
#      ninja -j1 in a temp dir under /tmp (removed afterwards).
#   5. Installs the binary to CACHE_DIR/bin/xdg-desktop-portal-wlr with a stamp holding the patch's sha256.
#   Skips everything when that binary exists and the stamp matches the current patch (edit the patch -> rebuild).
#
# Verified here (Debian 12, 2 cores, no GPU): builds; with it ScreenCast Start succeeds on sway's headless
# pixman output, where the stock Debian binary answers response 2 ("unable to receive a valid format from
# wlr_screencopy"); see wayland-session.sh and portal-check.py. Both source routes (apt-get source and pool/)
# tested.
# Timings measured here: first run 8.6 s (installing 6 missing build deps 4.5 s, apt-get source 1.3 s, meson
# 0.6 s, ninja -j1 2.0 s); a rebuild with the deps present 7.9 s (nice'd, next to another build); cached 6 ms.
#
# Caveats: pinned to bookworm's 0.7.0-1: if the archive ever ships another revision the sha256 check fails
# loudly (update the pins, re-check the patch). The binary links the system's libpipewire/libwayland/libinih/
# libgbm, so the cache is only valid on the same Debian release. Man pages are not built (scdoc is installed
# anyway, as the notes list it).
set -euo pipefail

CACHE_DIR=${1:-/var/cache/glasscast-testbed}
JOBS=${XDPW_JOBS:-1}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PATCH="$HERE/xdpw-shm-without-gpu.patch"
PKG=xdg-desktop-portal-wlr
VER=0.7.0
DEBVER=0.7.0-1
# sha256 of Debian bookworm's source package files (as of 2025-05 snapshot).
declare -A SHA=(
  [${PKG}_${DEBVER}.dsc]=b39d7dd8ddecc1fdecb3a33785f26c4822520de56370ccd2bb53db171195dd09
  [${PKG}_${VER}.orig.tar.xz]=511e0509653d67af17c9ec45cc6ce1e43e795a444d0e51f959ff899d636f2c4e
  [${PKG}_${DEBVER}.debian.tar.xz]=34c5e816e45c26ef6fdad4d8206ee97da6e6980f51112ae75c24bf36f3d7b036
)
BUILD_DEPS=(meson ninja-build pkg-config gcc libc6-dev libdrm-dev libinih-dev libgbm-dev libpipewire-0.3-dev
            libwayland-dev wayland-protocols libsystemd-dev scdoc dpkg-dev patch xz-utils)

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
T0=$(now_ms); LAP=$T0
lap() { local t; t=$(now_ms)
        printf '[build-xdpw] %-22s %6d ms (total %6d ms)\n' "$1" $((t - LAP)) $((t - T0)); LAP=$t; }
log() { echo "[build-xdpw] $*"; }

OUT="$CACHE_DIR/bin/$PKG"
PATCH_SUM=$(sha256sum "$PATCH" | cut -d' ' -f1)
if [[ -z ${FORCE:-} && -x $OUT && "$(cat "$OUT.patch-sha256" 2>/dev/null)" == "$PATCH_SUM" ]]; then
  log "cached: $OUT (patch $PATCH_SUM)"; lap "cache check"; exit 0
fi
[[ $(id -u) == 0 ]] || { log "must run as root (apt-get)"; exit 1; }

# 1. build dependencies
missing=()
for p in "${BUILD_DEPS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi
lap "build deps"

# 2. source
MIRROR=$(grep -hoE '(https?://[^ ]+/debian)/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
           /etc/apt/sources.list 2>/dev/null | grep -v -e security -e '^$' | head -n1 | tr -d ' ' || true)
MIRROR=${MIRROR%/}; MIRROR=${MIRROR:-http://deb.debian.org/debian}
SRC="$CACHE_DIR/src"; APTD="$CACHE_DIR/apt"
mkdir -p "$SRC" "$APTD/lists/partial" "$APTD/parts"
verify() { for f in "${!SHA[@]}"; do echo "${SHA[$f]}  $f"; done | (cd "$SRC" && sha256sum --quiet -c -) ; }
if ! verify >/dev/null 2>&1; then
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bookworm main" > "$APTD/sources.list"
  APT_OPTS=(-o "Dir::Etc::SourceList=$APTD/sources.list" -o "Dir::Etc::SourceParts=$APTD/parts"
            -o "Dir::State::Lists=$APTD/lists" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
            -o "APT::Sandbox::User=root")
  if [[ ${XDPW_SRC_METHOD:-apt} == apt ]] && apt-get "${APT_OPTS[@]}" update >"$APTD/update.log" 2>&1 &&
     (cd "$SRC" && apt-get "${APT_OPTS[@]}" source --download-only "$PKG=$DEBVER" >"$APTD/source.log" 2>&1); then
    log "fetched with apt-get source from $MIRROR"
  else
    [[ ${XDPW_SRC_METHOD:-apt} == apt ]] && log "apt-get source failed (see $APTD/*.log)"
    log "downloading from $MIRROR/pool/main/x/$PKG/"
    for f in "${!SHA[@]}"; do curl -fsSL -o "$SRC/$f" "$MIRROR/pool/main/x/$PKG/$f"; done
  fi
  verify || { log "sha256 mismatch in $SRC"; exit 1; }
fi
lap "source fetch"

WORK=$(mktemp -d /tmp/xdpw-build.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
dpkg-source --no-check -x "$SRC/${PKG}_${DEBVER}.dsc" "$WORK/src" >/dev/null
# 3. patch
(cd "$WORK/src" && patch -p1 --no-backup-if-mismatch < "$PATCH")
lap "extract + patch"

# 4. build
(cd "$WORK/src" && meson setup build --buildtype=release -Dsd-bus-provider=libsystemd -Dsystemd=disabled \
   -Dman-pages=disabled >"$WORK/meson.log" 2>&1) || { cat "$WORK/meson.log"; exit 1; }
lap "meson setup"
ninja -C "$WORK/src/build" -j"$JOBS" >"$WORK/ninja.log" 2>&1 || { cat "$WORK/ninja.log"; exit 1; }
lap "ninja -j$JOBS"

# 5. install
mkdir -p "$CACHE_DIR/bin"
chmod 0755 "$CACHE_DIR/bin"   # the session uid (65534) executes it
install -m 0755 "$WORK/src/build/$PKG" "$OUT.tmp" && mv -f "$OUT.tmp" "$OUT"
echo "$PATCH_SUM" > "$OUT.patch-sha256"
log "installed $OUT"
lap "install"
