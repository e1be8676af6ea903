#!/usr/bin/env bash
# debian-image.sh: makes a local Debian 12 base image for building the container without a registry
# (tests/testbeds/container.rs; docs/container.md, "Offline").
#
# Usage: scripts/testbed/debian-image.sh [IMAGE]     IMAGE defaults to localhost/debian:bookworm
#
# Does nothing when IMAGE exists. Otherwise debootstraps a minbase bookworm from this machine's Debian mirror
# (the first bookworm entry in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list, else
# deb.debian.org) into a temporary directory and imports it with `podman import`. Needs root (debootstrap),
# debootstrap and podman. Honours CONTAINERS_CONF.
set -euo pipefail
image=${1:-localhost/debian:bookworm}

if podman image exists "$image"; then
  echo "debian-image: $image exists"
  exit 0
fi

mirror=$(
  {
    # deb822 stanzas: the URIs of one whose Suites list "bookworm" itself (not only bookworm-security).
    awk 'BEGIN { RS = ""; FS = "\n" }
         { uri = ""; deb = 0; suite = 0
           for (i = 1; i <= NF; i++) {
             if ($i ~ /^URIs:/) { split($i, u, /[ \t]+/); uri = u[2] }
             if ($i ~ /^Types:/ && $i ~ /[ \t]deb([ \t]|$)/) deb = 1
             if ($i ~ /^Suites:/ && $i ~ /[ \t]bookworm([ \t]|$)/) suite = 1
           }
           if (deb && suite && uri != "") print uri }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    # one-line format: deb URI bookworm COMPONENTS
    awk '$1 == "deb" && $3 == "bookworm" { print $2 }' /etc/apt/sources.list 2>/dev/null || true
  } | grep -E '^https?://' | head -n1 || true
)
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d /tmp/debian-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
echo "debian-image: debootstrap --variant=minbase bookworm from $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/log" 2>&1 || {
  tail -n 20 "$work/log" >&2
  exit 1
}
# Like the official slim images: no package cache or lists in the base.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | podman import --quiet - "$image" >/dev/null
echo "debian-image: imported $image"
