#!/usr/bin/env bash
# Removes what scripts/install.sh installed: the binary and the previous one, the system, user and Quadlet
# units, and the service's cache. Keeps the configuration (/etc/glasscast) and the state (/var/lib/glasscast:
# certificate, admin token, viewer-token keys) unless --purge, which removes them and the drop-ins of
# `systemctl edit glasscast` too. docs/operations.md describes it in full.
#
#   scripts/uninstall.sh [--purge] [--prefix DIR] [--root DIR] [--dry-run]
#
# --prefix must be the one install.sh was given (default /usr/local). --root DIR removes from DIR as if it
# were / and never touches systemd on this host. --dry-run prints what would be removed and changes nothing.
# Running it twice is fine: what is gone is skipped.
set -euo pipefail

prefix=/usr/local
root=""
purge=0
dry_run=0

usage() { sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
die() { echo "uninstall: $*" >&2; exit 1; }
say() { echo "uninstall: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
    --prefix=*) prefix=${1#*=} ;;
    --root) root=${2:?--root needs a directory}; shift ;;
    --root=*) root=${1#*=} ;;
    --purge) purge=1 ;;
    --dry-run) dry_run=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

# shellcheck source=install-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/install-common.sh"
check_prefix_and_root

host_systemd=0
if [ -z "$root" ] && [ -d /run/systemd/system ]; then host_systemd=1; fi
if [ -z "$root" ] && [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo $0 ...), or use --root DIR or --dry-run"
fi

systemctl_() {
  if [ "$dry_run" -eq 1 ]; then say "would run: systemctl $*"
  elif [ "$host_systemd" -eq 1 ]; then say "systemctl $*"; systemctl "$@" || true
  elif [ -n "$root" ]; then say "skipped (--root): systemctl $*"
  else say "skipped (systemd is not running here): systemctl $*"
  fi
}

removed=0
# remove PATH...: removes each that exists (a directory with its contents; a symlink itself, not its target).
remove() {
  local p
  for p in "$@"; do
    if [ -e "$p" ] || [ -L "$p" ]; then
      removed=1
      if [ "$dry_run" -eq 1 ]; then say "would remove $p"; else rm -rf -- "$p"; say "removed $p"; fi
    fi
  done
}

unit="$R/etc/systemd/system/glasscast.service"
user_unit="$R/etc/systemd/user/glasscast.service"
quadlet="$R/etc/containers/systemd/glasscast.container"
notes=()
if [ -e "$user_unit" ]; then
  notes+=("desktop users who enabled the user unit: systemctl --user disable --now glasscast (their state stays in ~/.local/state/glasscast)")
fi
if [ -e "$quadlet" ]; then notes+=("the container image stays: podman rmi localhost/glasscast:latest"); fi

# Stop it first, so nothing runs from files that are about to go.
if [ -e "$unit" ]; then systemctl_ disable --now glasscast; fi
if [ -e "$quadlet" ]; then systemctl_ stop glasscast; fi

shopt -s nullglob
remove "$R$prefix/bin/glasscast" "$R$prefix/lib/glasscast" \
  "$unit" "$R"/etc/systemd/system/*.wants/glasscast.service \
  "$user_unit" "$R"/etc/systemd/user/*.wants/glasscast.service \
  "$quadlet" \
  "$R/var/cache/glasscast" "$R/var/cache/private/glasscast"

kept=()
for p in "$R/etc/glasscast" "$R/var/lib/glasscast" "$R/etc/systemd/system/glasscast.service.d" \
  "$R/etc/systemd/user/glasscast.service.d"; do
  if [ -e "$p" ] || [ -L "$p" ]; then kept+=("$p"); fi
done
if [ "$purge" -eq 1 ]; then
  # DynamicUser= keeps the state in /var/lib/private/glasscast; /var/lib/glasscast is a symlink to it.
  remove "${kept[@]}" "$R/var/lib/private/glasscast"
elif [ ${#kept[@]} -gt 0 ]; then
  say "kept ${kept[*]} (--purge removes them)"
fi

if [ "$removed" -eq 1 ]; then systemctl_ daemon-reload; else say "nothing of glasscast to remove under ${R:-/}"; fi
for n in "${notes[@]}"; do say "$n"; done
exit 0
