#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Dashboard and API benchmark (not a ctest test; issue 7): a Release collector on 127.0.0.1
# with its HTTP server on, fed by wpload (AGENTS simulated agents over mutual TLS, SERIES x
# FIELDS values a second each, so /api/v1/hosts lists them) and by one real agent whose
# linetable probe runs tests/bench/linegen.py (LINES phone lines changing state), with two
# rules that keep incidents open on ~20 % of the simulated hosts. A viewer API token from
# `watchpost token add`; then wrk (CONNS connections, SECONDS each) against every endpoint in
# turn, after a window with no HTTP load. Prints per endpoint: requests/s, latency p50/p99/max,
# errors and non-2xx, response size, the collector's ingest (values acked/s from `watchpost
# status` deltas) and CPU, and wrk's CPU. Each path is a flood: every connection sends its next
# request as soon as the last reply arrived. The last window, "wall", is CONNS open Overview
# pages instead (tests/bench/dashboard-wall.lua): hosts, incidents and lines in turn, each
# connection pausing 1.67 s on average between requests (its three lists every 5 s).
#
#   tests/bench/dashboard.sh [AGENTS] [SECONDS] [CONNS]      default 1000 30 200
#
# Environment: WP_BENCH_SERIES / WP_BENCH_FIELDS (default 10 x 10 per agent = 100 values/s),
# WP_BENCH_LINES (2000), WP_BENCH_LINE_CHANGES (per minute, default 1000),
# WP_BENCH_PATHS (space-separated, default the list below), WP_BENCH_OUT, WP_BENCH_BUILD,
# WP_BENCH_THREADS (wrk threads, default 2), WP_BENCH_GZIP=1 (wrk sends "Accept-Encoding:
# gzip" as browsers do; the default asks for the uncompressed replies), WP_KEEP=1 keeps the
# run's state.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
AGENTS=${1:-1000}
SECS=${2:-30}
CONNS=${3:-200}
SERIES=${WP_BENCH_SERIES:-10}
FIELDS=${WP_BENCH_FIELDS:-10}
LINES=${WP_BENCH_LINES:-2000}
PER_MIN=${WP_BENCH_LINE_CHANGES:-1000}
THREADS=${WP_BENCH_THREADS:-2}
PATHS=${WP_BENCH_PATHS:-"/api/v1/hosts /api/v1/incidents /api/v1/lines / /app.js /metrics wall"}
OUT=${WP_BENCH_OUT:-$SRC/tests/bench/out}
BUILD=${WP_BENCH_BUILD:-$SRC/build-bench}
GZ=()
[ -z "${WP_BENCH_GZIP:-}" ] || GZ=(-H "Accept-Encoding: gzip")

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
command -v wrk > /dev/null || die "wrk is missing (scripts/deps.sh --bench installs it)"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((AGENTS + CONNS + 256)) ] || die "ulimit -n is $(ulimit -n)"

# ---- build -------------------------------------------------------------------------------
mkdir -p "$OUT"
log "building Release into $BUILD"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DWP_TESTS=ON > "$OUT/cmake.log" 2>&1 ||
    die "cmake configure failed: see $OUT/cmake.log"
cmake --build "$BUILD" -j2 --target watchpost-collector watchpost wpload watchpost-agent \
    > /dev/null || die "build failed"
COLL=$BUILD/collector/watchpost-collector
CLI=$BUILD/collector/watchpost
AGENT=$BUILD/agent/watchpost-agent
WPLOAD=$BUILD/tests/wpload

# ---- certificates (shared with ingest.sh, kept across runs) ----------------------------------
export WATCHPOST_CA_DIR=$OUT/ca
[ -f "$OUT/ca/ca.crt" ] || "$CLI" ca init --cn "watchpost bench CA" > /dev/null
[ -f "$OUT/certs/watchpost-collector.crt" ] ||
    "$CLI" ca issue watchpost-collector --server --out "$OUT/certs" > /dev/null
[ -f "$OUT/certs/pbx1.crt" ] || "$CLI" ca issue pbx1 --out "$OUT/certs" > /dev/null
"$WPLOAD" mkcerts --ca-dir "$OUT/ca" --out "$OUT/certs" --agents "$AGENTS" >&2

RUN=$OUT/dash-$(date +%Y%m%d-%H%M%S)
STATE=$RUN/state
mkdir -p "$RUN" "$RUN/agent"
COLL_PID= LOAD_PID= AGENT_PID= WRK_PID=
cleanup() {
    for p in $WRK_PID $AGENT_PID $LOAD_PID $COLL_PID; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    [ -n "${WP_KEEP:-}" ] || rm -rf "$STATE" "$RUN/agent"
}
trap cleanup EXIT

# ~20 % of the simulated hosts keep an incident open: load1* (111 hosts, high impact) and
# load*5 (100 hosts, 10 of them already in load1*, low impact); wpload's values are >= 0.
cat > "$RUN/rules.yaml" <<'YAML'
rules:
  - name: bench_hot
    metric: load.f1
    match: {host: {glob: "load1*"}, instance: s0}
    when: "last >= 0"
    impact: high
    urgency: high
    summary: "{metric} of {instance} on {host} is {value}"
  - name: bench_warm
    metric: load.f2
    match: {host: {glob: "load*5"}, instance: s1}
    when: "last >= 0"
    impact: low
    urgency: low
    summary: "{metric} of {instance} on {host} is {value}"
YAML
cat > "$RUN/collector.yaml" <<YAML
listen: 127.0.0.1:0
state_dir: $STATE
log_level: warn
tls:
  ca: $OUT/ca/ca.crt
  cert: $OUT/certs/watchpost-collector.crt
  key: $OUT/certs/watchpost-collector.key
  crl: $OUT/ca/crl.pem
limits:
  max_agents: 20000
  handshake_timeout: 30s
http:
  listen: 127.0.0.1:0
  static_dir: $SRC/dashboards
incidents: {rules: [$RUN/rules.yaml]}
rrd:
  archives: [{cf: AVERAGE, span: 10m}]
YAML
"$COLL" -c "$RUN/collector.yaml" --port-file "$RUN/collector.port" \
    --http-port-file "$RUN/http.port" >> "$RUN/collector.log" 2>&1 &
COLL_PID=$!
for _ in $(seq 1 600); do
    [ -s "$RUN/collector.port" ] && [ -s "$RUN/http.port" ] && break
    kill -0 "$COLL_PID" 2>/dev/null || die "collector exited: $(tail -n 5 "$RUN/collector.log")"
    sleep 0.1
done
PORT=$(cat "$RUN/collector.port")
HPORT=$(cat "$RUN/http.port")
log "collector pid $COLL_PID: agents on 127.0.0.1:$PORT, HTTP on 127.0.0.1:$HPORT"

TOKEN=$("$CLI" token add bench --role viewer --state-dir "$STATE" | grep -o 'wpt_[0-9a-f]*' | head -n1)
[ -n "$TOKEN" ] || die "watchpost token add printed no token"

# ---- load: wpload for the whole run, one real agent with the lines -----------------------------
npaths=$(wc -w <<< "$PATHS")
DURATION=$(((npaths + 1) * (SECS + 10) + 60))
"$WPLOAD" load --port "$PORT" --ca "$OUT/ca/ca.crt" --certs "$OUT/certs" --agents "$AGENTS" \
    --series "$SERIES" --fields "$FIELDS" --rate 1 --duration "$DURATION" --warmup 5 \
    --connect-timeout 600 --hs-timeout 40 --report "$RUN/wpload.report" \
    > "$RUN/wpload.out" 2> "$RUN/wpload.err" &
LOAD_PID=$!
cat > "$RUN/agent.yaml" <<YAML
agent:
  id: pbx1
  state_dir: $RUN/agent
  log_level: warn
collectors:
  - 127.0.0.1:$PORT
tls:
  ca: $OUT/ca/ca.crt
  cert: $OUT/certs/pbx1.crt
  key: $OUT/certs/pbx1.key
probes:
  - {kind: linetable, name: devlink, interval: 1s, group: seats, timeout: 5s,
     command: [$(command -v python3), $SRC/tests/bench/linegen.py, $RUN/agent/gen.json,
               $RUN/agent/gen.log, '$LINES', '$(((PER_MIN + 59) / 60))'],
     state_map: {Held: on_hold}}
YAML
"$AGENT" -c "$RUN/agent.yaml" >> "$RUN/agent.log" 2>&1 &
AGENT_PID=$!

api() { curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HPORT$1"; }
count() { # count PATH KEY: entries of the JSON list KEY
    api "$1" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['$2']))" 2>/dev/null ||
        echo 0
}
log "waiting for $AGENTS streaming agents, $LINES lines and the incidents"
for _ in $(seq 1 1200); do
    grep -q '^wpload: measuring' "$RUN/wpload.err" && [ "$(count /api/v1/lines lines)" -ge "$LINES" ] &&
        break
    kill -0 "$LOAD_PID" 2>/dev/null || die "wpload exited: $(tail -n 3 "$RUN/wpload.err")"
    kill -0 "$AGENT_PID" 2>/dev/null || die "agent exited: $(tail -n 3 "$RUN/agent.log")"
    sleep 0.5
done
sleep 5
NHOSTS=$(count /api/v1/hosts hosts)
NINC=$(count /api/v1/incidents incidents)
NLINES=$(count /api/v1/lines lines)
log "hosts $NHOSTS, open incidents $NINC, lines $NLINES"
[ "$NHOSTS" -ge "$AGENTS" ] || die "/api/v1/hosts lists $NHOSTS hosts"

# ---- windows ---------------------------------------------------------------------------------
acked() { "$CLI" status --state-dir "$STATE" 2>/dev/null | awk '$1 == "values_acked" {print $2}'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
printf '%s\n' "agents $AGENTS" "series $SERIES" "fields $FIELDS" "lines $NLINES" \
    "hosts $NHOSTS" "incidents $NINC" "conns $CONNS" "threads $THREADS" "secs $SECS" \
    "gzip ${WP_BENCH_GZIP:-0}" \
    > "$RUN/params"
: > "$RUN/results.txt"
window() { # window NAME [PATH]: SECS of wrk on PATH (none: idle), with the collector's figures
    local name=$1 path=${2:-} a0 a1 c0 c1 l0 l1 t0 t1 w=0 size=0
    local args=() url="http://127.0.0.1:$HPORT$path"
    if [ "$path" = wall ]; then
        args=(-s "$SRC/tests/bench/dashboard-wall.lua")
        url="http://127.0.0.1:$HPORT/"
    elif [ -n "$path" ]; then
        size=$(curl -sf -H "Authorization: Bearer $TOKEN" "${GZ[@]}" "$url" | wc -c)
    fi
    a0=$(acked); c0=$(ticks "$COLL_PID"); l0=$(ticks "$LOAD_PID"); t0=$(date +%s.%N)
    if [ -n "$path" ]; then
        wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --timeout 10s --latency "${args[@]}" \
            -H "Authorization: Bearer $TOKEN" "${GZ[@]}" "$url" \
            > "$RUN/wrk.$name.txt" 2>&1 &
        WRK_PID=$!
        local wt=0
        while kill -0 "$WRK_PID" 2>/dev/null; do
            wt=$(ticks "$WRK_PID" 2>/dev/null || echo "$wt")
            sleep 0.5
        done
        wait "$WRK_PID" || die "wrk failed on $path: $(cat "$RUN/wrk.$name.txt")"
        WRK_PID=
        w=$wt
    else
        sleep "$SECS"
    fi
    a1=$(acked); c1=$(ticks "$COLL_PID"); l1=$(ticks "$LOAD_PID"); t1=$(date +%s.%N)
    printf '%s %s %s %s %s %s %s %s\n' "$name" "${path:--}" "$(python3 -c "print($t1 - $t0)")" \
        $((a1 - a0)) $((c1 - c0)) $((l1 - l0)) "$w" "$size" >> "$RUN/results.txt"
    log "$name done"
    sleep 5
}
window idle
i=0
for p in $PATHS; do
    i=$((i + 1))
    window "p$i" "$p"
done
window idle-after

kill -TERM "$AGENT_PID" "$LOAD_PID" 2>/dev/null || true
wait "$AGENT_PID" 2>/dev/null || true
wait "$LOAD_PID" 2>/dev/null || true
AGENT_PID= LOAD_PID=
kill -TERM "$COLL_PID"
rc=0
wait "$COLL_PID" || rc=$?
COLL_PID=
[ "$rc" -eq 0 ] || log "collector exited with status $rc after SIGTERM"

python3 - "$RUN" "$TCK" <<'PY' | tee "$RUN/summary.txt"
import re, sys
run, tck = sys.argv[1], int(sys.argv[2])
P = dict(l.split() for l in open(f"{run}/params"))
print(f"==== dashboard bench: {P['hosts']} hosts ({P['agents']} wpload agents x {P['series']} "
      f"x {P['fields']} values/s + pbx1), {P['lines']} lines, {P['incidents']} open incidents; "
      f"wrk -t{P['threads']} -c{P['conns']} -d{P['secs']}s"
      + (" with Accept-Encoding: gzip" if P.get('gzip', '0') != '0' else ""))
def unit(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    return float(m[1]) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m[2]] if m else float("nan")
print(f"{'path':<18}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}{'non2xx':>8}"
      f"{'bytes':>9}{'acked/s':>10}{'coll CPU%':>10}{'wpload%':>8}{'wrk%':>6}")
for l in open(f"{run}/results.txt"):
    name, path, secs, acked, cticks, lticks, wticks, size = l.split()
    secs = float(secs)
    rps = p50 = p99 = mx = float("nan")
    errs = non2 = 0
    if path != "-":
        t = open(f"{run}/wrk.{name}.txt").read()
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t)[1])
        p50 = unit(re.search(r"^\s+50%\s+(\S+)", t, re.M)[1])
        p99 = unit(re.search(r"^\s+99%\s+(\S+)", t, re.M)[1])
        mx = unit(re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", t, re.M)[1])
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
        errs = sum(map(int, m.groups())) if m else 0
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
        non2 = int(m[1]) if m else 0
    print(f"{path if path != '-' else '(' + name + ')':<18}{rps:9.0f}{p50:9.1f}{p99:9.1f}{mx:9.0f}"
          f"{errs:8d}{non2:8d}{int(size):9d}{int(acked) / secs:10.0f}"
          f"{100 * int(cticks) / tck / secs:10.1f}{100 * int(lticks) / tck / secs:8.1f}"
          f"{100 * int(wticks) / tck / secs:6.1f}")
print(f"run dir: {run}")
PY
[ "$rc" -eq 0 ]
