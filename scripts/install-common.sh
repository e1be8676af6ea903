# shellcheck shell=bash
# Shared by scripts/install.sh and scripts/uninstall.sh (sourced, not run).

# Validates $prefix (it ends up in ExecStart= and in a sed replacement: a plain absolute path only) and makes
# $root absolute; sets R, the root every installed path is under ("" for /). Needs die().
check_prefix_and_root() {
  [[ "$prefix" =~ ^/[A-Za-z0-9._/+-]*$ ]] || die "--prefix must be an absolute path of [A-Za-z0-9._/+-]: $prefix"
  prefix=${prefix%/}
  if [ -n "$root" ]; then
    [ -d "$root" ] || die "--root $root is not a directory"
    root=$(cd "$root" && pwd)
    if [ "$root" = / ]; then root=""; fi
  fi
  # shellcheck disable=SC2034 # R is for the scripts that source this file
  R=$root
}
