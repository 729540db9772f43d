#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build the Debian packages watchpost-agent and watchpost-collector from packaging/: copy the
# source tree (no .git, no build dirs) to a work dir, lay packaging/debian and the systemd units
# in it as debian/, run `dpkg-buildpackage -us -uc -b` (a Release build, no sanitizers, no
# tests), then lintian. The .deb files land in OUT (default build-deb/).
#
# usage: scripts/package.sh [-o OUT] [--version V] [--no-deps] [--no-lintian] [--keep]
#   -o OUT         where the .deb, .buildinfo and .changes files go (default build-deb)
#   --version V    package version instead of debian/changelog's (snapshots, upgrade tests)
#   --no-deps      do not run scripts/deps.sh (the build dependencies are already there)
#   --no-lintian   skip lintian (it fails the build on errors; warnings are printed)
#   --keep         keep the work dir (OUT/work)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)

OUT=build-deb
VERSION=""
DEPS=1
LINTIAN=1
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
    -o) OUT=$2; shift 2 ;;
    --version) VERSION=$2; shift 2 ;;
    --no-deps) DEPS=0; shift ;;
    --no-lintian) LINTIAN=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '3,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ "$DEPS" = 1 ]; then
    scripts/deps.sh
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -z "$VERSION" ]; then
    VERSION=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
fi
WORK=$OUT/work
TREE=$WORK/watchpost-$VERSION
rm -rf "$WORK"
mkdir -p "$TREE"

# The tree as it is in the work tree (uncommitted changes included), without build outputs.
tar -C "$SRC" --exclude=./.git --exclude='./build*' --exclude=./demo --exclude=./debian \
    --exclude=./tests/bench/out --exclude='*.o' --exclude='*.swp' -cf - . | tar -C "$TREE" -xf -
cp -a packaging/debian "$TREE/debian"
cp packaging/systemd/watchpost-agent.service "$TREE/debian/watchpost-agent.service"
cp packaging/systemd/watchpost-collector.service "$TREE/debian/watchpost-collector.service"
if [ "$VERSION" != "$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)" ]; then
    {
        printf 'watchpost (%s) unstable; urgency=medium\n\n' "$VERSION"
        printf '  * Build of version %s by scripts/package.sh.\n\n' "$VERSION"
        maint=$(dpkg-parsechangelog -l packaging/debian/changelog -S Maintainer)
        printf ' -- %s  %s\n\n' "$maint" "$(date -R)"
        cat packaging/debian/changelog
    } > "$TREE/debian/changelog"
fi

echo "package.sh: building watchpost $VERSION in $TREE"
(
    cd "$TREE"
    DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
        dpkg-buildpackage -us -uc -b > "$WORK/build.log" 2>&1
) || {
    tail -n 60 "$WORK/build.log"
    echo "package.sh: dpkg-buildpackage failed, full log in $WORK/build.log" >&2
    exit 1
}

ARCH=$(dpkg --print-architecture)
CHANGES=$WORK/watchpost_${VERSION}_${ARCH}.changes
mv "$WORK"/*.deb "$WORK"/*.buildinfo "$CHANGES" "$OUT"/
if ls "$WORK"/*.ddeb > /dev/null 2>&1; then
    mv "$WORK"/*.ddeb "$OUT"/
fi

if [ "$LINTIAN" = 1 ]; then
    echo "package.sh: lintian"
    # --fail-on error: warnings are reported (docs/PACKAGING.md lists the expected ones)
    lintian --fail-on error --tag-display-limit 0 \
        "$OUT/watchpost-agent_${VERSION}_${ARCH}.deb" \
        "$OUT/watchpost-collector_${VERSION}_${ARCH}.deb"
fi
if [ "$KEEP" = 0 ]; then
    rm -rf "$WORK"
fi
ls -1 "$OUT"/watchpost-*_"${VERSION}"_*.deb
