#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Seat sessions end to end: a real agent runs the ami probe against a fake AMI server that
# replays recorded Asterisk 20 sessions (fake_ami.py, tests/fixtures/telephony/ami-queues*.txt);
# the collector stores the seat events in lines.db and `watchpost seats` lists the sessions.
# The first session resyncs (members already logged in: observed logins), then queue members
# are added, paused, unpaused and removed and an agent logs in and off. Then the link drops;
# the second session's QueueStatus no longer names Carol (an observed logout when the link
# came back) and names Dave (an observed login). A restarted agent reports the members
# again: nothing may be doubled. GET /api/v1/seats gives each session the line device the
# probe derived (a member's StateInterface, the agent's login channel without its suffix).
. "$(dirname "$0")/lib.sh"

ca_init
issue pbx1
FX=$WP_SRC/tests/fixtures/telephony
python3 "$WP_SRC/tests/integration/fake_ami.py" "$FX/ami-queues.txt" \
    "$FX/ami-queues-reconnect.txt" "$T/ami.port" "$T/ami.drop" "$T/ami.shift" \
    >> "$T/fakeami.log" 2>&1 &
PIDS[fakeami]=$!
wait_for 20 "fake AMI port file" test -s "$T/ami.port"
printf 's3cr3t\n' > "$T/ami.secret"
chmod 600 "$T/ami.secret"

mkdir -p "$T/state"
TOKEN=$("$BIN_CLI" token add wall --role viewer --state-dir "$T/state" 2>/dev/null)
collector_config "http:" "  listen: 127.0.0.1:0"
start_collector_http
http_client "" -H "Authorization: Bearer $TOKEN"
AGENT_PROBES="  - {kind: ami, name: pbx1, interval: 1s, port: $(cat "$T/ami.port"), username: monitor, secret_file: $T/ami.secret, reconnect_min: 200ms, reconnect_max: 400ms}"
agent_config pbx1
start_agent pbx1

seats() { "$BIN_CLI" seats --state-dir "$T/state" --since 30d "$@"; }
# row SEAT QUEUE: that session's CSV row as "login_observed logout_observed logged_in_s paused_s
# pauses reasons" (logout fields "-" while open; the first session when there are several)
row() {
    seats --csv 2>/dev/null | python3 -c '
import csv, sys
for r in csv.DictReader(sys.stdin.read().lstrip("\ufeff").splitlines()):
    if r["seat"] == sys.argv[1] and r["queue"] == sys.argv[2]:
        open_ = r["logout"] == ""
        print(r["login_observed"], "-" if open_ else r["logout_observed"],
              "-" if open_ else r["logged_in_s"], r["paused_s"], r["pauses"],
              r["pause_reasons"] or "-")
        break' "$1" "$2"
}
is() { [ "$(row "$1" "$2")" = "$3" ]; }

# first session: observed logins from QueueStatus, then the live events
wait_for 30 "Bob's session closed" is Bob support "1 0 3300 780 1 lunch"
wait_for 10 "the agent's session" is 2001 "" "0 0 90 0 0 -"
is Carol support "0 - - 0 0 -" || fail "Carol: $(row Carol support)"
is Alice sales "1 - - 0 0 -" || fail "Alice/sales: $(row Alice sales)"
[ "$(row Alice support | cut -d' ' -f1,2,5,6)" = "1 - 1 break" ] ||
    fail "Alice/support: $(row Alice support)"
seats | grep -q "Night" && fail "a static member got a session"
# the device of every session, as the Telephony wall matches seats to lines
[ "$(code GET '/api/v1/seats?since_s=34560000')" = 200 ] || fail "GET /api/v1/seats"
devs=$(jq_ '" ".join(sorted("%s/%s=%s" % (x["seat"], x["queue"], x["device"]) for x in d["seats"]))')
[ "$devs" = "2001/=PJSIP/1004 Alice/sales=PJSIP/1001 Alice/support=PJSIP/1001 Bob/support=PJSIP/1002 Carol/support=PJSIP/1003" ] ||
    fail "seat devices: $devs"

# the link drops: the second session's QueueStatus has Dave but not Carol
touch "$T/ami.drop"
wait_for 30 "Dave's observed login" is Dave support "1 - - 0 0 -"
wait_for 10 "Carol's observed logout" eval '[ "$(row Carol support | cut -d" " -f1,2,5)" = "0 1 0" ]'
seats > "$T/table"
grep -Eq "^[^ ]+ +Carol +support +.{16}  .{16}\*" "$T/table" &&
    grep -q "observed after a link outage, not seen" "$T/table" ||
    { cat "$T/table"; fail "Carol's logout is not marked observed"; }
grep -q "^6 sessions, 3 open" "$T/table" || { cat "$T/table"; fail "wrong totals"; }

# a restarted agent reports every member again (observed logins, Alice's pause): the
# collector already has these sessions and adds nothing
stop pbx1
start_agent pbx1
restarted() { [ "$(grep -c "resync done" "$T/pbx1.log")" -ge 3 ]; }
wait_for 30 "the restarted agent's resync" restarted
sleep 3 # its first batches
seats > "$T/table2"
grep -q "^6 sessions, 3 open" "$T/table2" || { cat "$T/table2"; fail "the restart added sessions"; }
[ "$(row Alice support | cut -d' ' -f1,2,5,6)" = "1 - 1 break" ] ||
    fail "Alice/support after the restart: $(row Alice support)"
head -c 3 <(seats --csv) | od -An -tx1 | grep -q "ef bb bf" || fail "the CSV has no BOM"
grep -q "s3cr3t" "$T"/pbx1.log && fail "the AMI secret was logged"
grep -q "more rights than it needs (write=originate,command)" "$T/pbx1.log" ||
    fail "no warning about the account's rights"

stop pbx1
stop collector
crash fakeami
log "PASS"
