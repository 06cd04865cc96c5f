#!/usr/bin/env bash
# A local stand-in for the Dockerfile's python:3.11-slim-bookworm base, for
# machines where no registry is reachable: Debian bookworm's python3 (3.11)
# bootstrapped with debootstrap and imported into podman.
#   tools/podman/base-image.sh IMAGE CACHE_DIR
# The root filesystem is kept as a tarball in CACHE_DIR (git-ignored), so a
# second run only imports it. debootstrap needs root.
set -euo pipefail
image="$1"
cache="$2"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
tarball="$cache/bookworm-python3.tar"
mkdir -p "$cache"

if [ ! -s "$tarball" ]; then
  root="$(mktemp -d "$cache/rootfs.XXXXXX")"
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" "$mirror"
  # The official image has "python"; the Dockerfile calls it by that name.
  ln -s python3 "$root/usr/bin/python"
  # pip inside a build trusts the system CA bundle (the build mounts the host's
  # /etc/ssl/certs there), so a TLS-intercepting egress proxy works too.
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$root/etc/pip.conf"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
  tar --numeric-owner -C "$root" -c . > "$tarball.part"
  mv "$tarball.part" "$tarball"
fi

podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$tarball" "$image"
podman run --rm "$image" python -c \
  'import sys; assert sys.version_info[:2] == (3, 11), sys.version; print("base python", sys.version.split()[0])'
