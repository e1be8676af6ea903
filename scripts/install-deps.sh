#!/usr/bin/env bash
# Installs what glasscast needs that this Debian/Ubuntu/Pop!_OS machine lacks, and nothing else.
#   scripts/install-deps.sh          build + run: GStreamer (dev + plugins), libnice, a Rust toolchain >= 1.95
#   scripts/install-deps.sh --test   also what `make test` needs: Chromium, Firefox, Node.js + npm, playwright-core
#                                    and puppeteer-core, Xvfb,
#                                    Podman + podman-compose, coturn, Janus, aiortc (a venv)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo; install the packages below yourself" >&2; exit 1; }
  sudo="sudo"
fi

pkgs=(build-essential pkg-config curl ca-certificates libssl-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-nice gstreamer1.0-libav gstreamer1.0-tools libnice-dev
  gstreamer1.0-x gstreamer1.0-pulseaudio)
if [ "$want_test" -eq 1 ]; then
  # X11 capture is tested against a virtual X server, desktop audio against a private PipeWire session
  # (scripts/testbed/pipewire-audio.sh), portal capture against headless sway + xdg-desktop-portal
  # (scripts/testbed/wayland-session.sh, which builds its patched portal backend itself), feeds against a
  # stand-in RTSP camera (scripts/testbed/rtsp-camera.py).
  pkgs+=(xvfb pipewire pipewire-bin pipewire-pulse wireplumber pulseaudio-utils dbus gstreamer1.0-pipewire
    sway xdg-desktop-portal xdg-desktop-portal-wlr python3-gi gir1.2-gst-rtsp-server-1.0)
  # The container image and compose.yaml (tests/testbeds/container.rs): Podman, a local Debian base image made with
  # debootstrap, catatonit for `init: true`, and a venv for podman-compose (below).
  pkgs+=(podman buildah slirp4netns runc catatonit debootstrap python3-venv)
  # scripts/install.sh's tests (tests/api/install.rs): shellcheck, and systemd-analyze to verify the units.
  pkgs+=(shellcheck systemd)
  # Network testbeds (tests/media/reach.rs): namespaces, veth and NAT with nftables; curl to probe readiness.
  pkgs+=(iproute2 nftables curl)
  # TURN (tests/media/reach.rs): coturn, started by the test itself with use-auth-secret (REST credentials).
  pkgs+=(coturn)
  # SFU cascade (tests/media/janus_cascade.rs): Janus with its VideoRoom plugin, started by the test itself.
  pkgs+=(janus)
  # The admin console (tests/api/admin_console.rs): zbarimg reads the QR code the page shows; promtool checks
  # and unit-tests docs/alerts.yml.
  pkgs+=(zbar-tools prometheus)
  # Recording (tests/media/recording.rs): ffprobe and GStreamer's discoverer read the files back; util-linux's
  # unshare gives the full-disk test a tmpfs in a mount namespace of its own.
  pkgs+=(ffmpeg gstreamer1.0-plugins-base-apps util-linux)
  # Any Node.js >= 18 with npm will do (NodeSource's nodejs bundles npm and conflicts with Debian's).
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
  # Firefox (tests/media/vp8.rs, driven by puppeteer-core): Debian's firefox-esr, else a firefox deb (Pop!_OS).
  if ! command -v firefox-esr >/dev/null && ! command -v firefox >/dev/null; then
    if apt-cache show firefox-esr >/dev/null 2>&1; then pkgs+=(firefox-esr); else pkgs+=(firefox); fi
  fi
  # Debian calls it chromium; Ubuntu's chromium-browser is a snap wrapper, Pop!_OS ships a deb.
  if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    if apt-cache show chromium >/dev/null 2>&1; then pkgs+=(chromium); else pkgs+=(chromium-browser); fi
  fi
fi

if ! command -v apt-get >/dev/null; then
  echo "install-deps: no apt-get here; install the equivalents of: ${pkgs[*]}" >&2
  exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: system packages present"
fi

# Rust >= 1.95 (edition 2024). Distribution rustc packages are older, so use rustup when needed.
export PATH="$HOME/.cargo/bin:$PATH"
rust_ok() {
  command -v cargo >/dev/null || return 1
  local v; v=$(rustc --version | awk '{print $2}')
  [ "$(printf '%s\n1.95.0\n' "$v" | sort -V | head -n1)" = "1.95.0" ]
}
if ! rust_ok; then
  if command -v rustup >/dev/null; then
    echo "install-deps: updating the Rust toolchain (rustup update stable)"
    rustup update stable
  else
    echo "install-deps: installing Rust with rustup into ~/.cargo (https://rustup.rs)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  fi
  rust_ok || { echo "install-deps: Rust >= 1.95 is still missing" >&2; exit 1; }
fi

# podman-compose >= 1.1 from PyPI (Debian 12's 1.0.3 puts a `network_mode: host` service on a bridge
# network anyway), pinned, in its own virtualenv so it cannot clash with Debian's Python packages.
podman_compose_ok() {
  local v; v=$(podman-compose version 2>/dev/null | sed -n 's/^podman-compose version \([0-9.]*\).*/\1/p' | head -n1)
  [ -n "$v" ] && [ "$(printf '%s\n1.1.0\n' "$v" | sort -V | head -n1)" = "1.1.0" ]
}
if [ "$want_test" -eq 1 ] && ! podman_compose_ok; then
  echo "install-deps: installing podman-compose 1.6.0 (pip, into /usr/local/lib/podman-compose)"
  $sudo /usr/bin/python3 -m venv /usr/local/lib/podman-compose
  $sudo /usr/local/lib/podman-compose/bin/pip install -q --disable-pip-version-check podman-compose==1.6.0
  $sudo ln -sf /usr/local/lib/podman-compose/bin/podman-compose /usr/local/bin/podman-compose
fi

# aiortc (a Python WebRTC stack that is not ours) for the WHIP/WHEP interop tests (tests/peers/aiortc_peer.py),
# pinned, in its own virtualenv; its PyAV wheel brings the H.264 encoder and decoder.
aiortc_venv=/usr/local/lib/glasscast-aiortc
if [ "$want_test" -eq 1 ] && ! "$aiortc_venv/bin/python" -c 'import aiortc, av' 2>/dev/null; then
  echo "install-deps: installing aiortc 1.16.0 (pip, into $aiortc_venv)"
  $sudo /usr/bin/python3 -m venv "$aiortc_venv"
  $sudo "$aiortc_venv/bin/pip" install -q --disable-pip-version-check aiortc==1.16.0 av==18.1.0
fi

if [ "$want_test" -eq 1 ] && { [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/puppeteer-core ]; }; then
  echo "install-deps: installing playwright-core and puppeteer-core (npm ci; no browser download)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund
fi

# The media port asks for a 4 MiB UDP receive buffer (src/media/forward/udp.rs), which Linux caps at
# net.core.rmem_max (often 208 KiB): tests/load/junk_flood.rs checks that a flood drops nothing. Raised for the
# running kernel only; a service host keeps it with a sysctl.d file (docs/operations.md).
if [ "$want_test" -eq 1 ] && [ "$(cat /proc/sys/net/core/rmem_max 2>/dev/null || echo 0)" -lt 4194304 ]; then
  echo "install-deps: raising net.core.rmem_max to 4194304 (the media port's receive buffer)"
  $sudo sysctl -q -w net.core.rmem_max=4194304 || echo "install-deps: could not raise net.core.rmem_max" >&2
fi
