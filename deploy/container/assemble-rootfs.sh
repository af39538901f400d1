#!/usr/bin/env bash
# Assembles the `phalanx` image (the same contents as deploy/container/Dockerfile) without running a container:
# a Debian bookworm root filesystem from debootstrap, this machine's Node.js binary, and the application with its
# production dependencies installed here by `npm ci`, imported as one layer by `podman import`. For machines where
# image builds cannot run RUN steps. Run as root from the repository root:
#   deploy/container/assemble-rootfs.sh [WORKDIR] [IMAGE]
# WORKDIR keeps the debootstrap result between runs (default /tmp/phalanx-image); IMAGE defaults to
# localhost/phalanx:<package version>. Needs debootstrap and podman (apt-get install debootstrap podman).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-/tmp/phalanx-image}"
version="$(node -p "require('$repo/package.json').version")"
image="${2:-localhost/phalanx:$version}"
suite=bookworm
node_bin="$(command -v node)"

node -e "const [a,b]=process.versions.node.split('.').map(Number); process.exit(a===20&&b>=19||a===21||a===22?0:1)" ||
  { echo "assemble: Node $(node --version) does not satisfy engines (>=20.19 <23)" >&2; exit 1; }

mkdir -p "$work"
base="$work/base-$suite"
if [ ! -x "$base/bin/sh" ]; then
  echo "assemble: debootstrap $suite (minbase) into $base"
  debootstrap --variant=minbase --include=ca-certificates "$suite" "$base" http://deb.debian.org/debian >"$work/debootstrap.log"
fi

root="$work/rootfs"
rm -rf "$root"
cp -a "$base" "$root"
# What a runtime image does not need: package caches and lists, documentation, locales.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*

# Node: the binary this repository is tested with (its libraries, libstdc++ and glibc, are in the base).
install -m 0755 "$node_bin" "$root/usr/local/bin/node"

# The application, as the Dockerfile's build stage makes it.
app="$root/opt/phalanx"
mkdir -p "$app/scripts"
cp "$repo/package.json" "$repo/package-lock.json" "$app/"
cp -r "$repo/bin" "$repo/proto" "$repo/data" "$app/"
cp "$repo/scripts/gen-proto.mjs" "$app/scripts/"
(cd "$repo" && tar --exclude=src/gen -cf - src) | tar -xf - -C "$app"
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error && node scripts/gen-proto.mjs)
rm -rf "$app/.npm"

tar -C "$root" --numeric-owner -cf "$work/rootfs.tar" .
podman import \
  --change 'USER 10001:10001' \
  --change 'WORKDIR /opt/phalanx' \
  --change 'ENV NODE_ENV=production HOME=/tmp PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'EXPOSE 7070' \
  --change 'EXPOSE 7071' \
  --change 'ENTRYPOINT ["node", "/opt/phalanx/bin/phalanx.js"]' \
  --change 'CMD ["coordinator"]' \
  "$work/rootfs.tar" "$image" >/dev/null
echo "assemble: $image ($(podman image inspect --format '{{.Size}}' "$image") bytes)"
echo "assemble: root filesystem in $root (try it without a container: chroot --userspec=10001:10001 $root node /opt/phalanx/bin/phalanx.js --version)"
