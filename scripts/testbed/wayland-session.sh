#!/usr/bin/env bash
# wayland-session.sh — headless Wayland (sway) + PipeWire + xdg-desktop-portal ScreenCast testbed.
#
# Usage (as root):
#   scripts/testbed/wayland-session.sh start DIR [CACHE_DIR]   # CACHE_DIR default /var/cache/glasscast-testbed
#   scripts/testbed/wayland-session.sh stop  DIR               # idempotent; keeps DIR/logs unless KEEP_LOGS=0
#   scripts/testbed/wayland-session.sh status DIR              # exit 0 if every process is alive
#   . DIR/env                   # exports for a client (see below)
#   DIR/as-user CMD [ARGS...]   # run CMD as the session uid with the session's environment
#   scripts/testbed/portal-check.py DIR [--as-root]             # self-test (see that file)
#
# Env knobs: TESTBED_UID / TESTBED_GID (default 65534/65534 = nobody/nogroup), TESTBED_MODE (default 1280x720),
#   TESTBED_ALLOW_ROOT (default 1: root may use the bus and the portal, see below; 0: only the session uid),
#   TESTBED_XDPW_BIN (use this xdpw binary instead of building the patched one, e.g. the stock
#   /usr/libexec/xdg-desktop-portal-wlr to see it fail), XDPW_PERSIST_MODE (passed to xdpw, default
#   "permanent"), TESTBED_APT=0 (never run apt-get; fail if a package is missing), START_TIMEOUT (s per step,
#   default 20).
#
# What `start` does, in this order; every process runs as TESTBED_UID (except the portal frontend, see step 7)
# via setpriv --clear-groups, with env -i plus HOME=DIR/home, a private XDG_RUNTIME_DIR=DIR/run (0700) and the
# marker GLASSCAST_TESTBED_DIR=DIR (how `stop` also finds what dbus activated, e.g. xdg-permission-store,
# and anything started with DIR/as-user):
#   0. apt-get installs missing runtime packages; build-xdpw.sh builds the patched portal backend (cached).
#   1. dbus-daemon with DIR/dbus.conf: a session bus on unix:path=DIR/run/bus, <allow user="root"/> unless
#      TESTBED_ALLOW_ROOT=0, and a service dir listed before the standard ones that maps
#      org.freedesktop.impl.portal.desktop.wlr to the patched binary (the stock one is never activated) and
#      org.freedesktop.portal.Documents to /bin/false (no FUSE mount; ScreenCast does not need it).
#   2. pipewire, 3. wireplumber (waits until WirePlumber is a PipeWire client)
#   4. sway -c DIR/sway.conf (WLR_BACKENDS=headless WLR_LIBINPUT_NO_DEVICES=1 WLR_RENDERER=pixman
#      XDG_CURRENT_DESKTOP=sway; config: output HEADLESS-1 mode 1280x720, no borders, no bar), then
#      `swaymsg output HEADLESS-1 mode 1280x720` and a check of get_outputs' current_mode.
#   5. dbus-update-activation-environment WAYLAND_DISPLAY XDG_CURRENT_DESKTOP XDG_RUNTIME_DIR SWAYSOCK ...
#   6. CACHE_DIR/bin/xdg-desktop-portal-wlr -c DIR/xdpw.conf -l INFO ([screencast] output_name=HEADLESS-1
#      chooser_type=none max_fps=30); checks the bus name belongs to that pid.
#   7. /usr/libexec/xdg-desktop-portal — as ROOT when TESTBED_ALLOW_ROOT=1 (default), else as the session
#      uid; waits for the name (NameHasOwner, so no second copy is dbus-activated), checks its owner pid, then
#      that org.freedesktop.portal.ScreenCast answers its version property.
#   8. moving content: gst-launch-1.0 videotestsrc pattern=ball is-live=true ! video/x-raw,1280x720,30fps !
#      waylandsink (sway tiles it over the whole output; capture is damage-driven, a static screen yields no
#      frames); waits until the window is in sway's tree.
# then writes DIR/env, DIR/pids ("name pid" lines, start order), DIR/as-user; logs go to DIR/logs/NAME.log.
# On any failure it prints the dead process's log tail, stops everything and exits 1.
#
# How a client (e.g. a Rust integration test running as root) reaches the portal and PipeWire:
#   Environment (all in DIR/env): DBUS_SESSION_BUS_ADDRESS=unix:path=DIR/run/bus, XDG_RUNTIME_DIR=DIR/run,
#   WAYLAND_DISPLAY=wayland-1, XDG_CURRENT_DESKTOP=sway, XDG_SESSION_TYPE=wayland, SWAYSOCK=..., plus
#   GLASSCAST_TESTBED_UID/GID/HOME/OUTPUT/MODE.
#   (a) As root, in-process or a child: works with the default TESTBED_ALLOW_ROOT=1. Two things make it work:
#       the bus allows uid 0, and the portal frontend runs as root. (Allowing root on the bus alone is NOT
#       enough: a frontend running as uid 65534 answers a root caller with AccessDenied "Portal operation not
#       allowed: Unable to open /proc/PID/root" — xdg-desktop-portal 1.16 opens every caller's /proc/PID/root
#       to tell flatpak/snap/host apps apart, and an unprivileged process cannot do that for a root one.)
#       The backend (xdpw), sway, PipeWire stay unprivileged. Root needs nothing else: OpenPipeWireRemote
#       gives an fd (pipewiresrc fd=FD path=NODE), and root may also open DIR/run/pipewire-0 directly.
#   (b) As the session uid (what a real desktop does; the only way with TESTBED_ALLOW_ROOT=0): run the client
#       with `DIR/as-user BINARY ARGS` (setpriv --reuid/--regid 65534 --clear-groups + env -i + the testbed
#       env), or from Rust: Command::new(bin).uid(65534).gid(65534).env_clear().envs(<DIR/env>) plus
#       HOME=DIR/home (std drops supplementary groups itself when root sets a uid). The binary and its
#       inputs must be readable by that uid (target/ is 0755 here) and anything it writes must be writable.
#   Portal restore tokens are per app id (host apps all have app id ""), so root and uid-65534 callers share
#   them; they live in DIR/home/.local/share/flatpak/db/screencast and die with `stop`.
#
# Verified here (Debian 12, sway 1.7, wlroots 0.15.1, xdg-desktop-portal 1.16.0, patched xdpw 0.7.0,
# PipeWire 0.3.65, WirePlumber 0.4.13, GStreamer 1.22, 2 cores, no GPU), 2026-11-25:
#   * 8 x (start -> portal-check.py as uid 65534 -> portal-check.py --as-root [-> --quick / a token carried
#     across two processes] -> stop), the first with an empty xdpw cache: all passed, nothing left running;
#     two testbeds in different DIRs ran side by side.
#   * start twice (restarts), stop twice / on a missing DIR (no-op), status.
#   * TESTBED_XDPW_BIN=/usr/libexec/xdg-desktop-portal-wlr (stock): Start answers 2, xdpw logs "unable to
#     receive a valid format from wlr_screencopy" — the patch is what makes it work.
#   * TESTBED_ALLOW_ROOT=0: the session uid passes; root cannot even connect ("The connection is closed").
# Timings measured here: start 1.1-1.4 s when packages and the xdpw build are cached (+ build-xdpw.sh ~8 s
# once; + apt-get of the runtime packages, ~4 s for the 10 that were missing here — pipewire, wireplumber,
# dbus and GStreamer were preinstalled); stop 0.4-1.4 s.
#
# Caveats:
#   * sway refuses root, so the session is uid 65534 (nobody): nothing needs a real home or login, so no
#     dedicated user was needed. Testbeds in different DIRs run side by side but share that uid.
#   * DIR and all its parents must be traversable (o+x) by the session uid: /tmp/... or target/... are fine.
#   * Killed processes are reaped lazily by this VM's init: `ps` may show <defunct> sway/dbus for a few
#     seconds after `stop`; they hold nothing.
#   * xdg-desktop-portal logs harmless warnings (RealtimeKit, "No skeleton to export", a GLib-GIO CRITICAL
#     for the disabled Documents portal); sway logs that Xwayland is missing (not installed: not needed).
#   * xdpw 0.7 quirks seen by a client: the stream's source_type is 2 (WINDOW) for a monitor (it sends
#     1 << MONITOR); Start's persist_mode/restore_data come from a list iterator used after its loop (see
#     portal-check.py), so XDPW_PERSIST_MODE makes no difference in practice.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CMD=${1:-}; DIR=${2:-}
[[ -n $CMD && -n $DIR ]] || { sed -n '2,9p' "$0"; exit 2; }
DIR=$(realpath -m "$DIR")
CACHE_DIR=${3:-/var/cache/glasscast-testbed}
UIDN=${TESTBED_UID:-65534}; GIDN=${TESTBED_GID:-65534}
MODE=${TESTBED_MODE:-1280x720}
TIMEOUT=${START_TIMEOUT:-20}
RUN="$DIR/run"; HOMED="$DIR/home"; LOGS="$DIR/logs"
OUTPUT=HEADLESS-1
UNAME=$(getent passwd "$UIDN" | cut -d: -f1); UNAME=${UNAME:-testbed}
RUNTIME_PKGS=(sway xdg-desktop-portal xdg-desktop-portal-wlr pipewire wireplumber dbus dbus-bin
              gstreamer1.0-pipewire gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
              gstreamer1.0-plugins-bad python3 python3-gi gir1.2-glib-2.0 gir1.2-gstreamer-1.0 util-linux procps)

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
T0=$(now_ms); LAP=$T0
log() { echo "[testbed] $*"; }
lap() { local t; t=$(now_ms)
        printf '[testbed] %-34s %6d ms (total %6d ms)\n' "$1" $((t - LAP)) $((t - T0)); LAP=$t; }
die() { echo "[testbed] ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers for stop/status
marked_pids() {  # every live process whose environment carries our marker (catches dbus-activated children)
  local p
  for p in /proc/[0-9]*; do
    grep -qzxF "GLASSCAST_TESTBED_DIR=$DIR" "$p/environ" 2>/dev/null && echo "${p#/proc/}"
  done
  return 0
}

do_stop() {
  local -; set +e   # best effort, whatever state the testbed is in
  local pids=() name pid
  if [[ -f $DIR/pids ]]; then
    # reverse start order: content, portal, xdpw, sway, wireplumber, pipewire, dbus
    while read -r name pid; do pids=("$pid" "${pids[@]}"); done < "$DIR/pids"
  fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; sleep 0.05; done
  local extra; extra=$(marked_pids | tr '\n' ' ')
  [[ -n $extra ]] && kill -TERM $extra 2>/dev/null || true
  local i
  for i in $(seq 50); do
    [[ -z $(marked_pids) ]] && break
    sleep 0.1
  done
  extra=$(marked_pids | tr '\n' ' ')
  if [[ -n $extra ]]; then log "SIGKILL $extra"; kill -KILL $extra 2>/dev/null || true; sleep 0.2; fi
  # xdg-document-portal may have mounted a FUSE fs at $RUN/doc
  if [[ -d $RUN ]] && grep -qF " $RUN/" /proc/mounts; then
    grep -F " $RUN/" /proc/mounts | awk '{print $2}' | while read -r m; do
      fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  fi
  rm -rf "$RUN" "$HOMED" "$DIR/env" "$DIR/pids" "$DIR/as-user" "$DIR"/*.conf "$DIR/dbus-services"
  if [[ ${KEEP_LOGS:-1} == 0 ]]; then rm -rf "$LOGS"; rmdir "$DIR" 2>/dev/null || true; fi
}

if [[ $CMD == stop ]]; then
  do_stop; lap "stop"; exit 0
elif [[ $CMD == status ]]; then
  [[ -f $DIR/pids ]] || { echo "not running"; exit 1; }
  rc=0
  while read -r name pid; do
    if kill -0 "$pid" 2>/dev/null; then echo "$name $pid running"; else echo "$name $pid DEAD"; rc=1; fi
  done < "$DIR/pids"
  exit $rc
elif [[ $CMD != start ]]; then
  die "unknown command $CMD (start|stop|status)"
fi

# ---------------------------------------------------------------- start
[[ $(id -u) == 0 ]] || die "run as root (it switches to uid $UIDN itself)"
if [[ -f $DIR/pids ]]; then log "stale testbed in $DIR, stopping it first"; do_stop; fi

missing=()
for p in "${RUNTIME_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ ${TESTBED_APT:-1} == 1 ]] || die "missing packages: ${missing[*]}"
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi
lap "runtime packages"
[[ -n ${TESTBED_XDPW_BIN:-} ]] || "$HERE/build-xdpw.sh" "$CACHE_DIR" | sed 's/^/  /'
XDPW=${TESTBED_XDPW_BIN:-$CACHE_DIR/bin/xdg-desktop-portal-wlr}
[[ -x $XDPW ]] || die "no $XDPW"
setpriv --reuid="$UIDN" --regid="$GIDN" --clear-groups test -x "$XDPW" ||
  die "uid $UIDN cannot execute $XDPW (CACHE_DIR and its parents need o+x)"
lap "patched xdpw"

mkdir -p "$DIR" "$LOGS"
chmod 0755 "$DIR"
rm -rf "$RUN" "$HOMED"
install -d -m 0700 -o "$UIDN" -g "$GIDN" "$RUN" "$HOMED" "$HOMED/.config" "$HOMED/.cache"
chown "$UIDN:$GIDN" "$LOGS"
setpriv --reuid="$UIDN" --regid="$GIDN" --clear-groups test -x "$DIR" ||
  die "uid $UIDN cannot reach $DIR (every parent directory needs o+x)"
: > "$DIR/pids"

BUS="unix:path=$RUN/bus"
# the environment every session process gets (env -i: nothing of root's leaks in)
BASE_ENV=(HOME="$HOMED" USER="$UNAME" LOGNAME="$UNAME" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8
          XDG_RUNTIME_DIR="$RUN" XDG_CONFIG_HOME="$HOMED/.config" XDG_CACHE_HOME="$HOMED/.cache"
          DBUS_SESSION_BUS_ADDRESS="$BUS" XDG_CURRENT_DESKTOP=sway XDG_SESSION_TYPE=wayland
          GLASSCAST_TESTBED_DIR="$DIR")
as_user() { setpriv --reuid="$UIDN" --regid="$GIDN" --clear-groups env -i "${BASE_ENV[@]}" "$@"; }
spawn() {  # spawn NAME [VAR=VAL...] CMD ARGS...   (detached, own session, logs to $LOGS/NAME.log)
  local name=$1; shift
  setsid setpriv --reuid="$UIDN" --regid="$GIDN" --clear-groups env -i "${BASE_ENV[@]}" "$@" \
    < /dev/null > "$LOGS/$name.log" 2>&1 &
  echo "$name $!" >> "$DIR/pids"
}
spawn_root() {  # same, but stays root (only the portal frontend, see TESTBED_ALLOW_ROOT)
  local name=$1; shift
  setsid env -i "${BASE_ENV[@]}" "$@" < /dev/null > "$LOGS/$name.log" 2>&1 &
  echo "$name $!" >> "$DIR/pids"
}
wait_for() {  # wait_for WHAT CMD...   (retries CMD every 50 ms until it succeeds or TIMEOUT)
  local what=$1 i; shift
  for ((i = 0; i < TIMEOUT * 20; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    check_alive
    sleep 0.05
  done
  die "timed out waiting for $what (logs in $LOGS)"
}
check_alive() {
  local name pid
  while read -r name pid; do
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$LOGS/$name.log" >&2 || true; die "$name (pid $pid) died"; }
  done < "$DIR/pids"
}
has_name() { as_user dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
               org.freedesktop.DBus.NameHasOwner "string:$1" | grep -q 'boolean true'; }
check_owner() {  # check_owner BUSNAME PIDS-ENTRY: the name must belong to the process we spawned
  local owner want
  owner=$(as_user dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.GetConnectionUnixProcessID "string:$1" | awk '/uint32/{print $2}')
  want=$(awk -v n="$2" '$1==n{print $2}' "$DIR/pids")
  [[ $owner == "$want" ]] || die "$1 is owned by pid $owner, not by our $2 (pid $want)"
}
trap 'rc=$?; if ((rc)); then log "start failed, stopping"; do_stop; fi' EXIT

# config files
mkdir -p "$DIR/dbus-services"
cat > "$DIR/dbus-services/org.freedesktop.impl.portal.desktop.wlr.service" <<EOF
[D-BUS Service]
Name=org.freedesktop.impl.portal.desktop.wlr
Exec=$XDPW -c $DIR/xdpw.conf
EOF
# The document portal (FUSE mount at \$XDG_RUNTIME_DIR/doc) is not needed for ScreenCast; keep FUSE out of CI.
cat > "$DIR/dbus-services/org.freedesktop.portal.Documents.service" <<EOF
[D-BUS Service]
Name=org.freedesktop.portal.Documents
Exec=/bin/false
EOF
cat > "$DIR/dbus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>$BUS</listen>
  <auth>EXTERNAL</auth>
  <!-- listed first so it wins over /usr/share/dbus-1/services (the unpatched xdpw) -->
  <servicedir>$DIR/dbus-services</servicedir>
  <standard_session_servicedirs/>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
$( [[ ${TESTBED_ALLOW_ROOT:-1} == 1 ]] && echo '    <allow user="root"/>' )
  </policy>
  <limit name="service_start_timeout">30000</limit>
</busconfig>
EOF
cat > "$DIR/sway.conf" <<EOF
# glasscast testbed: no bar, no borders, one known output mode
output $OUTPUT mode $MODE position 0 0 bg #204060 solid_color
default_border none
default_floating_border none
hide_edge_borders both
focus_follows_mouse no
seat * hide_cursor 1000
EOF
cat > "$DIR/xdpw.conf" <<EOF
[screencast]
output_name=$OUTPUT
chooser_type=none
max_fps=30
EOF
chmod 0644 "$DIR"/*.conf "$DIR/dbus-services"/*
lap "prepare $DIR"

# 1. session bus
spawn dbus dbus-daemon --nofork --nopidfile --config-file="$DIR/dbus.conf"
wait_for "dbus socket" has_name org.freedesktop.DBus
lap "dbus-daemon"
# 2./3. PipeWire + session manager
spawn pipewire pipewire
wait_for "pipewire socket" test -S "$RUN/pipewire-0"
spawn wireplumber wireplumber
wp_ready() { as_user pw-cli ls Client | grep -q 'application.name = "WirePlumber"'; }
wait_for "wireplumber" wp_ready
lap "pipewire + wireplumber"
# 4. sway
spawn sway WLR_BACKENDS=headless WLR_LIBINPUT_NO_DEVICES=1 WLR_RENDERER=pixman sway -c "$DIR/sway.conf"
find_sock() { compgen -G "$RUN/$1" | head -n1; }
sway_socks() { [[ -n $(find_sock 'sway-ipc.*.sock') && -n $(find_sock 'wayland-*.lock') ]]; }
wait_for "sway sockets" sway_socks
SWAYSOCK=$(find_sock 'sway-ipc.*.sock')
WL=$(basename "$(find_sock 'wayland-*.lock')" .lock)
BASE_ENV+=(WAYLAND_DISPLAY="$WL" SWAYSOCK="$SWAYSOCK")
sway_output() { as_user swaymsg -t get_outputs | grep -q "\"$OUTPUT\""; }
wait_for "sway output" sway_output
as_user swaymsg output "$OUTPUT" mode "$MODE" >/dev/null
W=${MODE%x*}; H=${MODE#*x}
as_user swaymsg -t get_outputs | /usr/bin/python3 -c "
import json,sys
o=[o for o in json.load(sys.stdin) if o['name']=='$OUTPUT'][0]
m=o['current_mode']; assert (m['width'],m['height'])==($W,$H), m
print('[testbed] sway output', o['name'], '%dx%d'%(m['width'],m['height']))"
lap "sway ($WL)"
# 5. activation environment (for anything dbus activates from now on)
as_user dbus-update-activation-environment WAYLAND_DISPLAY="$WL" XDG_CURRENT_DESKTOP=sway \
  XDG_RUNTIME_DIR="$RUN" SWAYSOCK="$SWAYSOCK" XDG_SESSION_TYPE=wayland
# 6. patched portal backend
# (stdbuf: xdpw logs to stdout; line-buffer it so DIR/logs/xdpw.log is current — portal-check.py reads it)
spawn xdpw XDPW_PERSIST_MODE="${XDPW_PERSIST_MODE-permanent}" stdbuf -oL "$XDPW" -c "$DIR/xdpw.conf" -l INFO
wait_for "org.freedesktop.impl.portal.desktop.wlr" has_name org.freedesktop.impl.portal.desktop.wlr
check_owner org.freedesktop.impl.portal.desktop.wlr xdpw
lap "xdg-desktop-portal-wlr (patched)"
# 7. the portal frontend
if [[ ${TESTBED_ALLOW_ROOT:-1} == 1 ]]; then
  # xdg-desktop-portal 1.16 identifies every caller by opening /proc/PID/root; as uid 65534 it cannot do that for
  # a root caller and answers AccessDenied "Portal operation not allowed: Unable to open /proc/PID/root". Run
  # as root, it serves both root and session-uid callers (it reaches PipeWire and the bus as root can).
  spawn_root portal /usr/libexec/xdg-desktop-portal
else
  spawn portal /usr/libexec/xdg-desktop-portal
fi
# (NameHasOwner first: a method call to an unowned name would dbus-activate a second portal that races ours)
wait_for "org.freedesktop.portal.Desktop" has_name org.freedesktop.portal.Desktop
check_owner org.freedesktop.portal.Desktop portal
portal_ready() { as_user dbus-send --session --print-reply --dest=org.freedesktop.portal.Desktop \
  /org/freedesktop/portal/desktop org.freedesktop.DBus.Properties.Get \
  string:org.freedesktop.portal.ScreenCast string:version | grep -q uint32; }
wait_for "ScreenCast portal" portal_ready
lap "xdg-desktop-portal"
# 8. moving content (full screen, so every frame damages the output)
spawn content gst-launch-1.0 -q videotestsrc pattern=ball is-live=true \
  ! "video/x-raw,width=$W,height=$H,framerate=30/1" ! waylandsink
CONTENT_PID=$(awk '$1=="content"{print $2}' "$DIR/pids")
content_ready() { as_user swaymsg -t get_tree | grep -q "\"pid\": $CONTENT_PID,"; }
wait_for "content window" content_ready
lap "moving content"

# env + helper for clients
cat > "$DIR/env" <<EOF
# glasscast Wayland/ScreenCast testbed (scripts/testbed/wayland-session.sh); source it: . $DIR/env
export DBUS_SESSION_BUS_ADDRESS='$BUS'
export XDG_RUNTIME_DIR='$RUN'
export WAYLAND_DISPLAY='$WL'
export XDG_CURRENT_DESKTOP=sway
export XDG_SESSION_TYPE=wayland
export SWAYSOCK='$SWAYSOCK'
# the session's uid/gid/home: the bus accepts this uid$( [[ ${TESTBED_ALLOW_ROOT:-1} == 1 ]] && echo ' and root')
export GLASSCAST_TESTBED_UID=$UIDN
export GLASSCAST_TESTBED_GID=$GIDN
export GLASSCAST_TESTBED_HOME='$HOMED'
export GLASSCAST_TESTBED_OUTPUT=$OUTPUT
export GLASSCAST_TESTBED_MODE=$MODE
EOF
{
  echo '#!/bin/sh'
  echo "# run a command as the testbed's session user (uid $UIDN) with the testbed environment"
  printf 'exec setpriv --reuid=%s --regid=%s --clear-groups env -i' "$UIDN" "$GIDN"
  for kv in "${BASE_ENV[@]}"; do printf " %q" "$kv"; done
  echo ' "$@"'
} > "$DIR/as-user"
chmod 0755 "$DIR/as-user"; chmod 0644 "$DIR/env" "$DIR/pids"
check_alive
trap - EXIT
log "ready: . $DIR/env   (pids in $DIR/pids, logs in $LOGS)"
lap "start"
