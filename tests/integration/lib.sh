# SPDX-License-Identifier: Apache-2.0
# Shared helpers for integration tests: a temp dir, a CA, real daemons on 127.0.0.1 with
# ports read back from --port-file, and a trap that kills and waits for every daemon.
# Source it: . "$(dirname "$0")/lib.sh"
set -euo pipefail

WP_SRC=${WP_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
WP_BIN=${WP_BIN:-$WP_SRC/build}
BIN_COLL=$WP_BIN/collector/watchpost-collector
BIN_AGENT=$WP_BIN/agent/watchpost-agent
BIN_CLI=$WP_BIN/collector/watchpost
for b in "$BIN_COLL" "$BIN_AGENT" "$BIN_CLI"; do
    [ -x "$b" ] || { echo "missing $b (build first)"; exit 1; }
done

T=$(mktemp -d /tmp/wp-it.XXXXXX)
export WATCHPOST_CA_DIR=$T/ca
declare -A PIDS=()
# LeakSanitizer is on in Debug builds; daemons must exit 0 on SIGTERM.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

dump_logs() {
    for f in "$T"/*.log; do
        [ -f "$f" ] || continue
        echo "---- $(basename "$f") (last 40 lines)"
        tail -n 40 "$f"
    done
}

fail() {
    echo "FAIL: $*"
    dump_logs
    exit 1
}

cleanup() {
    local rc=$?
    for name in "${!PIDS[@]}"; do
        kill -KILL "${PIDS[$name]}" 2>/dev/null || true
        wait "${PIDS[$name]}" 2>/dev/null || true
    done
    # tests that mounted something under $T (a tmpfs in a private namespace)
    awk -v t="$T" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    if [ "$rc" -ne 0 ] || [ -n "${WP_KEEP:-}" ]; then
        echo "test files kept in $T"
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT

# wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.2 s, bounded.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local n=$((secs * 5))
    for _ in $(seq 1 "$n"); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    fail "timed out after ${secs}s waiting for: $what"
}

ca_init() {
    "$BIN_CLI" ca init --cn "test CA" >/dev/null
    "$BIN_CLI" ca issue watchpost-collector --server --out "$T/certs" >/dev/null
}

issue() { # issue NAME
    "$BIN_CLI" ca issue "$1" --out "$T/certs" >/dev/null
}

# collector_config [EXTRA YAML LINES...]: writes $T/collector.yaml for a test collector
# (flushes RRD every 2 s, checks the CRL every second, heartbeat of one step; RRD files in
# $RRD_DIR and archives $RRD_ARCHIVES when set). Extra lines go after the rrd section (new top-level sections).
collector_config() {
    cat > "$T/collector.yaml" <<YAML
listen: 127.0.0.1:0
state_dir: $T/state
log_level: ${WP_LOG_LEVEL:-info}
tls:
  ca: $T/ca/ca.crt
  cert: $T/certs/watchpost-collector.crt
  key: $T/certs/watchpost-collector.key
  crl: $T/ca/crl.pem
  crl_check_interval: 1s
rrd:
  flush_interval: 2s
  heartbeat_steps: 1
${RRD_DIR:+  dir: $RRD_DIR}
${RRD_ARCHIVES:+  archives: $RRD_ARCHIVES}
YAML
    for line in "$@"; do
        printf '%s\n' "$line" >> "$T/collector.yaml"
    done
}

start_collector() {
    rm -f "$T/collector.port"
    "$BIN_COLL" -c "$T/collector.yaml" --port-file "$T/collector.port" >> "$T/collector.log" 2>&1 &
    PIDS[collector]=$!
    wait_for 30 "collector port file" test -s "$T/collector.port"
    COLL_PORT=$(cat "$T/collector.port")
}

# start_collector_http: start_collector with its HTTP server (an http: section in
# $T/collector.yaml): waits for both port files; COLL_PORT is the agents' port, HP the HTTP
# port. The port files are removed first, so that a restart waits for the new ones.
start_collector_http() {
    rm -f "$T/collector.port" "$T/http.port"
    "$BIN_COLL" -c "$T/collector.yaml" --port-file "$T/collector.port" \
        --http-port-file "$T/http.port" >> "$T/collector.log" 2>&1 &
    PIDS[collector]=$!
    wait_for 30 "collector HTTP port file" test -s "$T/http.port"
    wait_for 30 "collector port file" test -s "$T/collector.port"
    COLL_PORT=$(cat "$T/collector.port")
    HP=$(cat "$T/http.port")
}

# cli ARGS...: the watchpost CLI on this test's state dir.
cli() { "$BIN_CLI" "$@" --state-dir "$T/state"; }

# user_add NAME ROLE PASSWORD: a dashboard/API user (`watchpost user add`, password on stdin).
user_add() {
    mkdir -p "$T/state"
    printf '%s\n' "$3" | cli user add "$1" --role "$2"
}

# inc ARGS...: `watchpost incidents` on this test's state dir.
inc() { "$BIN_CLI" incidents --state-dir "$T/state" "$@"; }

# inc_field RULE COLUMN [STATUS]: a column of the newest incident of RULE (of any status by
# default), empty when there is none.
inc_field() {
    inc list --status "${3:-all}" --format csv | python3 -c '
import csv, sys
rows = [r for r in csv.DictReader(sys.stdin.read().lstrip("\ufeff").splitlines())
        if r["rule"] == sys.argv[1]]
rows.sort(key=lambda r: int(r["id"]))
print(rows[-1][sys.argv[2]] if rows else "")' "$1" "$2"
}

# inc_has RULE COLUMN VALUE: true when that column of RULE's newest incident is VALUE.
inc_has() { [ "$(inc_field "$1" "$2")" = "$3" ]; }

# rules_config [-]: writes $T/rules.yaml with the rule host_silent (nothing from a host for
# 3 s: a high impact, high urgency availability incident); with "-" the YAML on stdin is
# appended: more rules ("  - name: ..."), keys of host_silent itself ("    runbook: |") or
# other top-level sections (groups:, maintenance:).
rules_config() {
    cat > "$T/rules.yaml" <<'YAML'
rules:
  - name: host_silent
    nodata: 3s
    impact: high
    urgency: high
    category: availability
    summary: "{host} sends nothing"
YAML
    if [ "${1:-}" = - ]; then
        cat >> "$T/rules.yaml"
    fi
}

# start_recv: the scripted HTTP receiver (httprecv.py) on $T/recv (script it with files put
# there, before or while it runs); RP is its port.
start_recv() {
    mkdir -p "$T/recv"
    python3 "$WP_SRC/tests/integration/httprecv.py" "$T/recv" > "$T/recv.log" 2>&1 &
    PIDS[recv]=$!
    wait_for 10 "receiver port" test -s "$T/recv/port"
    RP=$(cat "$T/recv/port")
}

# chromium_require: CHROMIUM (exported) is the headless Chromium that browser.py drives; without
# one the test is skipped.
chromium_require() {
    CHROMIUM=${CHROMIUM:-$(command -v chromium || true)}
    [ -n "$CHROMIUM" ] || { echo "SKIP: chromium not installed (scripts/deps.sh installs it)"; exit 0; }
    export CHROMIUM
}

# http_client [NAME [CURL ARGS...]]: BASE and the array CURL for requests to the collector's
# HTTP port $HP: HTTPS to NAME (its certificate issued by the test CA, NAME resolved to
# 127.0.0.1) when NAME is not empty, else plain HTTP to 127.0.0.1. CURL ARGS go on every
# request; each is bounded by HTTP_TIMEOUT seconds (10).
http_client() {
    local name=${1:-}
    [ "$#" -eq 0 ] || shift
    if [ -n "$name" ]; then
        BASE="https://$name:$HP"
        CURL=(curl -sS --max-time "${HTTP_TIMEOUT:-10}" --cacert "$T/ca/ca.crt"
            --resolve "$name:$HP:127.0.0.1" "$@")
    else
        BASE="http://127.0.0.1:$HP"
        CURL=(curl -sS --max-time "${HTTP_TIMEOUT:-10}" "$@")
    fi
}

# code METHOD PATH [CURL ARGS...]: one request to $BASE$PATH with "${CURL[@]}"; prints the
# status code, the body goes to $HTTP_OUT ($T/out.json).
code() {
    local m=$1 p=$2
    shift 2
    "${CURL[@]}" -X "$m" -o "${HTTP_OUT:-$T/out.json}" -w '%{http_code}' "$@" "$BASE$p"
}

# jq_ EXPR: prints the Python expression EXPR over the last body ($HTTP_OUT) parsed as JSON (d).
jq_() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
        "${HTTP_OUT:-$T/out.json}" "$1"
}

# api_login NAME PASSWORD: POST /api/v1/login (code); requires 200 and NAME in the reply. The
# session cookie goes to $T/NAME.jar, the reply's headers to $T/NAME.hdr, its CSRF token to
# $T/NAME.csrf.
api_login() {
    local c
    c=$(code POST /api/v1/login -c "$T/$1.jar" -D "$T/$1.hdr" -H 'Content-Type: application/json' \
        --data-binary "{\"user\": \"$1\", \"password\": \"$2\"}")
    [ "$c" = 200 ] || fail "login $1 gave $c: $(cat "${HTTP_OUT:-$T/out.json}")"
    jq_ 'd["csrf"]' > "$T/$1.csrf"
    [ "$(jq_ 'd["user"]')" = "$1" ] || fail "login reply $(cat "${HTTP_OUT:-$T/out.json}")"
}

# agent_config NAME [ID] [PORT]: $T/NAME.yaml; probes from $AGENT_PROBES (YAML list items).
agent_config() {
    local name=$1 id=${2:-$1} port=${3:-$COLL_PORT}
    cat > "$T/$name.yaml" <<YAML
agent:
  id: $id
  state_dir: $T/$name
  log_level: ${WP_LOG_LEVEL:-info}
${AGENT_LABELS:+  labels: $AGENT_LABELS}
collectors:
  - 127.0.0.1:$port
tls:
  ca: ${AGENT_CA:-$T/ca/ca.crt}
  cert: ${AGENT_CERT:-$T/certs/$name.crt}
  key: ${AGENT_KEY:-$T/certs/$name.key}
sender:
  backoff_min: 200ms
  backoff_max: 1s
probes:
${AGENT_PROBES:-  - {kind: host, interval: 1s\}}
YAML
}

start_agent() { # start_agent NAME
    "$BIN_AGENT" -c "$T/$1.yaml" >> "$T/$1.log" 2>&1 &
    PIDS[$1]=$!
}

# stop NAME: SIGTERM, wait, and require exit status 0 (a leak or crash fails the test).
stop() {
    local name=$1 pid=${PIDS[$1]}
    kill -TERM "$pid"
    local rc=0
    wait "$pid" || rc=$?
    unset "PIDS[$name]"
    [ "$rc" -eq 0 ] || fail "$name exited with status $rc after SIGTERM"
}

# crash NAME: SIGKILL, no cleanup at all.
crash() {
    local name=$1 pid=${PIDS[$1]}
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$name]"
}

# cstat NAME: one counter from the running collector.
cstat() {
    "$BIN_CLI" status --state-dir "$T/state" | awk -v k="$1" '$1 == k {print $2}'
}

# check_recorded AGENT START END NFIELDS: wait until AGENT's selftest data up to END is in the
# RRD files, then require every value its record file ($T/AGENT.rec) holds between START and
# END to be stored exactly once (fields 0..NFIELDS-1, every series).
check_recorded() {
    local a=$1 start=$2 end=$3 nf=$4 rc=0
    reached() {
        "$BIN_CLI" query --state-dir "$T/state" --host "$a" --metric selftest.v0 --instance s0 \
            --since 10m --format raw > "$T/$a.q0" 2>/dev/null || return 1
        awk -v e="$end" '$1 >= e {found=1} END {exit !found}' "$T/$a.q0"
    }
    wait_for 40 "$a data up to $end in RRD" reached
    for f in $(seq 0 $((nf - 1))); do
        "$BIN_CLI" query --state-dir "$T/state" --host "$a" --metric "selftest.v$f" \
            --since 10m --format raw > "$T/$a.q$f"
        python3 "$WP_SRC/tests/integration/compare.py" "$T/$a.rec" "$T/$a.q$f" "$f" \
            "$start" "$end" 0 "$a v$f" || rc=1
    done
    [ "$rc" -eq 0 ] || fail "stored values differ from what $a produced"
}
