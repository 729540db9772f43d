#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Line-state benchmark (not a ctest test): LINES phone lines changing state at CHANGES_PER_MIN
# through the real path: a Release agent's linetable probe runs tests/bench/linegen.py as its
# middleware command every second (each run is one round of changes, logged as the ground
# truth), the agent streams the states over mutual TLS, the collector stores them in lines.db
# and evaluates them against the default rules plus a line_state rule that opens an incident
# on every blocked line at once (for: 0s) and the line_mass rule.
#
#   tests/bench/lines.sh [LINES] [CHANGES_PER_MIN] [SECONDS]      default 2000 10000 180
#
# Prints: changes made and stored, lines whose stored history differs from what was made
# (order included), the collector's and agent's CPU, the rules engine's fire delay (arrival
# of the batch to the committed incident row: p50 / p99 / max) and how long the collector
# took to have every change after the load stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=$PWD
LINES=${1:-2000}
PER_MIN=${2:-10000}
SECS=${3:-180}
BUILD=${WP_BENCH_BUILD:-$SRC/build-bench}
OUT=${WP_BENCH_OUT:-$SRC/tests/bench/out}
mkdir -p "$OUT"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DWP_TESTS=ON > "$OUT/cmake.log" 2>&1 ||
    { echo "cmake configure failed: see $OUT/cmake.log"; exit 1; }
cmake --build "$BUILD" -j2 --target watchpost-collector watchpost watchpost-agent > /dev/null
export WP_BIN=$BUILD WP_SRC=$SRC
. "$SRC/tests/integration/lib.sh"
CHANGES=$(( (PER_MIN + 59) / 60 ))

ca_init
issue pbx1
cp "$SRC/packaging/etc/rules.d/default.yaml" "$T/default.yaml"
cat > "$T/bench.yaml" <<'YAML'
rules:
  - name: bench_blocked_now
    line_state: {state: blocked, for: 0s}
    impact: low
    urgency: low
    key: [line]
    summary: "Line {line} on {host} is blocked"
YAML
collector_config "incidents:" "  rules: [$T/default.yaml, $T/bench.yaml]"
start_collector
AGENT_PROBES="  - {kind: linetable, name: devlink, interval: 1s, group: seats, timeout: 5s,
      command: [$(command -v python3), $SRC/tests/bench/linegen.py, $T/gen.json, $T/gen.log,
                '$LINES', '$CHANGES'],
      state_map: {Held: on_hold}}"
agent_config pbx1
start_agent pbx1

stored() { # changes stored in lines.db after each line's first report
    python3 - "$T/state/lines.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=10)
n = db.execute("SELECT count(*) - count(DISTINCT object) FROM history "
               "WHERE object GLOB '1[0-9][0-9][0-9][0-9]'").fetchone()[0]
print(n)
PY
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
made() { wc -l < "$T/gen.log" 2>/dev/null || echo 0; }

first() { [ "$(stored)" -ge 0 ] && [ -s "$T/gen.log" ]; }
wait_for 60 "the first changes" first
log "load: $LINES lines, $CHANGES changes a second ($((CHANGES * 60))/min), ${SECS}s"
c0=$(cpu_ticks "${PIDS[collector]}"); a0=$(cpu_ticks "${PIDS[pbx1]}"); t0=$(date +%s.%N)
sleep "$SECS"
c1=$(cpu_ticks "${PIDS[collector]}"); a1=$(cpu_ticks "${PIDS[pbx1]}"); t1=$(date +%s.%N)
touch "$T/gen.json.stop"
sleep 2
stop_at=$(date +%s.%N)
total=$(made)
caught() { [ "$(stored)" -ge "$total" ]; }
wait_for 120 "every change stored" caught
done_at=$(date +%s.%N)
"$BIN_CLI" status --state-dir "$T/state" > "$T/status.txt"

python3 - "$T" "$c0" "$c1" "$a0" "$a1" "$t0" "$t1" "$stop_at" "$done_at" <<'PY'
import os, sqlite3, sys
T = sys.argv[1]
c0, c1, a0, a1 = (int(x) for x in sys.argv[2:6])
t0, t1, stop_at, done_at = (float(x) for x in sys.argv[6:10])
tck = os.sysconf("SC_CLK_TCK")
norm = {"Idle": "idle", "Connected": "in_use", "Ringing": "ringing", "Busy": "busy",
        "Held": "on_hold", "OutOfService": "out_of_service", "Blocked": "blocked"}
want = {}
for l in open(f"{T}/gen.log"):
    rnd, line, raw = l.split()
    want.setdefault(line, ["idle"]).append(norm[raw])
db = sqlite3.connect(f"file:{T}/state/lines.db?mode=ro", uri=True)
got = {}
for obj, st in db.execute("SELECT object, state FROM history WHERE object GLOB "
                          "'1[0-9][0-9][0-9][0-9]' ORDER BY id"):
    got.setdefault(obj, []).append(st)
bad = [k for k in set(want) | set(got)
       if want.get(k, ["idle"]) != got.get(k, ["idle"])]
made = sum(len(v) - 1 for v in want.values())
stored = sum(len(v) - 1 for v in got.values())
st = dict(l.split()[:2] for l in open(f"{T}/status.txt") if len(l.split()) >= 2)
win = t1 - t0
print("==== lines benchmark")
print(f"lines                         {len(got)}")
print(f"changes made / stored         {made} / {stored} "
      f"({made / (stop_at - t0) * 60:.0f} per minute offered)")
print(f"lines whose history differs   {len(bad)} {sorted(bad)[:5]}")
print(f"collector CPU (window)        {100 * (c1 - c0) / tck / win:.1f} % of one core")
print(f"agent CPU (window)            {100 * (a1 - a0) / tck / win:.1f} % of one core "
      f"(the generator's python is not counted)")
for k in ("rules_fires", "rules_fire_delay_p50_us", "rules_fire_delay_p99_us",
          "rules_fire_delay_max_us"):
    print(f"{k:<30}{st.get(k, '?')}")
print(f"all stored after load stop    {done_at - stop_at:.1f} s")
sys.exit(1 if bad or made != stored else 0)
PY
stop pbx1
stop collector
