#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Inspection probes footprint (not a ctest test): one watchpost-agent with every probe of the
# inspection issue at a 10 s interval — host, proc (3 matches), exec (4 monitoring-plugins),
# http (a login page), tcp (2 ports), logtail (an Oracle alert log preset on a file that grows
# by LINES_PER_S lines a second), pgsql and mysql (real PostgreSQL and MariaDB started here on
# loopback ports) — streaming to a local Release collector, and in the same run collectd with
# the equivalent plugins against the same peers (to a UDP sink). Reports the agent's CPU % of one
# core (on-CPU time of all its threads, /proc/PID/task/*/schedstat) and that of the plugins it
# ran (reaped children), RSS and PSS (max), the values/s the collector received from it, and
# collectd's CPU % and RSS.
#
#   tests/bench/probes_footprint.sh [SECONDS] [LINES_PER_S]        default 120 100
#
# Environment: WP_BENCH_BUILD (default build-bench, Release), WP_BENCH_OUT (default
# tests/bench/out), WP_KEEP=1 keeps the run dir. Needs root or a user that can run initdb.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${1:-120}
LPS=${2:-100}
OUT=${WP_BENCH_OUT:-$SRC/tests/bench/out}
BUILD=${WP_BENCH_BUILD:-$SRC/build-bench}
PG_BIN=/usr/lib/postgresql/15/bin
PLUG=/usr/lib/nagios/plugins

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

"$SRC/scripts/deps.sh" > /dev/null
mkdir -p "$OUT"
log "building Release into $BUILD"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DWP_TESTS=ON > "$OUT/cmake.log" 2>&1 ||
    die "cmake configure failed: see $OUT/cmake.log"
cmake --build "$BUILD" -j2 --target watchpost-collector watchpost watchpost-agent > /dev/null ||
    die "build failed"
COLL=$BUILD/collector/watchpost-collector
CLI=$BUILD/collector/watchpost
AGENT=$BUILD/agent/watchpost-agent

RUN=$OUT/probes-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
chmod 711 "$RUN"
PIDS=()
AS_PG=()
AS_MY=()
if [ "$(id -u)" = 0 ]; then
    AS_PG=(runuser -u postgres --)
    AS_MY=(--user=mysql)
fi
cleanup() {
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$RUN/pg/data" -w -t 30 -m fast stop > /dev/null 2>&1 || true
    for p in "${PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    [ -n "${WP_KEEP:-}" ] || rm -rf "$RUN/state" "$RUN/agent" "$RUN/ca" "$RUN/pg" "$RUN/my"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_file() { for _ in $(seq 1 300); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }

# ---- peers: PostgreSQL, MariaDB, a web server, a growing log ------------------------------------
log "starting PostgreSQL and MariaDB"
mkdir -p "$RUN/pg" "$RUN/my"
echo "s3cret" > "$RUN/pw"
chmod 644 "$RUN/pw"
[ "$(id -u)" = 0 ] && chown postgres: "$RUN/pg" && chown mysql: "$RUN/my"
"${AS_PG[@]}" "$PG_BIN/initdb" -D "$RUN/pg/data" -U watchpost --pwfile="$RUN/pw" \
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C > "$RUN/initdb.log" 2>&1 ||
    die "initdb failed"
PGPORT=$(free_port)
"${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$RUN/pg/data" -l "$RUN/pg/pg.log" -w -t 60 \
    -o "-p $PGPORT -k $RUN/pg -c listen_addresses=127.0.0.1" start > /dev/null ||
    die "PostgreSQL did not start"
mariadb-install-db --no-defaults --datadir="$RUN/my/data" "${AS_MY[@]}" \
    --auth-root-authentication-method=socket --skip-test-db > "$RUN/my-install.log" 2>&1 ||
    die "mariadb-install-db failed"
MYPORT=$(free_port)
/usr/sbin/mariadbd --no-defaults --datadir="$RUN/my/data" --socket="$RUN/my/sock" \
    --port="$MYPORT" --bind-address=127.0.0.1 --skip-log-bin --innodb-buffer-pool-size=16M \
    --log-error="$RUN/my/err.log" --pid-file=/dev/null "${AS_MY[@]}" &
PIDS+=($!)
for _ in $(seq 1 300); do
    mariadb --no-defaults -S "$RUN/my/sock" -u root -e 'select 1' > /dev/null 2>&1 && break
    sleep 0.2
done
mariadb --no-defaults -S "$RUN/my/sock" -u root -e "create user watchpost@'127.0.0.1' \
    identified by 's3cret'; grant process, replication client, select on *.* to \
    watchpost@'127.0.0.1';" || die "MariaDB did not start"
python3 "$SRC/tests/fixtures/httpd.py" --port-file "$RUN/http.port" > "$RUN/httpd.log" 2>&1 &
PIDS+=($!)
wait_file "$RUN/http.port" || die "web server did not start"
python3 - "$RUN/alert_orcl.log" "$LPS" <<'PY' &
import sys, time
path, lps = sys.argv[1], int(sys.argv[2])
n = 0
with open(path, "a", buffering=1) as f:
    while True:
        t = time.time()
        for _ in range(lps):
            n += 1
            if n % 500 == 0:
                f.write("2026-11-30T08:00:00.000000+08:00\nORA-00600: internal error code, "
                        f"arguments: [{n}]\n")
            else:
                f.write(f"2026-11-30T08:00:00.000000+08:00\nThread 1 advanced to log sequence {n}\n")
        time.sleep(max(0.0, 1.0 - (time.time() - t)))
PY
PIDS+=($!)

# ---- collector and agent ----------------------------------------------------------------------
export WATCHPOST_CA_DIR=$RUN/ca
"$CLI" ca init --cn "probes footprint CA" > /dev/null
"$CLI" ca issue watchpost-collector --server --out "$RUN/certs" > /dev/null
"$CLI" ca issue inspect --out "$RUN/certs" > /dev/null
cat > "$RUN/collector.yaml" <<YAML
listen: 127.0.0.1:0
state_dir: $RUN/state
log_level: warn
tls: {ca: $RUN/ca/ca.crt, cert: $RUN/certs/watchpost-collector.crt, key: $RUN/certs/watchpost-collector.key}
YAML
"$COLL" -c "$RUN/collector.yaml" --port-file "$RUN/collector.port" > "$RUN/collector.log" 2>&1 &
PIDS+=($!)
wait_file "$RUN/collector.port" || die "collector did not start"
CPORT=$(cat "$RUN/collector.port")
cat > "$RUN/agent.yaml" <<YAML
agent: {id: inspect, state_dir: $RUN/agent, log_level: warn}
collectors: [127.0.0.1:$CPORT]
tls: {ca: $RUN/ca/ca.crt, cert: $RUN/certs/inspect.crt, key: $RUN/certs/inspect.key}
probes:
  - {kind: host, interval: 10s}
  - kind: proc
    interval: 10s
    match:
      - {name: collector, comm: watchpost-colle}
      - {name: postgres, comm: postgres, min: 1}
      - {name: mariadb, cmdline: "mariadbd", min: 1, max: 1}
  - kind: exec
    interval: 10s
    checks:
      - {name: disk_root, command: [$PLUG/check_disk, -w, "10%", -c, "5%", -p, /]}
      - {name: load, command: [$PLUG/check_load, -w, "50,40,30", -c, "90,80,70"]}
      - {name: procs, command: [$PLUG/check_procs, -w, "2000", -c, "4000"]}
      - {name: dummy, command: [$PLUG/check_dummy, "0", "fine"]}
  - kind: http
    interval: 10s
    targets:
      - {name: login, url: "http://127.0.0.1:$(cat "$RUN/http.port")/login", body_regex: "name=\"password\""}
  - kind: tcp
    interval: 10s
    targets:
      - {name: collector, host: 127.0.0.1, port: $CPORT}
      - {name: pg, host: 127.0.0.1, port: $PGPORT}
  - kind: logtail
    interval: 10s
    paths: [$RUN/alert_orcl.log]
    cursor_file: $RUN/agent/logtail.cursor
    preset: oracle_alert
  - {kind: pgsql, name: main, interval: 10s, password_file: $RUN/pw, conninfo: "host=127.0.0.1 port=$PGPORT dbname=postgres user=watchpost"}
  - {kind: mysql, name: main, interval: 10s, port: $MYPORT, password_file: $RUN/pw}
YAML
"$AGENT" --check-config -c "$RUN/agent.yaml" > /dev/null || die "agent config refused"
"$AGENT" -c "$RUN/agent.yaml" > "$RUN/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
cstat() { "$CLI" status --state-dir "$RUN/state" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }
for _ in $(seq 1 300); do
    [ "$(cstat agents_connected)" = 1 ] && break
    sleep 0.1
done
[ "$(cstat agents_connected)" = 1 ] || die "agent did not connect: $(tail -n 5 "$RUN/agent.log")"

# ---- collectd with the equivalent plugins, same peers, same 10 s, to a UDP sink ----------------
# (host: cpu memory load df disk interface; proc: processes; http: curl; logtail: tail;
# pgsql: postgresql; mysql: mysql. collectd has no Nagios-plugin runner, so the exec checks
# have no counterpart; compare with the agent's own CPU, without its plugins.)
python3 - "$RUN/sink.port" <<'PYS' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
while True:
    s.recv(65535)
PYS
PIDS+=($!)
wait_file "$RUN/sink.port" || die "UDP sink did not start"
mkdir -p "$RUN/collectd"
cat > "$RUN/collectd.conf" <<CONF
Hostname "inspect"
FQDNLookup false
BaseDir "$RUN/collectd"
PIDFile "$RUN/collectd/collectd.pid"
TypesDB "/usr/share/collectd/types.db"
Interval 10
LoadPlugin cpu
LoadPlugin memory
LoadPlugin load
LoadPlugin df
LoadPlugin disk
LoadPlugin interface
LoadPlugin processes
LoadPlugin curl
LoadPlugin tail
LoadPlugin postgresql
LoadPlugin mysql
LoadPlugin network
<Plugin processes>
  ProcessMatch "collector" "watchpost-collector"
  ProcessMatch "postgres" "postgres"
  ProcessMatch "mariadb" "mariadbd"
</Plugin>
<Plugin curl>
  <Page "login">
    URL "http://127.0.0.1:$(cat "$RUN/http.port")/login"
    MeasureResponseTime true
    MeasureResponseCode true
    <Match>
      Regex "name=\"password\""
      DSType "CounterInc"
      Type "counter"
      Instance "form"
    </Match>
  </Page>
</Plugin>
<Plugin tail>
  <File "$RUN/alert_orcl.log">
    Instance "ora"
    <Match>
      Regex "ORA-(00600|07445|04031)"
      DSType "CounterInc"
      Type "counter"
      Instance "internal"
    </Match>
  </File>
</Plugin>
<Plugin postgresql>
  <Database "postgres">
    Host "127.0.0.1"
    Port "$PGPORT"
    User "watchpost"
    Password "s3cret"
  </Database>
</Plugin>
<Plugin mysql>
  <Database "main">
    Host "127.0.0.1"
    Port "$MYPORT"
    User "watchpost"
    Password "s3cret"
  </Database>
</Plugin>
<Plugin network>
  Server "127.0.0.1" "$(cat "$RUN/sink.port")"
</Plugin>
CONF
/usr/sbin/collectd -f -C "$RUN/collectd.conf" > "$RUN/collectd.log" 2>&1 &
COLLECTD_PID=$!
PIDS+=("$COLLECTD_PID")

log "agent pid $AGENT_PID and collectd pid $COLLECTD_PID running; warmup 20 s, then $SECS s"
sleep 20
kill -0 "$COLLECTD_PID" 2>/dev/null || die "collectd exited: $(tail -n 5 "$RUN/collectd.log")"

snap() {
    echo "time $(date +%s.%N)"
    echo "ns $(cat /proc/"$AGENT_PID"/task/*/schedstat | awk '{s += $1} END {print s + 0}')"
    # CPU of reaped children (the plugins exec runs): cutime + cstime, in clock ticks
    echo "child_ticks $(sed 's/.*) //' /proc/"$AGENT_PID"/stat | awk '{print $14 + $15}')"
    echo "values $(cstat values_received)"
    echo "cd_ns $(cat /proc/"$COLLECTD_PID"/task/*/schedstat | awk '{s += $1} END {print s + 0}')"
}
snap > "$RUN/snap.start"
: > "$RUN/rss.txt"
for _ in $(seq 1 "$SECS"); do
    sleep 1
    echo "$(awk '/^VmRSS:/ {print $2}' /proc/"$AGENT_PID"/status)" \
        "$(awk '/^Pss:/ {print $2}' /proc/"$AGENT_PID"/smaps_rollup)" \
        "$(awk '/^VmRSS:/ {print $2}' /proc/"$COLLECTD_PID"/status)" \
        "$(awk '/^Pss:/ {print $2}' /proc/"$COLLECTD_PID"/smaps_rollup)" >> "$RUN/rss.txt"
done
snap > "$RUN/snap.end"
kill -0 "$AGENT_PID" || die "the agent died"
python3 - "$RUN" "$LPS" <<'PY' | tee "$RUN/summary.txt"
import sys
run, lps = sys.argv[1], int(sys.argv[2])
def snap(n):
    return {k: float(v) for k, v in (l.split() for l in open(f"{run}/snap.{n}") if l.strip())}
a, b = snap("start"), snap("end")
secs = b["time"] - a["time"]
rss = [tuple(map(int, l.split())) for l in open(f"{run}/rss.txt") if len(l.split()) == 4]
cpu = 100.0 * (b["ns"] - a["ns"]) / 1e9 / secs
vps = (b["values"] - a["values"]) / secs
print(f"==== inspection probes footprint over {secs:.0f} s (every probe at 10 s; log grows "
      f"{lps} records/s)")
import os
child = 100.0 * (b["child_ticks"] - a["child_ticks"]) / os.sysconf("SC_CLK_TCK") / secs
print(f"agent CPU          {cpu:.3f} % of one core (the agent process)")
print(f"plugins CPU        {child:.3f} % of one core (exec's children, reaped)")
print(f"agent RSS max      {max(r[0] for r in rss) / 1024:.1f} MiB (PSS max "
      f"{max(r[1] for r in rss) / 1024:.1f} MiB)")
print(f"values received    {vps:.1f} /s at the collector (metrics, checks and events)")
cd = 100.0 * (b["cd_ns"] - a["cd_ns"]) / 1e9 / secs
print(f"collectd CPU       {cd:.3f} % of one core (cpu memory load df disk interface processes "
      f"curl tail postgresql mysql network, Interval 10)")
print(f"collectd RSS max   {max(r[2] for r in rss) / 1024:.1f} MiB (PSS max "
      f"{max(r[3] for r in rss) / 1024:.1f} MiB)")
print(f"run dir: {run}")
PY
