#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bad input closes only the offending connection: while a real agent streams, `wpload raw`
# sends an oversize frame header, a body that is not a map, a batch with a wrongly typed seq,
# a batch with an unknown record kind, a batch before HELLO, an unknown message type, a frame
# cut in the middle (then the client goes away) and plain garbage instead of TLS. After each
# case: the collector closed that connection (with an error frame and a log line naming the
# reason), it still runs, and the real agent's acked values keep growing. At the end every
# value the agent recorded is in the RRD files exactly once.
. "$(dirname "$0")/lib.sh"

WPLOAD=$WP_BIN/tests/wpload
[ -x "$WPLOAD" ] || { echo "missing $WPLOAD (build the wpload target)"; exit 1; }

ca_init
issue agent1
issue bad1
collector_config
start_collector

AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 2, fields: 2, record: $T/agent1.rec}"
agent_config agent1
start_agent agent1
START=$(($(date +%s) + 1))

connected() { [ "$(cstat agents_connected)" = 1 ]; }
wait_for 30 "agent1 connected" connected
acked_gt() { [ "$(cstat values_acked)" -gt "$1" ]; }
wait_for 20 "agent1's first acked values" acked_gt 0

# Frames as hex: a 4-byte big-endian length, then a msgpack body (encoded here by hand so
# the bodies can be wrong on purpose).
frame() { # frame PYTHON_EXPR_FOR_BODY_BYTES
    python3 - "$1" <<'PY'
import sys
def s(x):
    b = x.encode()
    return bytes([0xa0 | len(b)]) + b
def m(*kv):
    return bytes([0x80 | (len(kv) // 2)]) + b"".join(kv)
body = eval(sys.argv[1])
print((len(body).to_bytes(4, "big") + body).hex())
PY
}
NOT_MAP=$(frame 'bytes([0x93, 1, 2, 3])')
SEQ_STR=$(frame 'm(s("t"), s("batch"), s("seq"), s("1"), s("ts"), b"\x00", s("recs"), b"\x90")')
BAD_KIND=$(frame 'm(s("t"), s("batch"), s("seq"), b"\x01", s("ts"), b"\x00", s("recs"), b"\x91\x92\x07\x00")')
BATCH=$(frame 'm(s("t"), s("batch"), s("seq"), b"\x01", s("ts"), b"\x00", s("recs"), b"\x90")')
BAD_TYPE=$(frame 'm(s("t"), s("bogus"))')
GARBAGE=$(printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' | od -An -tx1 | tr -d ' \n')

log_grew() { [ "$(grep -c -- "$1" "$T/collector.log" || true)" -gt "$2" ]; }
TLS_ARGS=(--ca "$T/ca/ca.crt" --cert "$T/certs/bad1.crt" --key "$T/certs/bad1.key")
NCASES=0

# bad_case NAME EXPECT_RC LOG_PATTERN RAW_ARGS...: run one bad client and check the outcome.
bad_case() {
    local name=$1 expect=$2 pattern=$3
    shift 3
    local acked0 lines0 rc=0
    acked0=$(cstat values_acked)
    lines0=$(grep -c -- "$pattern" "$T/collector.log" || true)
    log "case $name"
    "$WPLOAD" raw --port "$COLL_PORT" "$@" > "$T/raw-$name.out" 2>&1 || rc=$?
    sed 's/^/    /' "$T/raw-$name.out"
    [ "$rc" -eq "$expect" ] || fail "$name: wpload raw exited $rc, expected $expect"
    kill -0 "${PIDS[collector]}" 2>/dev/null || fail "$name: the collector died"
    wait_for 10 "$name: a new collector log line matching '$pattern'" \
        log_grew "$pattern" "$lines0"
    # only the real agent stays connected, and it keeps being acked
    conns_one() { [ "$(cstat connections)" = 1 ]; }
    wait_for 10 "$name: the bad connection is gone" conns_one
    wait_for 10 "$name: agent1 still acked after the bad client" acked_gt "$acked0"
    connected || fail "$name: agent1 was disconnected"
    NCASES=$((NCASES + 1))
}

# expect an error frame naming the reason before the close
has_error_frame() { grep -q '^recv error msg=' "$T/raw-$1.out" || fail "$1: no error frame"; }

bad_case oversize 0 "bad frame header: length over limit" "${TLS_ARGS[@]}" --hello bad1 \
    --frame-len $((64 << 20))
has_error_frame oversize
bad_case notmap 0 "bad frame: protocol error" "${TLS_ARGS[@]}" --hello bad1 --send "$NOT_MAP"
has_error_frame notmap
bad_case seqstr 0 "bad frame: wrong value type" "${TLS_ARGS[@]}" --hello bad1 --send "$SEQ_STR"
has_error_frame seqstr
bad_case badkind 0 "record 0: unknown message or record kind" "${TLS_ARGS[@]}" --hello bad1 \
    --send "$BAD_KIND"
has_error_frame badkind
bad_case nohello 0 "batch before hello" "${TLS_ARGS[@]}" --send "$BATCH"
has_error_frame nohello
bad_case badtype 0 "bad frame: unknown message or record kind" "${TLS_ARGS[@]}" --hello bad1 \
    --send "$BAD_TYPE"
has_error_frame badtype
PROTO_CASES=$NCASES

# A frame cut in half: the collector waits for the rest (no close within 2 s), then the
# client disconnects mid-frame; the collector must notice and drop the connection.
bad_case truncated 1 "agent disconnected agent=bad1" "${TLS_ARGS[@]}" --hello bad1 --truncate \
    --wait 2
grep -q '^closed=no' "$T/raw-truncated.out" || fail "truncated: the collector closed a half frame"

bad_case garbage 0 "TLS handshake refused" --no-tls --send "$GARBAGE"

log "counters: closed_proto=$(cstat closed_proto) refused_tls=$(cstat refused_tls)"
[ "$(cstat closed_proto)" -ge "$PROTO_CASES" ] ||
    fail "closed_proto=$(cstat closed_proto), expected at least $PROTO_CASES"
[ "$(cstat refused_tls)" -ge 1 ] || fail "refused_tls=$(cstat refused_tls), expected at least 1"

# Nothing acked was lost: everything agent1 recorded is in the RRD files exactly once.
sleep 2
END=$(($(date +%s) - 2))
check_recorded agent1 "$START" "$END" 2
[ "$(cstat missing_batches)" = 0 ] || fail "the collector saw missing batches"

stop agent1
stop collector
log "PASS ($NCASES bad clients)"
