#!/usr/bin/env bash
# pipewire-audio.sh: a private, throwaway PipeWire audio session with a null sink, for tests and CI.
# A GStreamer pipeline in the test process can then capture "desktop audio" from the sink's monitor.
#
# Usage
#   scripts/testbed/pipewire-audio.sh install             apt-get the packages below if missing (sudo if not root)
#   scripts/testbed/pipewire-audio.sh start DIR [SINK]    start a session in DIR; prints DIR/env on stdout
#   scripts/testbed/pipewire-audio.sh check DIR           self-test: 1 kHz tone into SINK, capture SINK.monitor
#   scripts/testbed/pipewire-audio.sh stop DIR            stop the session and remove DIR (idempotent)
#
# start DIR [SINK] (SINK defaults to glasscast_test_sink)
#   DIR becomes the session's private XDG_RUNTIME_DIR (mode 700). It must not exist, be empty, or hold an old
#   session of this script (stopped first). HOME, XDG_CONFIG_HOME, XDG_STATE_HOME and XDG_DATA_HOME of the
#   daemons point under DIR, so nothing touches the real home. Started, each with a clean environment (env -i)
#   and logs in DIR/logs/: a private dbus-daemon (minimal config: no service activation), pipewire,
#   wireplumber (ALSA, V4L2, libcamera and BlueZ monitors switched off, so a developer's real sound cards are
#   never opened by the test session), pipewire-pulse. Then it waits for `pactl info` (10 s), creates SINK with
#   `pw-cli create-node adapter { factory.name=support.null-audio-sink ... object.linger=true }` (falls back
#   to `pactl load-module module-null-sink`), makes it the default sink and waits until WirePlumber reports it
#   as default.audio.sink. Writes:
#     DIR/env    `export KEY=VALUE` lines, no quoting (DIR may only hold [A-Za-z0-9._/+-]), both sourceable
#                and trivially parsed: XDG_RUNTIME_DIR, PIPEWIRE_RUNTIME_DIR, PULSE_SERVER=unix:DIR/pulse/native,
#                PULSE_COOKIE, PULSE_CLIENTCONFIG (so libpulse writes nothing under the real HOME),
#                DBUS_SESSION_BUS_ADDRESS, GLASSCAST_TEST_SINK=SINK, GLASSCAST_TEST_MONITOR=SINK.monitor
#     DIR/pids   "name pid starttime" per daemon (starttime guards stop against pid reuse)
#   All daemons' stdio go to log files, so a caller that captures output (Rust Command::output()) is not held
#   open by them. On failure start prints the logs' tails, cleans up and exits non-zero.
#   Optional: GLASSCAST_PW_OWNER_PID=PID starts a watcher that runs `stop DIR` once PID has exited, so a test
#   process that is killed (no Drop) does not leak daemons.
#
# From a client (a Rust integration test):
#   - glasscast as a child process: `Command::new(..).envs(<DIR/env pairs>)`; its pulsesrc then captures
#     `SINK.monitor` or `@DEFAULT_MONITOR@` (both verified) of the private session.
#   - GStreamer in the test process: either give each pulsesrc/pulsesink `server=unix:DIR/pulse/native`
#     (verified; per element, so parallel tests in one process can use different sessions), or set at least
#     PULSE_SERVER (plus PULSE_COOKIE and PULSE_CLIENTCONFIG, or libpulse creates ~/.config/pulse/cookie in the
#     real HOME) before the first pulse element connects. Env vars are process-wide: one session per process.
#   - Play into SINK with `pulsesink device=SINK`, a plain `pulsesink` (SINK is the default), or
#     `pipewiresink target-object=SINK` (needs XDG_RUNTIME_DIR or PIPEWIRE_RUNTIME_DIR; verified).
#   - Stop with `stop DIR` from a Drop guard, and pass GLASSCAST_PW_OWNER_PID=<test pid> to start as a backstop.
#
# Packages (Debian 12): pipewire pipewire-bin pipewire-pulse wireplumber pulseaudio-utils dbus
#   gstreamer1.0-pulseaudio gstreamer1.0-pipewire gstreamer1.0-plugins-base gstreamer1.0-tools python3
#
# Verified here (2026-11-25: Debian 12, PipeWire 0.3.65, WirePlumber 0.4.13, GStreamer 1.22, 2-core VM, root,
# with another build loading the machine):
#   - PipeWire, WirePlumber and pipewire-pulse run fine as root with a private XDG_RUNTIME_DIR; no setpriv or
#     unprivileged uid is needed. The daemons run as the invoking user and DIR is mode 700, so only that user
#     (or root) can use the session: start it as the user that runs the test.
#   - The private session bus is required: without one WirePlumber 0.4.13 exits at once ("Cannot autolaunch
#     D-Bus without X11 $DISPLAY"), there is no default-sink metadata and nothing gets linked.
#   - Timings: start 120-470 ms (mostly waiting for pactl/WirePlumber), check ~3.4-3.6 s, stop 25-125 ms,
#     the watcher stops a session ~0.6 s after its owner died.
#   - 15 start/check/stop cycles and 6 rounds of two sessions started and checked concurrently in different
#     DIRs with the same sink name passed (the session never failed; two early check failures came from a
#     first analysis, one 2 s Goertzel, tripping over a dropout: replaced by the per-block one below).
#     Sessions are isolated (a tone played in one: digital silence in the other's monitor). No side-by-side
#     conflict found (each has its own sockets, bus and state).
#   - Under load the capture can have short dropouts (256-sample zero runs, a phase jump); check therefore
#     judges 20 ms blocks and tolerates up to 20% bad ones, and prints what it saw. Tests that analyse
#     captured audio should be as tolerant.
#   - A stereo tone downmixed to mono comes out ~1.41x (+3 dB) louder (volume 0.3 -> peak ~13900), so the
#     default volume 0.8 clips: check plays at 0.3.
# Caveats:
#   - GStreamer `pipewiresrc` with stream.capture.sink=true stalled in 0.3.65: capture through pipewire-pulse.
#   - A unix socket path is limited to 108 bytes, so DIR must be short (<= 80 characters, enforced); prefer a
#     mktemp -d under /tmp over one inside target/.
#   - pipewire-pulse on a VM raises its minimum quantum to 1024/48000 (~21 ms), so capture latency is a few
#     tens of ms: fine for functional tests, don't measure latency through it.
#   - stop removes DIR only if it holds the marker file start writes (never a foreign directory).
set -euo pipefail

SCRIPT=$(readlink -f "$0")
MARKER=.glasscast-pipewire-testbed
PKGS=(pipewire pipewire-bin pipewire-pulse wireplumber pulseaudio-utils dbus
  gstreamer1.0-pulseaudio gstreamer1.0-pipewire gstreamer1.0-plugins-base gstreamer1.0-tools python3)

die() { echo "pipewire-audio: $*" >&2; exit 1; }
log() { echo "pipewire-audio: $*" >&2; }
now_ms() { date +%s%3N; }

usage() {
  sed -n '2,/^set -euo/p' "$SCRIPT" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Absolute, validated DIR.
resolve_dir() {
  local d=$1
  [ -n "$d" ] || die "DIR is empty"
  case $d in /*) ;; *) d="$PWD/$d" ;; esac
  d=$(realpath -m -- "$d")
  [[ $d =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR '$d' may only contain A-Z a-z 0-9 . _ / + -"
  [ "$d" != / ] || die "DIR must not be /"
  [ "${#d}" -le 80 ] || die "DIR '$d' is ${#d} characters; keep it <= 80 (unix socket paths are limited to 108 bytes)"
  printf '%s\n' "$d"
}

# Process start time (field 22 of /proc/PID/stat), empty if gone.
starttime() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo "${20}"
}

# True if PID is running (not a zombie) and has the recorded start time.
alive() {
  local pid=$1 st=$2 s
  s=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  [ "$1" != Z ] && [ "$1" != X ] && [ "${20}" = "$st" ]
}

# wait_for TENTHS CMD...: retry CMD every 0.1 s until it succeeds or TENTHS tries have passed.
wait_for() {
  local n=$1; shift
  local i
  for ((i = 0; i < n; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

cmd_install() {
  local sudo="" missing=() p
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo; install these yourself: ${PKGS[*]}"
    sudo=sudo
  fi
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "packages present"
    return 0
  fi
  command -v apt-get >/dev/null || die "no apt-get; install the equivalents of: ${missing[*]}"
  log "installing ${missing[*]}"
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
    --no-install-recommends "${missing[@]}"
}

# Environment for the daemons: clean, everything under DIR.
daemon_env() {
  local dir=$1
  echo env -i "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "LANG=C.UTF-8" \
    "USER=$(id -un)" "HOME=$dir/home" "XDG_RUNTIME_DIR=$dir" "PIPEWIRE_RUNTIME_DIR=$dir" \
    "XDG_CONFIG_HOME=$dir/config" "XDG_STATE_HOME=$dir/state" "XDG_DATA_HOME=$dir/data" \
    "XDG_CACHE_HOME=$dir/cache" "DBUS_SESSION_BUS_ADDRESS=unix:path=$dir/bus" \
    "PULSE_COOKIE=$dir/client/cookie" "PULSE_CLIENTCONFIG=$dir/client/client.conf"
}

# Run a client tool (pactl, pw-cli, pw-metadata) against the session in DIR, with a timeout.
in_session() {
  local dir=$1; shift
  # shellcheck disable=SC2046
  timeout 5 $(daemon_env "$dir") "PULSE_SERVER=unix:$dir/pulse/native" "$@"
}

record_pid() {
  local dir=$1 name=$2 pid=$3
  local st
  st=$(starttime "$pid")
  [ -n "$st" ] || { log "$name (pid $pid) exited at once"; return 1; }
  echo "$name $pid $st" >>"$dir/pids"
}

dump_logs() {
  local dir=$1 f
  for f in "$dir"/logs/*.log; do
    [ -s "$f" ] || continue
    echo "---- ${f##*/} (last 20 lines)" >&2
    tail -n 20 "$f" >&2
  done
}

# Kill what DIR/pids lists, remove DIR if it is ours.
stop_session() {
  local dir=$1 name pid st i j left=0
  [ -d "$dir" ] || return 0
  if [ -f "$dir/pids" ]; then
    local pids=() sts=()
    while read -r name pid st; do
      [ -n "${pid:-}" ] || continue
      # The watcher execs this very stop (same pid): don't kill ourselves.
      [ "$pid" = "$$" ] && continue
      if alive "$pid" "$st"; then
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid"); sts+=("$st")
      fi
    done <"$dir/pids"
    for ((i = 0; i < 50; i++)); do
      left=0
      for j in "${!pids[@]}"; do alive "${pids[$j]}" "${sts[$j]}" && left=1; done
      [ "$left" -eq 0 ] && break
      sleep 0.1
    done
    if [ "$left" -eq 1 ]; then
      for j in "${!pids[@]}"; do
        if alive "${pids[$j]}" "${sts[$j]}"; then
          log "pid ${pids[$j]} ignored SIGTERM; SIGKILL"
          kill -KILL "${pids[$j]}" 2>/dev/null || true
        fi
      done
      sleep 0.2
    fi
  fi
  if [ -e "$dir/$MARKER" ]; then
    rm -rf -- "$dir"
  else
    log "$dir has no $MARKER: not removing it"
  fi
}

cmd_start() {
  local dir sink t0
  dir=$(resolve_dir "${1:-}")
  sink=${2:-glasscast_test_sink}
  [[ $sink =~ ^[A-Za-z0-9._-]+$ ]] || die "SINK '$sink' may only contain A-Z a-z 0-9 . _ -"
  t0=$(now_ms)
  local bin
  for bin in dbus-daemon pipewire wireplumber pipewire-pulse pw-cli pw-metadata pactl; do
    command -v "$bin" >/dev/null || die "$bin not found; run: $SCRIPT install"
  done

  if [ -e "$dir" ]; then
    [ -d "$dir" ] || die "$dir exists and is not a directory"
    if [ -e "$dir/$MARKER" ]; then
      if [ -f "$dir/pids" ]; then
        local name pid st
        while read -r name pid st; do
          [ "$name" = watcher ] && continue
          alive "$pid" "$st" && die "a session is already running in $dir (stop it first)"
        done <"$dir/pids"
      fi
      log "removing a stale session in $dir"
      stop_session "$dir"
    elif [ -n "$(ls -A "$dir")" ]; then
      die "$dir exists, is not empty and is not a session of this script"
    fi
  fi
  mkdir -p "$dir"
  chmod 700 "$dir"
  touch "$dir/$MARKER"
  mkdir -m 700 "$dir"/{home,config,state,data,cache,client,logs}
  : >"$dir/pids"
  echo "$sink" >"$dir/sink"
  printf 'autospawn = no\n' >"$dir/client/client.conf"

  # If anything below fails: show the logs, tear down, fail.
  START_DIR=$dir
  # shellcheck disable=SC2154
  trap 'rc=$?; if [ $rc -ne 0 ]; then log "start failed"; dump_logs "$START_DIR"; stop_session "$START_DIR"; fi' EXIT

  # WirePlumber: no device monitors (never touch real sound cards, cameras or Bluetooth).
  mkdir -p "$dir/config/wireplumber/main.lua.d" "$dir/config/wireplumber/bluetooth.lua.d"
  printf '%s\n' 'alsa_monitor.enabled = false' 'v4l2_monitor.enabled = false' \
    'libcamera_monitor.enabled = false' >"$dir/config/wireplumber/main.lua.d/51-glasscast-testbed.lua"
  printf '%s\n' 'bluez_monitor.enabled = false' \
    >"$dir/config/wireplumber/bluetooth.lua.d/51-glasscast-testbed.lua"

  # A minimal session bus: no service activation, so it never spawns anything we would not track.
  cat >"$dir/dbus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$dir/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF

  local envv
  # shellcheck disable=SC2207
  envv=($(daemon_env "$dir"))
  local pid
  "${envv[@]}" dbus-daemon --config-file="$dir/dbus.conf" --nofork --nopidfile \
    </dev/null >>"$dir/logs/dbus.log" 2>&1 &
  pid=$!
  record_pid "$dir" dbus-daemon "$pid"
  wait_for 100 test -S "$dir/bus" || die "dbus-daemon did not create $dir/bus"

  "${envv[@]}" pipewire </dev/null >>"$dir/logs/pipewire.log" 2>&1 &
  pid=$!
  record_pid "$dir" pipewire "$pid"
  wait_for 100 test -S "$dir/pipewire-0" || die "pipewire did not create $dir/pipewire-0"

  "${envv[@]}" wireplumber </dev/null >>"$dir/logs/wireplumber.log" 2>&1 &
  pid=$!
  record_pid "$dir" wireplumber "$pid"

  "${envv[@]}" pipewire-pulse </dev/null >>"$dir/logs/pipewire-pulse.log" 2>&1 &
  pid=$!
  record_pid "$dir" pipewire-pulse "$pid"

  wait_for 100 in_session "$dir" pactl info || die "pactl info did not answer within 10 s"

  # The null sink.
  if ! in_session "$dir" pw-cli create-node adapter "{ factory.name=support.null-audio-sink node.name=$sink \
media.class=Audio/Sink object.linger=true audio.position=[FL FR] }" >>"$dir/logs/pw-cli.log" 2>&1; then
    log "pw-cli create-node failed; trying pactl load-module module-null-sink"
    in_session "$dir" pactl load-module module-null-sink "sink_name=$sink" >>"$dir/logs/pw-cli.log" 2>&1 ||
      die "could not create the null sink $sink"
  fi
  sink_listed() { in_session "$dir" pactl list short sinks | awk '{print $2}' | grep -qx "$sink"; }
  wait_for 50 sink_listed || die "sink $sink did not appear"

  # Default sink (and its monitor as default source); WirePlumber must confirm it.
  in_session "$dir" pactl set-default-sink "$sink" || die "pactl set-default-sink $sink failed"
  default_is_ours() {
    in_session "$dir" pw-metadata -n default 0 default.audio.sink 2>/dev/null | grep -q "\"name\":\"$sink\""
  }
  wait_for 50 default_is_ours || die "WirePlumber did not make $sink the default sink"
  in_session "$dir" pactl set-default-source "$sink.monitor" >/dev/null 2>&1 || true

  # Every daemon still up?
  local name st
  while read -r name pid st; do
    alive "$pid" "$st" || die "$name (pid $pid) died during start"
  done <"$dir/pids"

  cat >"$dir/env" <<EOF
export XDG_RUNTIME_DIR=$dir
export PIPEWIRE_RUNTIME_DIR=$dir
export PULSE_SERVER=unix:$dir/pulse/native
export PULSE_COOKIE=$dir/client/cookie
export PULSE_CLIENTCONFIG=$dir/client/client.conf
export DBUS_SESSION_BUS_ADDRESS=unix:path=$dir/bus
export GLASSCAST_TEST_SINK=$sink
export GLASSCAST_TEST_MONITOR=$sink.monitor
EOF

  # Optional watcher: stop the session when the owner process is gone.
  if [ -n "${GLASSCAST_PW_OWNER_PID:-}" ]; then
    local owner=$GLASSCAST_PW_OWNER_PID owner_st
    owner_st=$(starttime "$owner")
    [ -n "$owner_st" ] || die "GLASSCAST_PW_OWNER_PID=$owner is not running"
    (
      trap '' INT HUP
      while [ "$(starttime "$owner")" = "$owner_st" ]; do sleep 1; done
      exec "$SCRIPT" stop "$dir"
    ) </dev/null >>"$dir/logs/watcher.log" 2>&1 &
    record_pid "$dir" watcher "$!"
  fi

  trap - EXIT
  log "session ready in $(($(now_ms) - t0)) ms: sink $sink, monitor $sink.monitor"
  echo "$dir/env"
}

cmd_stop() {
  local dir
  dir=$(resolve_dir "${1:-}")
  stop_session "$dir"
}

cmd_check() {
  local dir sink tmp
  dir=$(resolve_dir "${1:-}")
  [ -f "$dir/env" ] || die "no session in $dir (no $dir/env)"
  sink=$(cat "$dir/sink")
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  (
    # shellcheck disable=SC1091
    . "$dir/env"
    # 3 s of a 1 kHz tone (300 buffers of 10 ms), then 2 s of capture of the monitor starting 0.5 s in.
    timeout 20 gst-launch-1.0 -q audiotestsrc freq=1000 volume=0.3 is-live=true samplesperbuffer=480 \
      num-buffers=300 ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! pulsesink device="$sink" \
      >"$tmp/play.log" 2>&1 &
    play=$!
    sleep 0.5
    cap_rc=0
    timeout 20 gst-launch-1.0 -q pulsesrc device="$sink.monitor" num-buffers=200 ! audioconvert ! \
      audio/x-raw,format=S16LE,rate=48000,channels=1 ! filesink location="$tmp/cap.raw" \
      >"$tmp/cap.log" 2>&1 || cap_rc=$?
    play_rc=0
    wait "$play" || play_rc=$?
    if [ "$cap_rc" -ne 0 ] || [ "$play_rc" -ne 0 ]; then
      echo "pipewire-audio: check: gst-launch failed (capture rc=$cap_rc, playback rc=$play_rc)" >&2
      tail -n 20 "$tmp/cap.log" "$tmp/play.log" >&2
      exit 1
    fi
  )
  python3 - "$tmp/cap.raw" <<'EOF'
# Verdict on the capture, per 20 ms block (exactly 20 periods of 1 kHz): a block is "tone" when 1 kHz holds
# > 80% of its energy. Dropouts (zero runs, a phase jump) happen on a loaded 2-core VM, so a few bad blocks
# are reported but tolerated; silence or a wrong frequency fails.
import array, math, sys

RATE, F, BLOCK = 48000, 1000, 960
data = open(sys.argv[1], "rb").read()
s = array.array("h")
s.frombytes(data[: len(data) // 2 * 2])
if sys.byteorder != "little":
    s.byteswap()
n = len(s)
if n < RATE:
    sys.exit(f"pipewire-audio: check FAILED: captured only {n / RATE:.2f} s of audio (want 2 s)")
peak = max(abs(x) for x in s)
# Skip the stream's silent lead-in (a few ms), analyse the rest.
first = next((i for i, x in enumerate(s) if abs(x) > 300), n)
tone = s[first:]
m = len(tone)
if m < RATE // 2:
    sys.exit(f"pipewire-audio: check FAILED: silence ({n / RATE:.2f} s captured, peak {peak})")
energy = sum(x * x for x in tone)
dbfs = 20 * math.log10(math.sqrt(energy / m) / 32768) if energy else -999.0

def share(block, f):
    """Fraction of the block's energy at frequency f (Goertzel; 1.0 for a pure tone at f)."""
    e = sum(x * x for x in block)
    if not e:
        return 0.0
    c = 2 * math.cos(2 * math.pi * f / RATE)
    p1 = p2 = 0.0
    for x in block:
        p1, p2 = x + c * p1 - p2, p1
    return (p1 * p1 + p2 * p2 - c * p1 * p2) * 2 / len(block) / e

blocks = [tone[i : i + BLOCK] for i in range(0, m - BLOCK + 1, BLOCK)]
others = (250, 500, 750, 1250, 1500, 2000, 4000)
good = silent = 0
for b in blocks:
    if max(abs(x) for x in b) < 100:
        silent += 1
        continue
    sf = share(b, F)
    if sf > 0.8 and all(share(b, o) < sf for o in others):
        good += 1
zc = sum(1 for i in range(1, m) if (tone[i - 1] < 0) != (tone[i] < 0))
zc_freq = zc / 2 / (m / RATE)
zero_runs = 0
run = 0
for x in tone:
    run = run + 1 if x == 0 else 0
    if run == 32:
        zero_runs += 1
clipped = sum(1 for x in tone if x in (32767, -32768))
summary = (f"{n / RATE:.2f} s captured, {first * 1000 // RATE} ms lead-in, {dbfs:.1f} dBFS rms, "
           f"zero-crossing estimate {zc_freq:.1f} Hz, {good}/{len(blocks)} 20-ms blocks are 1 kHz, "
           f"{silent} silent blocks, {zero_runs} dropouts, {clipped} clipped samples")
if dbfs < -30:
    sys.exit(f"pipewire-audio: check FAILED (level too low): {summary}")
if good < 0.8 * len(blocks) or abs(zc_freq - F) > 0.05 * F:
    sys.exit(f"pipewire-audio: check FAILED (not a 1 kHz tone): {summary}")
print(f"pipewire-audio: check ok: {summary}", file=sys.stderr)
EOF
}

case "${1:-}" in
  install) cmd_install ;;
  start) shift; [ $# -ge 1 ] || usage; cmd_start "$@" ;;
  stop) shift; [ $# -eq 1 ] || usage; cmd_stop "$1" ;;
  check) shift; [ $# -eq 1 ] || usage; cmd_check "$1" ;;
  *) usage ;;
esac
