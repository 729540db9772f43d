#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian packages: build them (scripts/package.sh, Release) with lintian clean of errors,
# install them into a clean Debian 12 root made by debootstrap (cached between runs), check
# files, the watchpost user, owners and modes, conffiles; run both daemons there as the
# watchpost user with the packaged configs (an agent connects, `watchpost status` answers);
# upgrade from a previous build keeps an edited conffile and the state; remove keeps the state,
# purge removes it. Also checks the daemons' sd_notify readiness (READY=1, STOPPING=1).
# Needs root (chroot, namespaces). The daemons run in private mount, PID and network namespaces
# (loopback only), so nothing outlives the test. WP_PKG_CACHE overrides the cache folder.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: test_packages.sh needs root (chroot, unshare)"
    exit 0
fi
for t in dpkg-buildpackage dh lintian debootstrap unshare python3; do
    command -v "$t" > /dev/null || fail "missing $t (scripts/deps.sh installs it)"
done

CACHE=${WP_PKG_CACHE:-/var/cache/watchpost-tests}
MIRROR=${WP_DEB_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
ROOT=$T/root
ARCH=$(dpkg --print-architecture)
T0=$(date +%s)
step() { log "[$(($(date +%s) - T0))s] $*"; }

# ---- readiness: sd_notify from the build's daemons -------------------------------------------

# notify_check NAME CMD...: start CMD with NOTIFY_SOCKET, expect READY=1, SIGTERM, expect
# STOPPING=1 and exit 0.
notify_check() {
    local name=$1
    shift
    python3 - "$T/$name.notify" "$T/$name.log" "$@" << 'PY' || fail "$name: sd_notify"
import os, signal, socket, subprocess, sys
path, logf, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(30)
p = subprocess.Popen(cmd, env=dict(os.environ, NOTIFY_SOCKET=path), stderr=open(logf, "a"))
try:
    got = s.recv(4096).decode()
    assert got == "READY=1", got
    p.send_signal(signal.SIGTERM)
    got = s.recv(4096).decode()
    assert got == "STOPPING=1", got
    rc = p.wait(60)
    assert rc == 0, "exit %d" % rc
finally:
    if p.poll() is None:
        p.kill()
        p.wait()
PY
}

step "sd_notify readiness"
ca_init
issue notify-agent
collector_config
notify_check collector "$BIN_COLL" -c "$T/collector.yaml"
cat > "$T/agent.yaml" << YAML
agent:
  id: notify-agent
  state_dir: $T/notify-agent
collectors: ["127.0.0.1:1"]
tls:
  ca: $T/ca/ca.crt
  cert: $T/certs/notify-agent.crt
  key: $T/certs/notify-agent.key
probes:
  - {kind: host, interval: 1s}
YAML
notify_check agent "$BIN_AGENT" -c "$T/agent.yaml"

# ---- build -----------------------------------------------------------------------------------

step "building the packages (scripts/package.sh, Release)"
"$WP_SRC/scripts/package.sh" --no-deps -o "$T/deb" > "$T/package.log" 2>&1 ||
    fail "scripts/package.sh: $(tail -n 40 "$T/package.log")"
VERSION=$(dpkg-parsechangelog -l "$WP_SRC/packaging/debian/changelog" -S Version)
DEB_AGENT=$T/deb/watchpost-agent_${VERSION}_${ARCH}.deb
DEB_COLL=$T/deb/watchpost-collector_${VERSION}_${ARCH}.deb
[ -f "$DEB_AGENT" ] && [ -f "$DEB_COLL" ] || fail "no .deb files in $T/deb"
if grep -q '^E: ' "$T/package.log"; then
    fail "lintian errors: $(grep '^E: ' "$T/package.log")"
fi
grep -E '^[WE]: ' "$T/package.log" | sed 's/^/  lintian /' || true
for d in "$DEB_AGENT" "$DEB_COLL"; do
    dpkg-deb -f "$d" Depends | grep -q 'adduser' || fail "$(basename "$d"): no adduser dependency"
    dpkg-deb -f "$d" Depends | grep -q 'libc6' || fail "$(basename "$d"): no shlibs dependencies"
done
# A Release build: no sanitizer runtime in the daemons.
dpkg-deb -x "$DEB_COLL" "$T/x"
if grep -q '__asan_init' "$T/x/usr/sbin/watchpost-collector"; then
    fail "packaged collector built with ASan"
fi

# The "previous build": the same files under a lower version, with a different shipped
# agent.yaml, so the upgrade meets a conffile changed on both sides.
PREV=$VERSION~prev1
repack() { # repack DEB OUT
    local dir=$T/repack
    rm -rf "$dir"
    dpkg-deb -R "$1" "$dir"
    sed -i "s/^Version: .*/Version: $PREV/" "$dir/DEBIAN/control"
    if [ -f "$dir/etc/watchpost/agent.yaml" ]; then
        # (dh_md5sums leaves conffiles out of DEBIAN/md5sums: nothing to update there)
        printf '# shipped by %s\n' "$PREV" >> "$dir/etc/watchpost/agent.yaml"
    fi
    dpkg-deb --root-owner-group -b "$dir" "$2" > /dev/null
}
mkdir -p "$T/prev"
repack "$DEB_AGENT" "$T/prev/watchpost-agent_${PREV}_${ARCH}.deb"
repack "$DEB_COLL" "$T/prev/watchpost-collector_${PREV}_${ARCH}.deb"

# ---- a clean Debian root, cached with the packages' run-time dependencies --------------------

# The Depends of both packages, without versions: the cache key and what the root gets.
RDEPS=$( (dpkg-deb -f "$DEB_AGENT" Depends; dpkg-deb -f "$DEB_COLL" Depends) | tr ',' '\n' |
    sed -e 's/|.*//' -e 's/(.*)//' -e 's/ //g' | grep -v '^$' | sort -u | tr '\n' ' ')
ROOT_RECIPE=1 # bump when the way the root is made changes
KEY=$(printf '%s %s %s %s %s' "$ROOT_RECIPE" "$SUITE" "$ARCH" "$MIRROR" "$RDEPS" | sha256sum |
    cut -c1-16)
TARBALL=$CACHE/root-$SUITE-$ARCH-$KEY.tar
mkdir -p "$CACHE/debs"
step "Debian root ($TARBALL)"
(
    flock 9
    if [ ! -f "$TARBALL" ]; then
        b=$T/bootstrap
        log "debootstrap --variant=minbase $SUITE from $MIRROR (first run, cached afterwards)"
        debootstrap --variant=minbase --cache-dir="$CACHE/debs" "$SUITE" "$b" "$MIRROR" \
            > "$T/debootstrap.log" 2>&1 || { tail -n 30 "$T/debootstrap.log"; exit 1; }
        # no service of any package starts in the root (the Debian chroot convention)
        printf '#!/bin/sh\nexit 101\n' > "$b/usr/sbin/policy-rc.d"
        chmod 0755 "$b/usr/sbin/policy-rc.d"
        # shellcheck disable=SC2086
        chroot "$b" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends $RDEPS && apt-get clean" \
            > "$T/rdeps.log" 2>&1 || { tail -n 30 "$T/rdeps.log"; exit 1; }
        rm -rf "$b"/var/lib/apt/lists/* "$b"/tmp/*
        tar -C "$b" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
        rm -rf "$b"
        # older roots of other dependency sets
        find "$CACHE" -maxdepth 1 -name "root-$SUITE-$ARCH-*.tar" ! -name "$(basename "$TARBALL")" \
            -delete
    fi
) 9> "$CACHE/lock" || fail "could not make the Debian root"
mkdir -p "$ROOT"
tar -C "$ROOT" -xpf "$TARBALL"
mkdir -p "$ROOT/tmp/pkgs"
cp "$DEB_AGENT" "$DEB_COLL" "$ROOT/tmp/pkgs/"
cp "$T/prev"/*.deb "$ROOT/tmp/pkgs/"

# in_root CMD...: CMD chrooted in ROOT, in new mount, PID and network namespaces (only lo, up),
# with /proc mounted there. Everything CMD starts dies with it; the mounts vanish with it.
in_root() {
    unshare --mount --pid --net --fork --kill-child -- bash -c '
        set -e
        r=$1
        shift
        ip link set lo up
        mount -t proc proc "$r/proc"
        exec chroot "$r" "$@"' in_root "$ROOT" "$@"
}
expect_stat() { # expect_stat PATH "owner:group mode"
    local got
    got=$(chroot "$ROOT" stat -c '%U:%G %a' "$1") || fail "missing $1"
    [ "$got" = "$2" ] || fail "$1 is $got, expected $2"
}

# ---- install the previous build --------------------------------------------------------------

step "install $PREV"
in_root dpkg -i "/tmp/pkgs/watchpost-agent_${PREV}_${ARCH}.deb" \
    "/tmp/pkgs/watchpost-collector_${PREV}_${ARCH}.deb" > "$T/dpkg-install.log" 2>&1 ||
    fail "dpkg -i: $(cat "$T/dpkg-install.log")"
for f in /usr/sbin/watchpost-agent /usr/sbin/watchpost-collector /usr/bin/watchpost; do
    expect_stat "$f" "root:root 755"
done
for f in /etc/watchpost/agent.yaml /etc/watchpost/collector.yaml \
    /etc/watchpost/rules.d/default.yaml /lib/systemd/system/watchpost-agent.service \
    /lib/systemd/system/watchpost-collector.service; do
    expect_stat "$f" "root:root 644"
done
expect_stat /var/lib/watchpost "watchpost:watchpost 750"
expect_stat /var/lib/watchpost/agent "watchpost:watchpost 750"
expect_stat /etc/watchpost/tls "root:watchpost 750"
IFS=: read -r _ _ uid gid _ home shell <<< "$(chroot "$ROOT" getent passwd watchpost)" ||
    fail "no watchpost user"
[ "$uid" -lt 1000 ] && [ "$home" = /var/lib/watchpost ] && [ "$shell" = /usr/sbin/nologin ] ||
    fail "watchpost user: uid=$uid home=$home shell=$shell"
[ "$(chroot "$ROOT" getent group watchpost | cut -d: -f3)" = "$gid" ] || fail "watchpost group"
chroot "$ROOT" dpkg-query -W -f='${Conffiles}\n' watchpost-agent |
    grep -q ' /etc/watchpost/agent.yaml ' ||
    fail "agent.yaml is not a conffile"
for f in collector.yaml rules.d/default.yaml; do
    chroot "$ROOT" dpkg-query -W -f='${Conffiles}\n' watchpost-collector |
        grep -q " /etc/watchpost/$f " || fail "$f is not a conffile"
done
for u in watchpost-agent watchpost-collector; do
    [ -L "$ROOT/etc/systemd/system/multi-user.target.wants/$u.service" ] || fail "$u not enabled"
done
chroot "$ROOT" /usr/sbin/watchpost-agent --version | grep -q "^watchpost-agent " ||
    fail "watchpost-agent --version"
# The units parse, and their exposure stays at most 3.0 of 10 (offline: no systemd here).
if command -v systemd-analyze > /dev/null; then
    for u in watchpost-agent watchpost-collector; do
        systemd-analyze security --offline=true --root="$ROOT" --threshold=30 "$u.service" \
            > "$T/security-$u.log" 2>&1 || fail "$u exposure: $(tail -n 3 "$T/security-$u.log")"
        if grep -qiE 'unknown|invalid|failed|ignoring' "$T/security-$u.log"; then
            fail "$u.service: $(grep -iE 'unknown|invalid|failed|ignoring' "$T/security-$u.log")"
        fi
        log "  $(grep 'Overall exposure' "$T/security-$u.log")"
    done
fi

# ---- certificates, the site's edit of agent.yaml, and a run ----------------------------------

step "certificates and configuration"
cat > "$ROOT/tmp/setup.sh" << 'SH'
set -eu
export WATCHPOST_CA_DIR=/etc/watchpost/ca
watchpost ca init --cn "package test CA" > /dev/null
watchpost ca issue watchpost-collector --server --out /etc/watchpost/tls > /dev/null
watchpost ca issue pkg-agent --out /tmp/agent-cert > /dev/null
cp /etc/watchpost/ca/ca.crt /etc/watchpost/ca/crl.pem /etc/watchpost/tls/
cp /tmp/agent-cert/pkg-agent.crt /etc/watchpost/tls/agent.crt
cp /tmp/agent-cert/pkg-agent.key /etc/watchpost/tls/agent.key
chgrp watchpost /etc/watchpost/tls/*.key
chmod 0640 /etc/watchpost/tls/*.key
# the site's edit: this agent's id and its collector
sed -i -e 's/^  #id: web-01$/  id: pkg-agent/' \
    -e 's/"collector.example.org:7443"/"127.0.0.1:7443"/' /etc/watchpost/agent.yaml
grep -q '^  id: pkg-agent$' /etc/watchpost/agent.yaml
watchpost check-config /etc/watchpost/agent.yaml > /dev/null
watchpost check-config /etc/watchpost/collector.yaml > /dev/null
SH
in_root bash /tmp/setup.sh > "$T/setup.log" 2>&1 || fail "setup: $(cat "$T/setup.log")"

# The run: both daemons as the watchpost user with the packaged configs (the collector's
# unchanged: 0.0.0.0:7443 inside the test's own network namespace). RUN_AGENT=0 checks the
# collector's state alone first.
cat > "$ROOT/tmp/run.sh" << 'SH'
set -eu
as_wp() { exec setpriv --reuid=watchpost --regid=watchpost --init-groups -- "$@"; } # only with &
stat_of() { watchpost status 2> /dev/null | awk -v k="$1" '$1 == k {print $2}'; }
until_ok() { # until_ok SECONDS CMD...
    local n=$(($1 * 5))
    shift
    while ! "$@" > /dev/null 2>&1; do
        n=$((n - 1))
        [ "$n" -gt 0 ] || return 1
        sleep 0.2
    done
}
as_wp /usr/sbin/watchpost-collector -c /etc/watchpost/collector.yaml 2>> /tmp/collector.log &
coll=$!
until_ok 30 watchpost status || { echo "collector did not answer watchpost status"; exit 1; }
echo "agents_before $(stat_of agents)"
# The shipped config follows /var/log/syslog when it exists (minbase has no rsyslog; 0644
# because setpriv gives the agent no CAP_DAC_READ_SEARCH, unlike its unit).
if [ ! -e /var/log/syslog ]; then
    echo "Nov 30 09:00:00 pkg kernel: Linux version 6.1.0" > /var/log/syslog
    chmod 0644 /var/log/syslog
fi
log0=0
[ ! -f /tmp/agent.log ] || log0=$(wc -l < /tmp/agent.log)
t0=$(date +%s)
as_wp /usr/sbin/watchpost-agent -c /etc/watchpost/agent.yaml 2>> /tmp/agent.log &
agent=$!
connected() { [ "$(stat_of agents_connected)" = 1 ]; }
batched() { [ "$(stat_of batches)" -gt 0 ]; }
until_ok 30 connected || { echo "agent did not connect"; exit 1; }
until_ok 40 batched || { echo "no batch arrived"; exit 1; }
# the default probes: the host series, and a logtail source for the syslog that exists
q() { watchpost query --host pkg-agent --since 10m --format raw "$@" 2> /dev/null; }
# rows of this run (the first run's are in the same files), with a value
fresh() {
    awk -v t0="$t0" -v min="$1" '$1 >= t0 && $3 != "nan" && $3 + 0 >= min {f = 1} END {exit !f}'
}
hosted() { q --metric cpu.user --instance total | fresh 0; }
until_ok 40 hosted || { echo "no host series from the default config"; exit 1; }
following() {
    tail -n "+$((log0 + 1))" /tmp/agent.log | grep -q 'logtail:syslog: following /var/log/syslog'
}
until_ok 20 following || { echo "the default config does not follow /var/log/syslog"; exit 1; }
echo "Nov 30 09:00:01 pkg kernel: Out of memory: Killed process 4242 (java) total-vm:1kB" \
    >> /var/log/syslog
# the counter is a total kept in the cursor file across restarts and the upgrade: every OOM
# line written so far, this run's included
ooms=$(grep -c 'Out of memory: Killed process' /var/log/syslog)
oom() { q --metric logtail.matches --instance syslog/syslog_oom | fresh "$ooms"; }
until_ok 40 oom || { echo "the syslog OOM line was not counted at the collector"; exit 1; }
# the presets whose logs do not exist here send nothing
if q --metric logtail.matches --instance oracle/ora_internal | grep -q .; then
    echo "the optional oracle logtail sent series without an alert log"
    exit 1
fi
grep -q 'logtail:oracle: none of its paths exists (optional)' /tmp/agent.log ||
    { echo "no idle line for the oracle logtail"; exit 1; }
q --metric logtail.matches --instance syslog/syslog_oom | tail -n 1 | sed 's/^/syslog_oom /'
watchpost status
kill -TERM "$agent"
wait "$agent" || { echo "agent exit $?"; exit 1; }
kill -TERM "$coll"
wait "$coll" || { echo "collector exit $?"; exit 1; }
echo "run ok"
SH
run_daemons() { # run_daemons TAG
    if ! in_root bash /tmp/run.sh > "$T/run-$1.log" 2>&1; then
        cat "$T/run-$1.log"
        echo "---- collector.log"
        tail -n 30 "$ROOT/tmp/collector.log"
        echo "---- agent.log"
        tail -n 30 "$ROOT/tmp/agent.log"
        fail "daemons in the root ($1)"
    fi
    grep -q '^run ok$' "$T/run-$1.log" || fail "run $1: $(cat "$T/run-$1.log")"
}
step "daemons in the root ($PREV)"
run_daemons prev
grep -q '^agents_before 0$' "$T/run-prev.log" || fail "fresh collector knew agents already"
for f in /var/lib/watchpost/watchpost.db /var/lib/watchpost/agent/series.dict; do
    [ -s "$ROOT$f" ] || fail "no state file $f after the run"
done
for f in /var/lib/watchpost/watchpost.db /var/lib/watchpost/agent/series.dict; do
    [ "$(chroot "$ROOT" stat -c %U "$f")" = watchpost ] || fail "$f not owned by watchpost"
done
sha_dict=$(sha256sum < "$ROOT/var/lib/watchpost/agent/series.dict")

# ---- upgrade ---------------------------------------------------------------------------------

step "upgrade $PREV -> $VERSION"
in_root dpkg -i --force-confdef --force-confold "/tmp/pkgs/watchpost-agent_${VERSION}_${ARCH}.deb" \
    "/tmp/pkgs/watchpost-collector_${VERSION}_${ARCH}.deb" > "$T/dpkg-upgrade.log" 2>&1 ||
    fail "upgrade: $(cat "$T/dpkg-upgrade.log")"
[ "$(chroot "$ROOT" dpkg-query -W -f='${Version}' watchpost-agent)" = "$VERSION" ] ||
    fail "agent not upgraded"
grep -q '^  id: pkg-agent$' "$ROOT/etc/watchpost/agent.yaml" ||
    fail "upgrade lost the agent.yaml edit"
[ -f "$ROOT/etc/watchpost/agent.yaml.dpkg-dist" ] || fail "no agent.yaml.dpkg-dist after upgrade"
[ "$(sha256sum < "$ROOT/var/lib/watchpost/agent/series.dict")" = "$sha_dict" ] ||
    fail "upgrade changed the agent's state"
[ "$(chroot "$ROOT" id -u watchpost)" = "$uid" ] || fail "upgrade changed the watchpost uid"
expect_stat /var/lib/watchpost "watchpost:watchpost 750"
step "daemons in the root ($VERSION)"
run_daemons new
grep -q '^agents_before 1$' "$T/run-new.log" || fail "the collector forgot its agent on upgrade"

# ---- remove, purge ---------------------------------------------------------------------------

step "remove"
in_root dpkg -r watchpost-agent watchpost-collector > "$T/dpkg-remove.log" 2>&1 ||
    fail "dpkg -r: $(cat "$T/dpkg-remove.log")"
[ ! -e "$ROOT/usr/sbin/watchpost-collector" ] || fail "remove left the collector binary"
for f in /var/lib/watchpost/watchpost.db /var/lib/watchpost/agent/series.dict \
    /etc/watchpost/agent.yaml /etc/watchpost/collector.yaml; do
    [ -e "$ROOT$f" ] || fail "remove deleted $f"
done
chroot "$ROOT" getent passwd watchpost > /dev/null || fail "remove deleted the user"

step "purge"
in_root dpkg -P watchpost-agent watchpost-collector > "$T/dpkg-purge.log" 2>&1 ||
    fail "dpkg -P: $(cat "$T/dpkg-purge.log")"
[ ! -e "$ROOT/var/lib/watchpost" ] || fail "purge left $(find "$ROOT/var/lib/watchpost" | head)"
for f in agent.yaml agent.yaml.dpkg-dist collector.yaml rules.d; do
    [ ! -e "$ROOT/etc/watchpost/$f" ] || fail "purge left /etc/watchpost/$f"
done
[ -f "$ROOT/etc/watchpost/ca/ca.key" ] || fail "purge deleted the CA"
[ ! -e "$ROOT/etc/systemd/system/multi-user.target.wants/watchpost-agent.service" ] ||
    fail "purge left the unit enabled"

step "done"
