#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Check results travel end to end: a real agent runs the pgsql probe against a real
# PostgreSQL started here, the collector runs the shipped default rules, and when the
# database is stopped the rule db_down (two CRITICAL results in a row) opens an incident
# whose values carry the server's message; when it is back the incident resolves. The
# agent's pgsql rows reach the RRD files too.
. "$(dirname "$0")/lib.sh"

PG_BIN=/usr/lib/postgresql/15/bin
[ -x "$PG_BIN/initdb" ] || { echo "missing $PG_BIN/initdb (scripts/deps.sh installs postgresql)"; exit 1; }
AS=()
if [ "$(id -u)" = 0 ]; then
    AS=(runuser -u postgres --)
fi
PG=$T/pg
chmod 711 "$T" # the postgres user must reach $PG
mkdir -p "$PG"
echo "s3cret" > "$PG/pw"
[ "$(id -u)" = 0 ] && chown -R postgres: "$PG"
"${AS[@]}" "$PG_BIN/initdb" -D "$PG/data" -U watchpost --pwfile="$PG/pw" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C > "$T/initdb.log" 2>&1 || fail "initdb failed"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_start() {
    "${AS[@]}" "$PG_BIN/pg_ctl" -D "$PG/data" -l "$PG/postgres.log" -w -t 60 \
        -o "-p $PGPORT -k $PG -c listen_addresses=127.0.0.1" start > /dev/null
}
pg_stop() { "${AS[@]}" "$PG_BIN/pg_ctl" -D "$PG/data" -w -t 60 -m fast stop > /dev/null 2>&1 || true; }
started=0
for _ in 1 2 3 4 5; do
    PGPORT=$(free_port)
    if pg_start; then
        started=1
        break
    fi
done
[ "$started" = 1 ] || { tail -n 20 "$PG/postgres.log"; fail "PostgreSQL did not start"; }
trap 'rc=$?; pg_stop; (exit $rc); cleanup' EXIT

ca_init
issue db1
collector_config "incidents:" "  rules: [$WP_SRC/packaging/etc/rules.d/default.yaml]"
start_collector
AGENT_PROBES="  - {kind: pgsql, name: main, interval: 1s, timeout: 2s, password_file: $PG/pw, conninfo: \"host=127.0.0.1 port=$PGPORT dbname=postgres user=watchpost\"}"
agent_config db1
start_agent db1

up_stored() {
    "$BIN_CLI" query --state-dir "$T/state" --host db1 --metric pgsql.up --instance main \
        --since 10m --format raw 2>/dev/null | awk '$3 == 1 {found=1} END {exit !found}'
}
wait_for 30 "pgsql.up = 1 stored in RRD" up_stored
[ -z "$(inc_field db_down status)" ] || fail "db_down opened while the database was up"

log "stopping PostgreSQL"
pg_stop
wait_for 30 "db_down incident" inc_has db_down status open
ID=$(inc_field db_down id)
[ "$(inc_field db_down priority)" = P1 ] || fail "db_down must be P1 (high x high)"
inc show "$ID" > "$T/show"
grep -q "PGSQL CRITICAL" "$T/show" || { cat "$T/show"; fail "the incident lacks the server's message"; }
grep -q "s3cret" "$T/show" "$T/db1.log" "$T/collector.log" && fail "the password leaked"
log "incident $ID opened: $(grep -m1 '^summary' "$T/show")"

log "starting PostgreSQL again"
pg_start || fail "PostgreSQL did not restart"
wait_for 30 "db_down resolved" inc_has db_down status resolved
stop db1
stop collector
log "PASS"
