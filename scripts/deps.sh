#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install the Debian 12 packages Watchpost needs to build and test, if any are missing.
set -euo pipefail

PKGS=(build-essential cmake pkg-config git
      libuv1-dev libmbedtls-dev libmsgpack-dev librrd-dev libsqlite3-dev libyaml-dev
      libpcre2-dev libjansson-dev libcurl4-openssl-dev libcmocka-dev libhttp-parser-dev zlib1g-dev
      rrdtool sqlite3 python3 clang libclang-rt-14-dev
      monitoring-plugins-basic monitoring-plugins-standard logrotate
      libpq-dev postgresql libmariadb-dev mariadb-server libosip2-dev sip-tester
      kamailio baresip-core
      request-tracker5 rt5-db-sqlite exim4-daemon-light
      debhelper lintian debootstrap iproute2 help2man
      libpango1.0-dev poppler-utils
      chromium fonts-droid-fallback)
if [ "${1:-}" = "--bench" ]; then
    PKGS+=(collectd-core wrk)
fi

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The kamreg tests start their own Kamailio on loopback; the packaged service would listen on
# *:5060 with Debian's sample config, so a fresh install leaves it stopped and disabled.
if printf '%s\n' "${missing[@]}" | grep -qx kamailio && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now kamailio > /dev/null 2>&1 || true
fi
