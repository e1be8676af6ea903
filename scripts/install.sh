#!/usr/bin/env bash
# Installs (or upgrades) glasscast as a systemd service. docs/operations.md describes it in full.
#
#   scripts/install.sh [--binary PATH]   the binary (default target/release/glasscast) to PREFIX/bin, the
#                                        system service glasscast.service, the configuration (first time)
#   scripts/install.sh --user-unit       the binary and the `systemd --user` unit (portal capture)
#   scripts/install.sh --container       the Podman Quadlet unit running localhost/glasscast:latest instead
#   scripts/install.sh --rollback        put the previous binary back (a second --rollback undoes it)
#
# Options: --prefix DIR (default /usr/local), --root DIR (install into DIR as if it were /; never touches
# systemd or users on this host), --dry-run (print what would be done, change nothing), --no-start (do not
# enable, start or restart the service).
#
# Every file is written to a temporary name in its directory and renamed into place. The configuration
# (/etc/glasscast/glasscast.toml) is written only when missing; when it differs from the shipped default,
# the default goes to glasscast.toml.new beside it. The binary it replaces is kept as
# PREFIX/lib/glasscast/glasscast.previous. Running it twice changes nothing the second time.
set -euo pipefail
umask 022

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
binary="$src/target/release/glasscast"
prefix=/usr/local
root=""
mode=system
dry_run=0
no_start=0
rollback=0

usage() { sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
die() { echo "install: $*" >&2; exit 1; }
say() { echo "install: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=${2:?--binary needs a path}; shift ;;
    --binary=*) binary=${1#*=} ;;
    --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
    --prefix=*) prefix=${1#*=} ;;
    --root) root=${2:?--root needs a directory}; shift ;;
    --root=*) root=${1#*=} ;;
    --container) mode=container ;;
    --user-unit) mode=user ;;
    --rollback) rollback=1 ;;
    --dry-run) dry_run=1 ;;
    --no-start) no_start=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

# shellcheck source=install-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/install-common.sh"
check_prefix_and_root
bin_dest="$R$prefix/bin/glasscast"
lib_dir="$R$prefix/lib/glasscast"
previous="$lib_dir/glasscast.previous"
conf_dir="$R/etc/glasscast"
conf="$conf_dir/glasscast.toml"
unit="$R/etc/systemd/system/glasscast.service"
user_unit="$R/etc/systemd/user/glasscast.service"
quadlet="$R/etc/containers/systemd/glasscast.container"
state_dir="$R/var/lib/glasscast"

# systemctl only on this host's own systemd: not with --root, not where systemd is not running.
host_systemd=0
if [ -z "$root" ] && [ -d /run/systemd/system ]; then host_systemd=1; fi
if [ -z "$root" ] && [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo $0 ...), or use --root DIR or --dry-run"
fi

# Temporary files of an interrupted run are removed; the files they were to replace are untouched.
tmp_files=()
# shellcheck disable=SC2317 # called by the trap
cleanup() { if [ ${#tmp_files[@]} -gt 0 ]; then rm -f "${tmp_files[@]}"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ensure_dir() { # DIR MODE
  [ -d "$1" ] && return 0
  if [ "$dry_run" -eq 1 ]; then say "would create directory $1"; return 0; fi
  mkdir -p "$1"
  chmod "$2" "$1"
}

changed=0
# put SRC DEST MODE: DEST gets SRC's content and MODE through a temporary file and a rename; nothing is
# written when it already has both. Sets changed=1 when it writes.
put() {
  local src=$1 dest=$2 mode=$3 tmp
  if [ -f "$dest" ] && [ ! -L "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "$mode" ]; then
    return 0
  fi
  changed=1
  if [ "$dry_run" -eq 1 ]; then say "would write $dest (mode $mode)"; return 0; fi
  ensure_dir "$(dirname "$dest")" 755
  tmp=$(mktemp "$(dirname "$dest")/.$(basename "$dest").XXXXXX")
  tmp_files+=("$tmp")
  cat "$src" >"$tmp"
  chmod "$mode" "$tmp"
  sync "$tmp"
  mv -f "$tmp" "$dest"
  say "wrote $dest"
}

# systemctl ARGS...: run on this host, or say what to run.
systemctl_() {
  if [ "$dry_run" -eq 1 ]; then say "would run: systemctl $*"
  elif [ "$host_systemd" -eq 1 ]; then say "systemctl $*"; systemctl "$@"
  elif [ -n "$root" ]; then say "skipped (--root): systemctl $*"
  else say "skipped (systemd is not running here): systemctl $*"
  fi
}

short_hash() { sha256sum "$1" | cut -c1-12; }

# The unit as installed: its binary path follows --prefix.
render_unit() { sed "s|/usr/local/bin/glasscast|$prefix/bin/glasscast|g" "$1"; }
rendered=$(mktemp)
tmp_files+=("$rendered")

# Installing one way over another would leave two glasscast.service units fighting for the same ports.
refuse_if_present() { # PATH WHAT
  [ -e "$1" ] && die "$2 is installed ($1); remove it first with scripts/uninstall.sh (config and state are kept)"
  return 0
}

install_config() {
  local default="$src/config/glasscast.toml"
  ensure_dir "$conf_dir" 755
  if [ ! -e "$conf" ]; then
    put "$default" "$conf" 644
  elif cmp -s "$default" "$conf"; then
    put "$default" "$conf" 644 # only fixes the mode, if needed
  else
    put "$default" "$conf.new" 644
    say "kept $conf (it differs from the shipped default, which is in $conf.new: diff -u $conf $conf.new)"
  fi
}

install_binary() {
  if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
    die "no executable at $binary (build it: cargo build --release --locked, or pass --binary PATH)"
  fi
  if [ -z "$root" ]; then
    # Before anything changes: the new binary must run here and accept the configuration it will serve.
    local cfg="$conf" out
    [ -e "$cfg" ] || cfg="$src/config/glasscast.toml"
    out=$("$binary" --config "$cfg" check-config 2>&1 >/dev/null) ||
      die "$binary rejects $cfg, nothing was changed: $out"
    say "new binary: $("$binary" --version 2>/dev/null || echo '(no version)')"
  fi
  if [ -f "$bin_dest" ] && cmp -s "$binary" "$bin_dest"; then
    put "$binary" "$bin_dest" 755
    return 0
  fi
  if [ -f "$bin_dest" ]; then
    ensure_dir "$lib_dir" 755
    put "$bin_dest" "$previous" 755
    if [ "$dry_run" -eq 0 ]; then say "kept the binary it replaces (sha256 $(short_hash "$bin_dest")) as $previous"; fi
  fi
  put "$binary" "$bin_dest" 755
  restart=1
}

do_rollback() {
  [ "$mode" = system ] || [ "$mode" = user ] || die "--rollback is for binary installs; a container rolls back by image tag (docs/operations.md)"
  [ -f "$previous" ] || die "no previous binary at $previous: nothing to roll back to"
  [ -f "$bin_dest" ] || die "no installed binary at $bin_dest"
  if cmp -s "$previous" "$bin_dest"; then say "$previous is the installed binary already; nothing to do"; return 0; fi
  if [ "$dry_run" -eq 1 ]; then
    say "would swap $bin_dest (sha256 $(short_hash "$bin_dest")) and $previous (sha256 $(short_hash "$previous"))"
  else
    # Swap: the binary rolled back from becomes the previous one, so a second --rollback undoes this one.
    local keep
    keep=$(mktemp "$lib_dir/.glasscast.XXXXXX")
    tmp_files+=("$keep")
    cat "$bin_dest" >"$keep"
    chmod 755 "$keep"
    sync "$keep"
    put "$previous" "$bin_dest" 755
    mv -f "$keep" "$previous"
    say "rolled back: $bin_dest is sha256 $(short_hash "$bin_dest"), $previous is sha256 $(short_hash "$previous")"
  fi
  if [ -e "$unit" ]; then
    if [ "$no_start" -eq 1 ]; then say "not restarted (--no-start): systemctl restart glasscast"
    else systemctl_ restart glasscast
    fi
  elif [ -e "$user_unit" ]; then
    say "each user running it: systemctl --user restart glasscast"
  fi
}

# start_service GENERATED: reload systemd, enable (not a generated Quadlet unit: its [Install] section does
# that) and start glasscast, or restart it when its binary or unit changed.
start_service() {
  systemctl_ daemon-reload
  if [ "$no_start" -eq 1 ]; then
    if [ "$1" -eq 1 ]; then say "not started (--no-start): systemctl start glasscast"
    else say "not enabled or started (--no-start): systemctl enable --now glasscast"
    fi
    return 0
  fi
  if [ "$1" -eq 0 ]; then systemctl_ enable glasscast; fi
  local verb=start
  if [ "$restart" -eq 1 ]; then verb=restart; fi
  if [ "$host_systemd" -eq 1 ] && [ "$dry_run" -eq 0 ]; then
    say "systemctl $verb glasscast"
    systemctl "$verb" glasscast ||
      die "glasscast did not start: journalctl -u glasscast -n 50; scripts/install.sh --rollback restores the previous binary"
  else
    systemctl_ "$verb" glasscast
  fi
}

# put_unit SRC DEST: like put; a changed unit means a restart.
put_unit() {
  local before=$changed
  changed=0
  put "$1" "$2" 644
  if [ "$changed" -eq 1 ]; then restart=1; else changed=$before; fi
}

restart=0
if [ "$rollback" -eq 1 ]; then
  do_rollback
  exit 0
fi

case "$mode" in
  system)
    refuse_if_present "$quadlet" "the container (Quadlet) unit"
    refuse_if_present "$user_unit" "the systemd --user unit"
    render_unit "$src/packaging/systemd/glasscast.service" >"$rendered"
    install_binary
    install_config
    put_unit "$rendered" "$unit"
    start_service 0
    if [ "$host_systemd" -eq 1 ] && [ "$dry_run" -eq 0 ]; then
      say "logs: journalctl -u glasscast; viewer links: sudo glasscast token issue --stream NAME (docs/operations.md)"
    fi
    ;;
  user)
    refuse_if_present "$quadlet" "the container (Quadlet) unit"
    refuse_if_present "$unit" "the system service"
    render_unit "$src/packaging/systemd/glasscast-user.service" >"$rendered"
    install_binary
    install_config
    put_unit "$rendered" "$user_unit"
    say "as the desktop user: systemctl --user daemon-reload && systemctl --user enable --now glasscast"
    if [ "$restart" -eq 1 ]; then say "(already running? then: systemctl --user restart glasscast)"; fi
    ;;
  container)
    refuse_if_present "$unit" "the system service"
    refuse_if_present "$user_unit" "the systemd --user unit"
    if [ -z "$root" ] && [ "$dry_run" -eq 0 ]; then
      command -v podman >/dev/null || die "podman is not installed"
      [ -x /usr/lib/systemd/system-generators/podman-system-generator ] || [ -x /usr/libexec/podman/quadlet ] ||
        die "this Podman ($(podman --version)) has no Quadlet (needs 4.4 or later); see docs/container.md for other ways"
    fi
    install_config
    put_unit "$src/packaging/quadlet/glasscast.container" "$quadlet"
    ensure_dir "$state_dir" 700
    if [ "$host_systemd" -eq 1 ] && [ "$dry_run" -eq 0 ] && ! podman image exists localhost/glasscast:latest; then
      systemctl_ daemon-reload
      say "no image localhost/glasscast:latest yet: build it (docs/container.md), then systemctl start glasscast"
    else
      start_service 1
    fi
    ;;
esac
if [ "$changed" -eq 0 ]; then say "everything was up to date"; fi
exit 0
