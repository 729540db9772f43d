#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Ingest benchmark (not a ctest test): a Release collector on 127.0.0.1 fed by wpload, N
# simulated agents over mutual TLS, each sending one batch of SERIES rows x FIELDS values per
# second. Prints values/s acked (durable: journal fsynced), values/s applied to RRD (with a
# drain phase after the load), collector CPU % and RSS (from /proc every second), wpload CPU,
# ack latency, and the disk the RRD files take.
#
#   tests/bench/ingest.sh [AGENTS] [SERIES] [FIELDS] [SECONDS]     default 1000 50 10 60
#   tests/bench/ingest.sh --summary RUN_DIR                         print a run's figures again
#
# Environment:
#   WP_BENCH_RESTART=1   kill -9 the collector min(20, SECONDS/4) s into the window, restart it, time
#                        until every agent streams again (session tickets: resumed count)
#   WP_BENCH_OUT=DIR     certificates (kept for the next run) and run dirs (default
#                        tests/bench/out); a run's state is deleted unless WP_KEEP=1
#   WP_BENCH_BUILD=DIR   build dir (default build-bench; configured Release with WP_TESTS)
#   WP_BENCH_RAMP=S      spread the agents' first connects over S s (wpload's default:
#                        2 + N/50 s: a full handshake costs ~10 ms of CPU on each side,
#                        and both sides share the 2 cores here)
#   WP_BENCH_WARMUP=S    streaming time before the window opens (default 10)
#   WP_BENCH_FLUSH=D     rrd.flush_interval (default 60s, the production default)
#   WP_BENCH_RATE=R      batches per second per agent (default 1)
#   WP_BENCH_RULES=FILE  load this rules file into the collector (incidents.rules) and print
#                        the rules engine's figures (tests/bench/rules.sh makes one)
#   WP_BENCH_IDLE_TIMEOUT=D  limits.idle_timeout (default 120s, the production default; the
#                        2026-11-23 figures were taken with 24h, see docs/PERFORMANCE.md)
set -euo pipefail

# summarize RUN_DIR: print the figures of a run (also: ingest.sh --summary RUN_DIR).
summarize() {
    python3 - "$1" <<'PY'
import os, sys
run = sys.argv[1]
P = {k: v for k, v in (l.split() for l in open(f"{run}/params") if l.strip())}
agents, series, fields = int(P["agents"]), int(P["series"]), int(P["fields"])
rate, restart = float(P["rate"]), P["restart"] == "1"
rrd_bytes, journal_bytes = int(P["rrd_bytes"]), int(P["journal_bytes"])
tck = os.sysconf("SC_CLK_TCK")

def kv(path, sep="="):
    d = {}
    if not os.path.exists(path):
        return d
    for line in open(path):
        parts = line.split(sep, 1) if sep == "=" else line.split(None, 1)
        if len(parts) == 2:
            try:
                d[parts[0].strip()] = float(parts[1])
            except ValueError:
                pass
    return d

W = kv(f"{run}/wpload.report")
s0, s1, sd = (kv(f"{run}/status.{n}", None) for n in ("win0", "win1", "drain"))
samples = [tuple(map(float, l.split())) for l in open(f"{run}/samples.txt") if l.strip()]

def cpu_rss(t0, t1):
    """CPU % of one core (process, loop thread) and max RSS of the collector over [t0, t1]
    (per-pid deltas, so a restart does not count)."""
    ticks, mticks, secs, rss = 0.0, 0.0, 0.0, 0
    prev = None
    for s in samples:
        if s[0] < t0 - 0.5 or s[0] > t1 + 0.5:
            prev = None
            continue
        rss = max(rss, int(s[3]))
        if prev is not None and prev[1] == s[1]:
            ticks += s[2] - prev[2]
            mticks += s[4] - prev[4]
            secs += s[0] - prev[0]
        prev = s
    if secs <= 0:
        return float("nan"), float("nan"), rss
    return 100.0 * ticks / tck / secs, 100.0 * mticks / tck / secs, rss

def d(a, b, k):
    return b.get(k, 0) - a.get(k, 0)

win = s1["time"] - s0["time"]
drain = sd["time"] - s1["time"]
cpu_w, loop_w, rss_w = cpu_rss(s0["time"], s1["time"])
cpu_d, loop_d, rss_d = cpu_rss(s1["time"], sd["time"])
rss_all = max([int(s[3]) for s in samples] or [0])
offered = agents * series * fields * rate
acked_coll = d(s0, s1, "values_acked") / win if win > 0 else 0
rrd_win = d(s0, s1, "rrd_values_written") / win if win > 0 else 0
rrd_all = d(s0, sd, "rrd_values_written") / (win + drain) if win + drain > 0 else 0
calls = d(s0, sd, "rrd_update_calls")
vals_per_call = d(s0, sd, "rrd_values_written") / calls if calls else 0
syncs = d(s0, s1, "journal_syncs") / win if win > 0 else 0
written, acked = sd.get("rrd_values_written", 0), sd.get("values_acked", 0)

print(f"==== ingest bench: {agents} agents x {series} series x {fields} fields at {rate:g}/s")
print(f"offered                      {offered:12,.0f} values/s")
print(f"acked durable (wpload)       {W.get('values_acked_per_s', 0):12,.0f} values/s "
      f"over {W.get('window_s', 0):.1f} s")
if restart:
    print("(restart run: the collector's counters restarted mid-window, so its rates are not shown)")
else:
    print(f"acked (collector counter)    {acked_coll:12,.0f} values/s over {win:.1f} s")
    print(f"applied to RRD in window     {rrd_win:12,.0f} values/s")
    print(f"applied to RRD, window+drain {rrd_all:12,.0f} values/s (drain {drain:.1f} s; "
          f"{vals_per_call:,.0f} values per rrd_update call)")
if not restart:
    print(f"RRD written / acked, total   {written:12,.0f} / {acked:,.0f} "
          f"({100.0 * written / acked if acked else 0:.1f}%; skipped rows "
          f"{sd.get('rrd_rows_skipped', 0):.0f}, errors {sd.get('rrd_errors', 0):.0f})")
    print(f"journal fsyncs               {syncs:12,.1f} /s")
print(f"collector CPU (window)       {cpu_w:12.1f} % of one core (loop thread {loop_w:.1f} %, "
      f"other threads {cpu_w - loop_w:.1f} %)")
print(f"collector CPU (drain)        {cpu_d:12.1f} % of one core (loop thread {loop_d:.1f} %)")
print(f"collector RSS max            {rss_all / 1024:12.1f} MiB "
      f"({rss_all * 1024 / agents / 1024:.1f} KiB per agent)")
print(f"wpload CPU (window)          {W.get('cpu_window_pct', 0):12.1f} % of one core; "
      f"RSS max {W.get('rss_max_kib', 0) / 1024:.0f} MiB")
print(f"ack latency p50/p90/p99/max  {W.get('ack_p50_ms', 0):.1f} / {W.get('ack_p90_ms', 0):.1f} / "
      f"{W.get('ack_p99_ms', 0):.1f} / {W.get('ack_max_ms', 0):.1f} ms "
      f"({W.get('ack_samples', 0):.0f} batches)")
print(f"connect all agents           {W.get('connect_all_s', 0):12.1f} s; full handshakes "
      f"{W.get('hs_full', 0):.0f} (client p50 {W.get('hs_full_p50_ms', 0):.1f} ms, "
      f"p99 {W.get('hs_full_p99_ms', 0):.1f} ms)")
print(f"wpload failures              connect {W.get('fail_connect', 0):.0f}, tls "
      f"{W.get('fail_tls', 0):.0f}, closed {W.get('fail_closed', 0):.0f}, timeout "
      f"{W.get('fail_timeout', 0):.0f}, skipped ticks {W.get('skipped_ticks', 0):.0f}, "
      f"lagged slots {W.get('lag_slots', 0):.0f}")
if "rules_samples" in sd and P.get("rules", "-") != "-":
    print(f"---- rules ({P['rules']})")
    print(f"rule samples evaluated       {d(s0, s1, 'rules_samples') / win if win > 0 else 0:12,.0f} /s; "
          f"problems tracked {sd.get('rules_problems', 0):,.0f}")
    print(f"incidents opened or reopened {d(s0, s1, 'incidents_opened'):12,.0f} in the window "
          f"({sd.get('incidents_opened', 0):,.0f} in all); value updates "
          f"{d(s0, s1, 'rules_fires') - d(s0, s1, 'incidents_opened'):,.0f}; errors "
          f"{sd.get('rules_errors', 0):.0f}")
    # window figures from the cumulative le buckets: a percentile is reported as the bound
    # of the first bucket that holds it (an upper bound)
    les = sorted(((float("inf") if k.endswith("_inf") else float(k[len("rules_open_delay_le_"):-2]),
                   d(s0, s1, k)) for k in sd if k.startswith("rules_open_delay_le_")))
    def pct(q):
        total = les[-1][1] if les else 0
        for bound, cnt in les:
            if total and cnt >= q * total:
                return bound / 1000
        return float("nan")
    print(f"data arrived -> opened row   window: p50 <= {pct(0.5):g} ms, p99 <= {pct(0.99):g} ms "
          f"({les[-1][1] if les else 0:.0f} opened); last 8,192 in all: p50 "
          f"{sd.get('rules_fire_delay_p50_us', 0) / 1000:.2f} ms, p99 "
          f"{sd.get('rules_fire_delay_p99_us', 0) / 1000:.2f} ms, max "
          f"{sd.get('rules_fire_delay_max_us', 0) / 1000:.2f} ms")
print(f"disk: RRD files              {rrd_bytes / 2**20:12,.0f} MiB in "
      f"{sd.get('rrd_files', 0):.0f} files; journal {journal_bytes / 2**20:.0f} MiB")
if restart:
    t = kv(f"{run}/restart.times")
    pre, rs = kv(f"{run}/status.prekill", None), kv(f"{run}/status.restart", None)
    print(f"---- restart (kill -9 with {pre.get('agents_connected', 0):.0f} agents connected)")
    print(f"listening again after        {t['t_listen'] - t['t_kill']:12.2f} s "
          f"(journal replay: {rs.get('replayed_batches', 0):.0f} batches)")
    if t.get("t_back", 0) > 0:
        print(f"all agents streaming after   {t['t_back'] - t['t_kill']:12.2f} s from the kill")
    else:
        print("all agents streaming after   NOT within 600 s")
    print(f"handshakes after restart     {rs.get('handshakes', 0):12.0f}, resumed "
          f"{rs.get('resumed', 0):.0f} (collector counters when all were back)")
    print(f"wpload: reconnects {W.get('reconnects', 0):.0f}, outage p50/p99/max "
          f"{W.get('outage_p50_ms', 0) / 1000:.1f} / {W.get('outage_p99_ms', 0) / 1000:.1f} / "
          f"{W.get('outage_max_ms', 0) / 1000:.1f} s, resumed handshakes "
          f"{W.get('hs_resumed', 0):.0f} (p50 {W.get('hs_resumed_p50_ms', 0):.1f} ms), "
          f"all-up recovery {W.get('last_recovery_s', 0):.1f} s")
    print(f"after the restart            dup batches {sd.get('dup_batches', 0):.0f}, missing "
          f"{sd.get('missing_batches', 0):.0f}, replayed values {sd.get('replayed_values', 0):,.0f}; "
          f"RRD rows skipped as already written {sd.get('rrd_rows_skipped', 0):,.0f}; "
          f"every acked value in RRD: "
          f"{'yes' if sd.get('rrd_values_written', 0) + sd.get('rrd_rows_skipped', 0) * fields >= sd.get('values_acked', 0) + sd.get('replayed_values', 0) else 'NO'}")
print(f"run dir: {run}")
PY
}

if [ "${1:-}" = "--summary" ]; then
    summarize "$2"
    exit
fi

SRC=$(cd "$(dirname "$0")/../.." && pwd)
AGENTS=${1:-1000}
SERIES=${2:-50}
FIELDS=${3:-10}
SECS=${4:-60}
RATE=${WP_BENCH_RATE:-1}
RESTART=${WP_BENCH_RESTART:-0}
OUT=${WP_BENCH_OUT:-$SRC/tests/bench/out}
BUILD=${WP_BENCH_BUILD:-$SRC/build-bench}
WARMUP=${WP_BENCH_WARMUP:-10}
FLUSH=${WP_BENCH_FLUSH:-60s}
DRAIN_MAX=${WP_BENCH_DRAIN_MAX:-300}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- descriptors: one per agent connection, plus the RRD writer and journal ---------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 20000 ] || ulimit -n 20000 2>/dev/null || true
[ "$(ulimit -n)" -ge $((AGENTS + 256)) ] ||
    die "ulimit -n is $(ulimit -n); $AGENTS agents need $((AGENTS + 256))"

# ---- build -------------------------------------------------------------------------------
mkdir -p "$OUT"
log "building Release into $BUILD"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DWP_TESTS=ON > "$OUT/cmake.log" 2>&1 ||
    die "cmake configure failed: see $OUT/cmake.log"
cmake --build "$BUILD" -j2 --target watchpost-collector watchpost wpload > /dev/null ||
    die "build failed"
COLL=$BUILD/collector/watchpost-collector
CLI=$BUILD/collector/watchpost
WPLOAD=$BUILD/tests/wpload

# ---- certificates (kept across runs) ----------------------------------------------------------
export WATCHPOST_CA_DIR=$OUT/ca
if [ ! -f "$OUT/ca/ca.crt" ]; then
    "$CLI" ca init --cn "watchpost bench CA" > /dev/null
fi
if [ ! -f "$OUT/certs/watchpost-collector.crt" ]; then
    "$CLI" ca issue watchpost-collector --server --out "$OUT/certs" > /dev/null
fi
log "certificates for $AGENTS agents (wp_pki: a new P-256 key each; existing ones are kept)"
"$WPLOAD" mkcerts --ca-dir "$OUT/ca" --out "$OUT/certs" --agents "$AGENTS" >&2

# ---- run dir, collector ---------------------------------------------------------------------------
RUN=$OUT/run-$(date +%Y%m%d-%H%M%S)-${AGENTS}x${SERIES}x${FIELDS}
[ "$RESTART" = 1 ] && RUN=$RUN-restart
mkdir -p "$RUN"
STATE=$RUN/state
COLL_PID=
LOAD_PID=
SAMP_PID=
cleanup() {
    for p in $LOAD_PID $COLL_PID $SAMP_PID; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [ -z "${WP_KEEP:-}" ] && [ -d "$STATE" ]; then
        rm -rf "$STATE"
    fi
}
trap cleanup EXIT

write_config() { # write_config LISTEN
    RULES_YAML=
    if [ -n "${WP_BENCH_RULES:-}" ]; then
        RULES_YAML="incidents: {rules: [$WP_BENCH_RULES]}"
    fi
    cat > "$RUN/collector.yaml" <<YAML
listen: $1
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
  idle_timeout: ${WP_BENCH_IDLE_TIMEOUT:-120s}
$RULES_YAML
rrd:
  flush_interval: $FLUSH
  archives: [{cf: AVERAGE, span: 10m}]
YAML
}

start_collector() {
    rm -f "$RUN/collector.port"
    "$COLL" -c "$RUN/collector.yaml" --port-file "$RUN/collector.port" >> "$RUN/collector.log" 2>&1 &
    COLL_PID=$!
    echo "$COLL_PID" > "$RUN/collector.pid"
    for _ in $(seq 1 600); do
        [ -s "$RUN/collector.port" ] && return 0
        kill -0 "$COLL_PID" 2>/dev/null || die "collector exited: $(tail -n 5 "$RUN/collector.log")"
        sleep 0.1
    done
    die "collector did not listen within 60 s"
}

cstat() { "$CLI" status --state-dir "$STATE" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }
snapshot() { # snapshot NAME: counters with a wall timestamp
    { echo "time $(date +%s.%N)"; "$CLI" status --state-dir "$STATE" 2>/dev/null || true; } \
        > "$RUN/status.$1"
}

write_config 127.0.0.1:0
start_collector
PORT=$(cat "$RUN/collector.port")
log "collector pid $COLL_PID on 127.0.0.1:$PORT, state in $STATE"

# Sampler: the collector's utime+stime and VmRSS every second (follows restarts via the pid
# file): lines "wall_time pid cpu_ticks rss_kib loop_thread_ticks".
python3 - "$RUN/collector.pid" "$RUN/samples.txt" <<'PY' &
import os, sys, time
pidfile, out = sys.argv[1], sys.argv[2]
with open(out, "w", buffering=1) as f:
    for _ in range(86400):
        try:
            pid = int(open(pidfile).read().strip())
            st = open(f"/proc/{pid}/stat").read()
            fields = st[st.rindex(")") + 2:].split()
            ticks = int(fields[11]) + int(fields[12])
            # the loop thread alone (its tid is the pid): connections, TLS, decode, journal
            # queueing; the RRD writer and libuv's pool are the other threads
            mt = open(f"/proc/{pid}/task/{pid}/stat").read()
            mfields = mt[mt.rindex(")") + 2:].split()
            mticks = int(mfields[11]) + int(mfields[12])
            rss = 0
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
            f.write(f"{time.time():.3f} {pid} {ticks} {rss} {mticks}\n")
        except (OSError, ValueError):
            pass
        time.sleep(1)
PY
SAMP_PID=$!

# ---- load ------------------------------------------------------------------------------------------
RAMP_ARGS=()
[ -n "${WP_BENCH_RAMP:-}" ] && RAMP_ARGS=(--ramp "$WP_BENCH_RAMP")
log "wpload: $AGENTS agents x $SERIES series x $FIELDS fields at $RATE/s" \
    "= $((AGENTS * SERIES * FIELDS)) values/s offered, window $SECS s after a $WARMUP s warmup"
"$WPLOAD" load --port "$PORT" --ca "$OUT/ca/ca.crt" --certs "$OUT/certs" --agents "$AGENTS" \
    --series "$SERIES" --fields "$FIELDS" --rate "$RATE" --duration "$SECS" --warmup "$WARMUP" \
    --connect-timeout 600 --hs-timeout 40 --backoff-min 500 --backoff-max 10000 "${RAMP_ARGS[@]}" \
    --report "$RUN/wpload.report" > "$RUN/wpload.out" 2> "$RUN/wpload.err" &
LOAD_PID=$!

measuring() { grep -q '^wpload: measuring' "$RUN/wpload.err"; }
for _ in $(seq 1 12000); do
    measuring && break
    kill -0 "$LOAD_PID" 2>/dev/null || die "wpload exited early: $(tail -n 5 "$RUN/wpload.err")"
    sleep 0.1
done
measuring || die "wpload never started measuring"
snapshot win0
log "window open: $(grep '^wpload: measuring' "$RUN/wpload.err")"

if [ "$RESTART" = 1 ]; then
    delay=$((SECS / 4 < 20 ? SECS / 4 : 20))
    sleep "$delay"
    snapshot prekill
    log "kill -9 the collector with $(cstat agents_connected) agents connected"
    T_KILL=$(date +%s.%N)
    kill -KILL "$COLL_PID"
    wait "$COLL_PID" 2>/dev/null || true
    write_config "127.0.0.1:$PORT"
    start_collector
    T_LISTEN=$(date +%s.%N)
    log "collector restarted (pid $COLL_PID), listening again after" \
        "$(python3 -c "print(f'{$T_LISTEN - $T_KILL:.2f}')") s"
    T_BACK=
    for _ in $(seq 1 6000); do
        if [ "$(cstat agents_connected)" = "$AGENTS" ]; then
            T_BACK=$(date +%s.%N)
            break
        fi
        sleep 0.1
    done
    snapshot restart
    [ -n "$T_BACK" ] || log "not every agent came back within 600 s"
    printf '%s\n' "t_kill=$T_KILL" "t_listen=$T_LISTEN" "t_back=${T_BACK:-0}" > "$RUN/restart.times"
fi

# wpload stops by itself after the window; bound the wait anyway
for _ in $(seq 1 $(((SECS + 900) * 10))); do
    kill -0 "$LOAD_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$LOAD_PID" 2>/dev/null && { kill -TERM "$LOAD_PID"; log "wpload overran; stopped it"; }
wait "$LOAD_PID" || die "wpload failed: $(tail -n 5 "$RUN/wpload.err")"
LOAD_PID=
snapshot win1

# ---- drain: until the RRD writer has nothing pending -------------------------------------------
log "drain: waiting for the RRD writer (flush_interval $FLUSH, at most $DRAIN_MAX s)"
drained() {
    local pending
    pending=$(cstat rrd_pending_rows)
    if [ -n "$pending" ]; then
        [ "$pending" = 0 ]
    else # the counter is missing: every acked or replayed value is written or was skipped as
        # already written (every bench series has FIELDS fields)
        [ $(($(cstat rrd_values_written) + $(cstat rrd_rows_skipped) * FIELDS)) -ge \
            $(($(cstat values_acked) + $(cstat replayed_values))) ]
    fi
}
for _ in $(seq 1 $((DRAIN_MAX * 2))); do
    drained && break
    sleep 0.5
done
snapshot drain
RRD_BYTES=$(du -sb "$STATE/rrd" | cut -f1)
JOURNAL_BYTES=$(du -sb "$STATE/journal" | cut -f1)

kill -TERM "$COLL_PID"
rc=0
for _ in $(seq 1 3000); do
    kill -0 "$COLL_PID" 2>/dev/null || break
    sleep 0.1
done
wait "$COLL_PID" || rc=$?
COLL_PID=
[ "$rc" -eq 0 ] || log "collector exited with status $rc after SIGTERM"
kill "$SAMP_PID" 2>/dev/null || true
wait "$SAMP_PID" 2>/dev/null || true
SAMP_PID=

# ---- figures ----------------------------------------------------------------------------------------
printf '%s\n' "agents $AGENTS" "series $SERIES" "fields $FIELDS" "rate $RATE" \
    "rrd_bytes $RRD_BYTES" "journal_bytes $JOURNAL_BYTES" "restart $RESTART" \
    "rules ${WP_BENCH_RULES:--}" > "$RUN/params"
summarize "$RUN" | tee "$RUN/summary.txt"
[ "$rc" -eq 0 ] || exit 1
