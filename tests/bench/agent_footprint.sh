#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Agent footprint benchmark (not a ctest test): watchpost-agent with the host probe at 1 s
# streams to a local Release collector while, in the same window, collectd 5.12 (cpu memory
# df disk interface load processes network, Interval 1) sends to a tiny UDP sink that counts
# the values in its binary packets. Reports each one's CPU % of one core (on-CPU time of all
# its threads from /proc/PID/task/*/schedstat, cross-checked with utime+stime ticks from
# /proc/PID/stat), RSS (VmRSS every second) and PSS, values/s (the agent's from the
# collector's values_received counter, collectd's from the sink), and CPU % per 1,000
# values/s with the ratio between the two.
#
#   tests/bench/agent_footprint.sh [SECONDS]        default 60
#
# Environment: WP_BENCH_BUILD (default build-bench, Release), WP_BENCH_OUT (default
# tests/bench/out), WP_BENCH_WARMUP (default 10 s before the window), WP_KEEP=1 keeps the
# run dir. collectd-core is installed with apt-get if missing.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${1:-60}
OUT=${WP_BENCH_OUT:-$SRC/tests/bench/out}
BUILD=${WP_BENCH_BUILD:-$SRC/build-bench}
WARMUP=${WP_BENCH_WARMUP:-10}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if ! command -v collectd > /dev/null 2>&1 && [ ! -x /usr/sbin/collectd ]; then
    log "installing collectd-core"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends collectd-core \
        > /dev/null || die "cannot install collectd-core"
fi
COLLECTD=$(command -v collectd || echo /usr/sbin/collectd)

mkdir -p "$OUT"
log "building Release into $BUILD"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DWP_TESTS=ON > "$OUT/cmake.log" 2>&1 ||
    die "cmake configure failed: see $OUT/cmake.log"
cmake --build "$BUILD" -j2 --target watchpost-collector watchpost watchpost-agent > /dev/null ||
    die "build failed"
COLL=$BUILD/collector/watchpost-collector
CLI=$BUILD/collector/watchpost
AGENT=$BUILD/agent/watchpost-agent

RUN=$OUT/footprint-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    [ -n "${WP_KEEP:-}" ] || rm -rf "$RUN/state" "$RUN/agent" "$RUN/ca"
}
trap cleanup EXIT

# ---- certificates and the collector -------------------------------------------------------
export WATCHPOST_CA_DIR=$RUN/ca
"$CLI" ca init --cn "footprint CA" > /dev/null
"$CLI" ca issue watchpost-collector --server --out "$RUN/certs" > /dev/null
"$CLI" ca issue footprint --out "$RUN/certs" > /dev/null
cat > "$RUN/collector.yaml" <<YAML
listen: 127.0.0.1:0
state_dir: $RUN/state
log_level: warn
tls:
  ca: $RUN/ca/ca.crt
  cert: $RUN/certs/watchpost-collector.crt
  key: $RUN/certs/watchpost-collector.key
  crl: $RUN/ca/crl.pem
YAML
"$COLL" -c "$RUN/collector.yaml" --port-file "$RUN/collector.port" > "$RUN/collector.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
    [ -s "$RUN/collector.port" ] && break
    sleep 0.1
done
[ -s "$RUN/collector.port" ] || die "collector did not start: $(tail -n 5 "$RUN/collector.log")"
cstat() { "$CLI" status --state-dir "$RUN/state" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }

# ---- watchpost-agent: host probe at 1 s ----------------------------------------------------
cat > "$RUN/agent.yaml" <<YAML
agent:
  id: footprint
  state_dir: $RUN/agent
  log_level: warn
collectors:
  - 127.0.0.1:$(cat "$RUN/collector.port")
tls:
  ca: $RUN/ca/ca.crt
  cert: $RUN/certs/footprint.crt
  key: $RUN/certs/footprint.key
probes:
  - {kind: host, interval: 1s}
YAML
"$AGENT" -c "$RUN/agent.yaml" > "$RUN/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")

# ---- collectd -> UDP sink --------------------------------------------------------------------
# The sink decodes collectd's binary protocol: parts of (type u16, length u16); a "values"
# part (type 0x0006) holds a u16 count of values. It writes "packets values" totals to a file
# every 0.5 s.
python3 - "$RUN/sink.port" "$RUN/sink.count" <<'PY' &
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
s.settimeout(0.5)
packets = values = 0
end = time.time() + 7200
while time.time() < end:
    try:
        data = s.recv(65535)
        packets += 1
        off = 0
        while off + 4 <= len(data):
            ptype, plen = struct.unpack_from(">HH", data, off)
            if plen < 4:
                break
            if ptype == 0x0006 and off + 6 <= len(data):
                values += struct.unpack_from(">H", data, off + 4)[0]
            off += plen
    except socket.timeout:
        pass
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write(f"{packets} {values}\n")
    import os
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
PIDS+=($!)
for _ in $(seq 1 100); do
    [ -s "$RUN/sink.port" ] && break
    sleep 0.1
done
[ -s "$RUN/sink.port" ] || die "UDP sink did not start"
mkdir -p "$RUN/collectd"
cat > "$RUN/collectd.conf" <<CONF
Hostname "footprint"
FQDNLookup false
BaseDir "$RUN/collectd"
PIDFile "$RUN/collectd/collectd.pid"
TypesDB "/usr/share/collectd/types.db"
Interval 1
LoadPlugin cpu
LoadPlugin memory
LoadPlugin df
LoadPlugin disk
LoadPlugin interface
LoadPlugin load
LoadPlugin processes
LoadPlugin network
<Plugin network>
  Server "127.0.0.1" "$(cat "$RUN/sink.port")"
</Plugin>
CONF
"$COLLECTD" -f -C "$RUN/collectd.conf" > "$RUN/collectd.log" 2>&1 &
COLLECTD_PID=$!
PIDS+=("$COLLECTD_PID")

connected() { [ "$(cstat agents_connected)" = 1 ]; }
for _ in $(seq 1 300); do
    connected && break
    sleep 0.1
done
connected || die "the agent did not connect: $(tail -n 5 "$RUN/agent.log")"
log "agent pid $AGENT_PID and collectd pid $COLLECTD_PID running; warmup $WARMUP s"
sleep "$WARMUP"
kill -0 "$COLLECTD_PID" 2>/dev/null || die "collectd exited: $(tail -n 5 "$RUN/collectd.log")"

# ---- the window: CPU at both ends, RSS every second ----------------------------------------------
snap() { # snap NAME: wall time, per-process cpu (schedstat ns, stat ticks), counters
    {
        echo "time $(date +%s.%N)"
        for who in agent:$AGENT_PID collectd:$COLLECTD_PID; do
            name=${who%%:*}
            pid=${who#*:}
            ns=$(cat /proc/"$pid"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {print s + 0}')
            ticks=$(sed 's/.*) //' /proc/"$pid"/stat | awk '{print $12 + $13}')
            echo "${name}_ns $ns"
            echo "${name}_ticks $ticks"
        done
        echo "agent_values $(cstat values_received)"
        echo "collectd_values $(awk '{print $2}' "$RUN/sink.count")"
        echo "collectd_packets $(awk '{print $1}' "$RUN/sink.count")"
    } > "$RUN/snap.$1"
}
rss_sample() {
    for who in agent:$AGENT_PID collectd:$COLLECTD_PID; do
        pid=${who#*:}
        echo "${who%%:*} $(awk '/^VmRSS:/ {print $2}' /proc/"$pid"/status)" \
            "$(awk '/^Pss:/ {print $2}' /proc/"$pid"/smaps_rollup 2>/dev/null || echo 0)"
    done >> "$RUN/rss.txt"
}
: > "$RUN/rss.txt"
snap start
for _ in $(seq 1 "$SECS"); do
    sleep 1
    rss_sample
done
snap end
for p in $AGENT_PID $COLLECTD_PID; do
    kill -0 "$p" 2>/dev/null || die "process $p died during the window"
done
NTHREADS_COLLECTD=$(ls /proc/"$COLLECTD_PID"/task | wc -l)
NTHREADS_AGENT=$(ls /proc/"$AGENT_PID"/task | wc -l)

kill -TERM "$AGENT_PID" "$COLLECTD_PID"
arc=0
wait "$AGENT_PID" || arc=$?
wait "$COLLECTD_PID" || true

python3 - "$RUN" "$NTHREADS_AGENT" "$NTHREADS_COLLECTD" <<'PY' | tee "$RUN/summary.txt"
import os, sys
run = sys.argv[1]
nthreads = {"agent": sys.argv[2], "collectd": sys.argv[3]}
tck = os.sysconf("SC_CLK_TCK")
def snap(n):
    return {k: float(v) for k, v in (l.split() for l in open(f"{run}/snap.{n}") if l.strip())}
a, b = snap("start"), snap("end")
secs = b["time"] - a["time"]
rss = {}
for line in open(f"{run}/rss.txt"):
    name, r, p = line.split()
    rss.setdefault(name, []).append((int(r), int(p)))
res = {}
print(f"==== agent footprint over {secs:.1f} s (1 s collection)")
print(f"{'':10} {'values/s':>9} {'CPU %':>7} {'CPU % (ticks)':>13} {'per 1k v/s':>11} "
      f"{'RSS max':>9} {'PSS max':>9} {'threads':>7}")
for name in ("agent", "collectd"):
    cpu = 100.0 * (b[f"{name}_ns"] - a[f"{name}_ns"]) / 1e9 / secs
    cpu_t = 100.0 * (b[f"{name}_ticks"] - a[f"{name}_ticks"]) / tck / secs
    vps = (b[f"{name}_values"] - a[f"{name}_values"]) / secs
    per_k = cpu / (vps / 1000.0) if vps > 0 else float("nan")
    r = max(x[0] for x in rss[name]) / 1024.0
    p = max(x[1] for x in rss[name]) / 1024.0
    res[name] = per_k
    label = "watchpost" if name == "agent" else "collectd"
    print(f"{label:10} {vps:9.1f} {cpu:7.3f} {cpu_t:13.3f} {per_k:11.3f} {r:7.1f}Mi {p:7.1f}Mi "
          f"{nthreads[name]:>7}")
if res["agent"] > 0:
    print(f"collectd / watchpost CPU per 1,000 values/s: {res['collectd'] / res['agent']:.1f}x")
print(f"collectd packets: {b['collectd_packets'] - a['collectd_packets']:.0f}")
print(f"run dir: {run}")
PY
[ "$arc" -eq 0 ] || die "watchpost-agent exited with status $arc after SIGTERM"
