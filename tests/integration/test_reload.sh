#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# SIGHUP reloads the agent's config without dropping its connection: a probe added to the
# file sends data over the SAME TLS connection (the collector accepted one connection), a
# broken file is refused with file:line and the agent keeps sending with the old config, a
# removed probe stops; a changed label makes the agent reconnect, and every value the
# agent recorded across all of it is stored exactly once. Both daemons tell systemd (a
# notify socket) RELOADING=1 with MONOTONIC_USEC, then READY=1, on SIGHUP.
. "$(dirname "$0")/lib.sh"

ca_init
issue agent1
collector_config

KEEP="  - {kind: selftest, interval: 1s, series: 1, fields: 1, record: $T/agent1.rec}
  - {kind: host, interval: 1s}"
# the added probe: a closed port gives up=0 each second (to the collector it would count
# as a connection)
ADDED="  - {kind: tcp, name: closed, interval: 1s, targets: [{name: closed, host: 127.0.0.1, port: 1, timeout: 500ms}]}"

# notify_listen NAME: sd_notify messages sent to $T/NAME.sock go to $T/NAME.txt, one line
# each ("\n" inside a message becomes a blank)
notify_listen() {
    python3 - "$T/$1.sock" "$T/$1.txt" > "$T/$1.log" 2>&1 << 'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    msg = s.recv(4096).decode().replace("\n", " ")
    with open(sys.argv[2], "a") as f:
        f.write(msg + "\n")
PY
    PIDS[$1]=$!
    wait_for 10 "notify socket $1" test -S "$T/$1.sock"
}
notify_listen notify
notify_listen coll-notify

NOTIFY_SOCKET=$T/coll-notify.sock start_collector
# notified FILE WANT: the first words of FILE's lines are WANT
notified() { [ "$(awk '{print $1}' "$2" | tr '\n' ' ')" = "$1" ]; }
wait_for 10 "the collector's READY=1" notified "READY=1 " "$T/coll-notify.txt"
log "SIGHUP to the collector: RELOADING=1, READY=1"
kill -HUP "${PIDS[collector]}"
wait_for 10 "the collector's READY=1, RELOADING=1, READY=1" \
    notified "READY=1 RELOADING=1 READY=1 " "$T/coll-notify.txt"
grep -qE '^RELOADING=1 MONOTONIC_USEC=[0-9]+$' "$T/coll-notify.txt" ||
    fail "the collector sent RELOADING=1 without MONOTONIC_USEC"

AGENT_PROBES=$KEEP agent_config agent1
NOTIFY_SOCKET=$T/notify.sock start_agent agent1
START=$(($(date +%s) + 1))

connected() { [ "$(cstat agents_connected)" = 1 ]; }
wait_for 30 "agent connected" connected
[ "$(cstat accepted)" = 1 ] || fail "expected one accepted connection, got $(cstat accepted)"

# hup: SIGHUP, then wait for the next "reloaded" or "reload refused" line in the agent's log
reloads() { grep -cE 'agent: (reloaded|reload refused)' "$T/agent1.log" || true; }
reloaded_past() { [ "$(reloads)" -gt "$1" ]; }
hup() {
    local before
    before=$(reloads)
    kill -HUP "${PIDS[agent1]}"
    wait_for 10 "agent reload #$((before + 1))" reloaded_past "$before"
}
# last_up: the newest second with a value of tcp.up for the probe "closed" (0 if none)
last_up() {
    "$BIN_CLI" query --state-dir "$T/state" --host agent1 --metric tcp.up --instance closed \
        --since 10m --format raw 2>/dev/null | awk '$3 != "nan" {t = $1} END {print t + 0}'
}
# data_until T: the kept selftest series is in the RRD files up to second T
data_until() {
    "$BIN_CLI" query --state-dir "$T/state" --host agent1 --metric selftest.v0 --instance s0 \
        --since 10m --format raw 2>/dev/null | awk -v e="$1" '$1 >= e {f = 1} END {exit !f}'
}

log "add a tcp probe, SIGHUP"
AGENT_PROBES="$KEEP
$ADDED" agent_config agent1
T_ADD=$(date +%s)
hup
grep -q 'reload: adding probe tcp:closed' "$T/agent1.log" || fail "no 'adding probe' line"
grep -q 'reloaded probes=3 kept=2 added=1 restarted=0 removed=0 connection=kept' \
    "$T/agent1.log" || fail "reload summary line missing or wrong"
has_up() { [ "$(last_up)" -ge "$T_ADD" ]; }
wait_for 30 "data of the added probe at the collector" has_up
[ "$(cstat accepted)" = 1 ] || fail "the reload made a new connection: accepted=$(cstat accepted)"
[ "$(grep -c 'agent: connected collector=' "$T/agent1.log")" = 1 ] ||
    fail "the agent connected more than once"
wait_for 5 "READY=1, RELOADING=1, READY=1 on the notify socket" \
    notified "READY=1 RELOADING=1 READY=1 " "$T/notify.txt"
grep -qE '^RELOADING=1 MONOTONIC_USEC=[0-9]+$' "$T/notify.txt" || fail "RELOADING=1 without MONOTONIC_USEC"

log "broken config, SIGHUP: refused, the old config keeps running"
cp "$T/agent1.yaml" "$T/agent1.good"
sed -i 's/interval: 1s, targets/interval: fast, targets/' "$T/agent1.yaml"
line=$(grep -n 'interval: fast' "$T/agent1.yaml" | cut -d: -f1)
hup
grep -qE "agent: reload refused, the running configuration stays: $T/agent1.yaml:$line:[0-9]+: probes\[2\]\.interval: expected a duration" \
    "$T/agent1.log" || fail "no clear refusal line for $T/agent1.yaml:$line"
T_BAD=$(date +%s)
still_up() { [ "$(last_up)" -ge "$((T_BAD + 2))" ]; }
wait_for 30 "the old config's tcp probe still sending after the refusal" still_up
wait_for 30 "the selftest series still arriving" data_until "$((T_BAD + 2))"
[ "$(cstat accepted)" = 1 ] || fail "the refused reload made a new connection"

log "remove the tcp probe, SIGHUP"
AGENT_PROBES=$KEEP agent_config agent1
hup
T_RM=$(date +%s)
grep -q 'reload: removing probe tcp:closed' "$T/agent1.log" || fail "no 'removing probe' line"
grep -q 'reloaded probes=2 kept=2 added=0 restarted=0 removed=1 connection=kept' \
    "$T/agent1.log" || fail "reload summary line missing or wrong after the removal"
wait_for 30 "the selftest series 5 s past the removal" data_until "$((T_RM + 5))"
lu=$(last_up)
[ "$lu" -le "$T_RM" ] || fail "the removed probe still sent data at $lu (removed by $T_RM)"
[ "$(cstat accepted)" = 1 ] || fail "removing a probe made a new connection"

log "change a label, SIGHUP: the agent reconnects, nothing is lost"
AGENT_LABELS="{site: par2}" AGENT_PROBES=$KEEP agent_config agent1
hup
grep -q 'connection=agent id, host or labels changed' "$T/agent1.log" ||
    fail "the label change did not reconnect"
twice() { [ "$(cstat accepted)" = 2 ] && connected; }
wait_for 30 "the agent connected again" twice

END=$(($(date +%s) + 2))
sleep 3
check_recorded agent1 "$START" "$END" 1
[ "$(cstat missing_batches)" = 0 ] || fail "the collector saw missing batches"
stop agent1
stop collector
log "PASS"
