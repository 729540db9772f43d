#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Request Tracker 5 test peer and the REST 2.0 calls the collector's RT adapter
# makes (docs/RT.md): start a private RT with tests/fixtures/rt/start-rt.sh in a temp
# dir, then create a ticket in queue NOC with priority, the Watchpost-Key custom field
# and initial content, comment twice (text/plain and JSON), resolve it, find it again
# by the custom field (GET and POST search), read its history and comment texts back,
# and check the error answers (401, 403, 404). Stops RT and checks nothing is left.
# Needs no Watchpost build; needs request-tracker5 and rt5-db-sqlite (scripts/deps.sh).
set -euo pipefail

WP_SRC=${WP_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
RIG=$WP_SRC/tests/fixtures/rt
T=$(mktemp -d /tmp/wp-it.XXXXXX)
RT_DIR=$T/rt

log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

fail() {
    echo "FAIL: $*"
    for f in "$RT_DIR/rt.log" "$RT_DIR/setup.log"; do
        [ -f "$f" ] || continue
        echo "---- $(basename "$f") (last 40 lines)"
        tail -n 40 "$f"
    done
    exit 1
}

cleanup() {
    local rc=$?
    "$RIG/stop-rt.sh" "$RT_DIR" || rc=1
    if [ "$rc" -ne 0 ] || [ -n "${WP_KEEP:-}" ]; then
        echo "test files kept in $T"
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT

t0=$(date +%s.%N)
"$RIG/start-rt.sh" "$RT_DIR" || fail "start-rt.sh failed"
PORT=$(cat "$RT_DIR/rt.port")
PID=$(cat "$RT_DIR/rt.pid")
TOKEN=$(cat "$RT_DIR/rt.token")
BASE="http://127.0.0.1:$PORT/REST/2.0"
case $PORT in '' | *[!0-9]*) fail "bad port '$PORT'" ;; esac

# req NAME METHOD PATH [CURL ARGS...]: the answer's body in $T/NAME.json, its headers
# in $T/NAME.hdr, its status code in $CODE. Authenticated as the collector unless
# the arguments carry their own Authorization header.
req() {
    local name=$1 method=$2 path=$3
    shift 3
    local auth=(-H "Authorization: token $TOKEN")
    case " $* " in *"Authorization:"*) auth=() ;; esac
    CODE=$(curl -s --max-time 20 -X "$method" "${auth[@]}" -D "$T/$name.hdr" \
        -o "$T/$name.json" -w '%{http_code}' "$@" "$BASE$path") ||
        fail "curl $method $path failed"
}

expect() { # expect CODE NAME
    [ "$CODE" = "$1" ] || fail "$2: HTTP $CODE, expected $1: $(head -c 400 "$T/$2.json")"
}

# jcheck NAME PYTHON: run PYTHON with d = the JSON body of NAME; it must print nothing
# and exit 0 (assert).
jcheck() {
    python3 - "$T/$1.json" "$2" <<'EOF' ||
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[2])
EOF
        fail "$1: check failed: $2 (body: $(head -c 600 "$T/$1.json"))"
}

KEY="wp-it-$(date +%s)-$$"
export KEY

# ---- create
log "create a ticket in NOC (RT on port $PORT)"
body=$(python3 -c 'import json, os
print(json.dumps({"Queue": "NOC", "Subject": "[INC-42] P2 DiskFull web01",
    "Priority": 70, "CustomFields": {"Watchpost-Key": os.environ["KEY"]},
    "Content": "Disk / on web01 is 97% full.\nRunbook: https://wiki.example/disk",
    "ContentType": "text/plain"}))')
req create POST /ticket -H 'Content-Type: application/json' --data-binary "$body"
expect 201 create
jcheck create 'assert d["type"] == "ticket" and d["id"].isdigit(), d'
ID=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$T/create.json")
export ID
grep -qi "^Location: /REST/2.0/ticket/$ID" "$T/create.hdr" ||
    fail "create: no Location header for ticket $ID"

req show GET "/ticket/$ID"
expect 200 show
jcheck show '
import os
assert d["id"] == int(os.environ["ID"]), d["id"]
assert d["Subject"] == "[INC-42] P2 DiskFull web01", d["Subject"]
assert str(d["Priority"]) == "70", d["Priority"]
assert d["Status"] == "new", d["Status"]
cf = {c["name"]: c["values"] for c in d["CustomFields"]}
assert cf == {"Watchpost-Key": [os.environ["KEY"]]}, cf
assert d["Creator"]["id"] == "watchpost", d["Creator"]'
req queue GET "/queue/NOC"
expect 200 queue
QID=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$T/queue.json")
jcheck show "assert str(d['Queue']['id']) == '$QID', d['Queue']"

# ---- two comments, the two accepted forms
log "comment twice"
req comment1 POST "/ticket/$ID/comment" -H 'Content-Type: text/plain' \
    --data-binary 'Escalated to level 2 (duty manager).'
expect 201 comment1
jcheck comment1 'assert d == ["Comments added"], d'
grep -qi '^Location: /REST/2.0/transaction/[0-9]' "$T/comment1.hdr" || fail "comment1: no Location"
req comment2 POST "/ticket/$ID/comment" -H 'Content-Type: application/json' \
    --data-binary '{"Content":"Acknowledged by alice.","ContentType":"text/plain"}'
expect 201 comment2
jcheck comment2 'assert d == ["Comments added"], d'

# ---- resolve (and again: RT answers 200 with no change messages)
log "resolve"
RESOLVE=(-H 'Content-Type: application/json' --data-binary '{"Status":"resolved"}')
req resolve PUT "/ticket/$ID" "${RESOLVE[@]}"
expect 200 resolve
jcheck resolve '
import os
assert d == ["Ticket %s: Status changed from \x27new\x27 to \x27resolved\x27" % os.environ["ID"]], d'
req resolve2 PUT "/ticket/$ID" "${RESOLVE[@]}"
expect 200 resolve2
jcheck resolve2 'assert d == [], d'
req show2 GET "/ticket/$ID"
expect 200 show2
jcheck show2 'assert d["Status"] == "resolved", d["Status"]
assert d["Resolved"] != "1970-01-01T00:00:00Z", d["Resolved"]'

# ---- reconcile: find it by the correlation field
log "search by Watchpost-Key"
Q="'CF.{Watchpost-Key}' = '$KEY'"
req search GET /tickets -G --data-urlencode "query=$Q" --data-urlencode 'fields=Status'
expect 200 search
jcheck search '
import os
assert d["total"] == 1 and d["count"] == 1, d
it = d["items"][0]
assert it["id"] == os.environ["ID"] and it["Status"] == "resolved", it'
req searchp POST /tickets --data-urlencode "query=$Q"
expect 200 searchp
jcheck searchp 'assert [i["id"] for i in d["items"]] == [__import__("os").environ["ID"]], d'
req search0 GET /tickets -G --data-urlencode "query='CF.{Watchpost-Key}' = 'no-such-key'"
expect 200 search0
jcheck search0 'assert d["total"] == 0 and d["items"] == [], d'

# ---- history: create, two comments, status change; the texts via attachments
log "history"
req history GET "/ticket/$ID/history" -G --data-urlencode 'fields=Type,Field,OldValue,NewValue'
expect 200 history
jcheck history '
t = [(i["Type"], i["Field"], i["OldValue"], i["NewValue"]) for i in d["items"]]
assert t == [("Create", "", "", ""), ("Comment", "", "", ""), ("Comment", "", "", ""),
             ("Status", "Status", "new", "resolved")], t'
req atts GET "/ticket/$ID/attachments" -G \
    --data-urlencode 'fields=TransactionId,ContentType,Content'
expect 200 atts
jcheck atts '
c = [i["Content"] for i in d["items"]]
assert c == ["Disk / on web01 is 97% full.\nRunbook: https://wiki.example/disk",
             "Escalated to level 2 (duty manager).", "Acknowledged by alice."], c'

# ---- errors
log "error answers"
req bad_token GET "/ticket/$ID" \
    -H "Authorization: token ${TOKEN%-*}-0123456789abcdef0123456789abcdef"
expect 401 bad_token
jcheck bad_token 'assert d == {"message": "Unauthorized"}, d'
req no_queue POST /ticket -H 'Content-Type: application/json' \
    --data-binary '{"Queue":"NOPE","Subject":"x"}'
expect 403 no_queue
jcheck no_queue 'assert "NOPE" in d["message"], d'
req missing GET /ticket/999999
expect 404 missing
jcheck missing 'assert d == {"message": "Not Found"}, d'

# ---- stop: nothing of RT's may be left
"$RIG/stop-rt.sh" "$RT_DIR" || fail "stop-rt.sh failed"
if kill -0 "$PID" 2>/dev/null || kill -0 -- "-$PID" 2>/dev/null; then
    fail "RT processes left in group $PID"
fi
t1=$(date +%s.%N)
log "PASS ($(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s)"
