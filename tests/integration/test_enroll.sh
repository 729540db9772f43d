#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Agent enrolment with bootstrap tokens. A real collector serves HTTPS (a `watchpost ca issue
# --server` certificate) on 127.0.0.1:0 with http.enroll.ca_dir set:
#  - `watchpost enroll-token add --name e1` + `watchpost-agent enroll --ca-fingerprint`: the
#    agent gets key (0600), certificate and CA, then starts with them and streams (mutual TLS
#    with the enrolled certificate; the collector acks its batches);
#  - the same token a second time is refused (401, "already used"), and the token stays used;
#  - an expired token (--ttl 1s, then a wait) is refused (401, "expired");
#  - a token bound to another agent id is refused (403), and can still be used by its agent
#    (here with --ca FILE instead of a fingerprint);
#  - a wrong CA fingerprint: the agent refuses before it sends the token (the token stays
#    unused: it works afterwards);
#  - an existing key is not overwritten without --force;
#  - the token never appears in the collector's log.
. "$(dirname "$0")/lib.sh"

ca_init
collector_config \
    "http:" \
    "  listen: 127.0.0.1:0" \
    "  tls: {cert: $T/certs/watchpost-collector.crt, key: $T/certs/watchpost-collector.key}" \
    "  login_failures: 20" \
    "  enroll:" \
    "    ca_dir: $T/ca" \
    "    cert_days: 30"
start_collector_http
HTTP_PORT=$HP
FP=$(openssl x509 -in "$T/ca/ca.crt" -noout -fingerprint -sha256 | cut -d= -f2)
CLI_E=("$BIN_CLI" enroll-token --state-dir "$T/state")

# enroll NAME [ARGS...]: watchpost-agent enroll for $T/NAME.yaml (output in $T/NAME.enroll)
enroll() {
    local name=$1
    shift
    "$BIN_AGENT" enroll -c "$T/$name.yaml" --collector "127.0.0.1:$HTTP_PORT" "$@" \
        > "$T/$name.enroll" 2>&1
}
# tls paths of an enrolled agent: its own directory, made by enroll
enrolled_config() { # enrolled_config NAME
    AGENT_CA=$T/$1-tls/ca.crt AGENT_CERT=$T/$1-tls/$1.crt AGENT_KEY=$T/$1-tls/$1.key \
        AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 1, fields: 1}" agent_config "$1"
}
token_state() { # token_state ID -> unused|used|expired
    "${CLI_E[@]}" list | awk -v id="$1" '$1 == id {print $(NF >= 8 ? 7 : NF)}'
}

# ---- a token works once ----------------------------------------------------------------------
log "enrolment with a fresh token"
TOK1=$("${CLI_E[@]}" add --ttl 10m --name e1 2> "$T/add1.err")
ID1=$(echo "$TOK1" | cut -c5-20)
[ "${#TOK1}" -eq 85 ] || fail "token has ${#TOK1} characters: $TOK1"
"${CLI_E[@]}" list | grep -q "^$ID1 .*e1 .*unused" || fail "token not listed as unused"
sqlite3 "$T/state/enroll.db" "SELECT hash FROM enroll_tokens" | grep -q "${TOK1:21}" &&
    fail "the token's secret is stored in clear"
[ "$(stat -c %a "$T/state/enroll.db")" = 600 ] || fail "enroll.db is not 0600"
enrolled_config e1
enroll e1 --token "$TOK1" --ca-fingerprint "$FP" || {
    cat "$T/e1.enroll"
    fail "enrolment with a fresh token failed"
}
cat "$T/e1.enroll"
[ "$(stat -c %a "$T/e1-tls/e1.key")" = 600 ] || fail "key is not 0600"
[ "$(stat -c %a "$T/e1-tls")" = 750 ] || fail "tls dir is not 0750"
openssl x509 -in "$T/e1-tls/e1.crt" -noout -subject | grep -q "CN *= *e1" || fail "CN is not e1"
openssl verify -CAfile "$T/ca/ca.crt" "$T/e1-tls/e1.crt" > /dev/null || fail "cert does not verify"
cmp -s "$T/e1-tls/ca.crt" "$T/ca/ca.crt" || fail "the CA written is not the fleet CA"
[ "$(openssl x509 -in "$T/e1-tls/e1.crt" -noout -pubkey | sha256sum)" = \
    "$(openssl pkey -in "$T/e1-tls/e1.key" -pubout | sha256sum)" ] || fail "cert is not for the key"
"$BIN_CLI" ca list | grep -q "e1" || fail "e1 is not in the CA index"
[ "$(token_state "$ID1")" = used ] || fail "token not marked used: $("${CLI_E[@]}" list)"

log "the agent streams with the enrolled certificate"
start_agent e1
connected_is() { [ "$(cstat agents_connected)" = "$1" ]; }
ge() { [ "$(cstat "$1")" -ge "$2" ]; }
wait_for 30 "e1 connected" connected_is 1
acked0=$(cstat values_acked)
wait_for 20 "e1's values acked" ge values_acked $((acked0 + 2))
grep -q "agent connected agent=e1" "$T/collector.log" || fail "no 'agent connected agent=e1'"
stop e1

# the CLI prints the CA fingerprint when the config names the CA
fp_lower=$(echo "$FP" | tr -d : | tr A-F a-f)
"$BIN_CLI" enroll-token add -c "$T/collector.yaml" 2>&1 > /dev/null |
    grep -q "CA fingerprint (for --ca-fingerprint): $fp_lower" || fail "no CA fingerprint from add"

# ---- second use ------------------------------------------------------------------------------
log "the same token again"
enrolled_config e1b
enroll e1b --token "$TOK1" --ca-fingerprint "$FP" && fail "a used token was accepted"
cat "$T/e1b.enroll"
grep -q "HTTP 401: enrolment token already used" "$T/e1b.enroll" || fail "no 'already used'"
[ ! -e "$T/e1b-tls/e1b.crt" ] || fail "a certificate was written for a refused token"

# ---- expired ---------------------------------------------------------------------------------
log "an expired token"
TOK2=$("${CLI_E[@]}" add --ttl 1s 2> /dev/null)
sleep 2
enrolled_config e2
enroll e2 --token "$TOK2" --ca-fingerprint "$FP" && fail "an expired token was accepted"
cat "$T/e2.enroll"
grep -q "HTTP 401: enrolment token expired" "$T/e2.enroll" || fail "no 'expired'"
[ "$(token_state "$(echo "$TOK2" | cut -c5-20)")" = expired ] || fail "token not listed expired"

# ---- unknown ---------------------------------------------------------------------------------
log "an unknown token"
enroll e2 --token "wpe_0123456789abcdef_$(printf '%064d' 0)" --ca-fingerprint "$FP" &&
    fail "an unknown token was accepted"
grep -q "HTTP 401: unknown enrolment token" "$T/e2.enroll" || fail "no 'unknown'"

# ---- wrong CA fingerprint: nothing is sent ----------------------------------------------------
log "a wrong CA fingerprint"
TOK3=$("${CLI_E[@]}" add --name e3 2> /dev/null)
ID3=$(echo "$TOK3" | cut -c5-20)
enrolled_config e3
BAD=$(echo "$FP" | tr '0-9A-F' '1-9A-F0')
enroll e3 --token "$TOK3" --ca-fingerprint "$BAD" && fail "enrolled despite a wrong fingerprint"
cat "$T/e3.enroll"
grep -q "refusing to send the token" "$T/e3.enroll" || fail "no refusal for the fingerprint"
[ "$(token_state "$ID3")" = unused ] || fail "the token was spent despite the wrong fingerprint"
[ ! -e "$T/e3-tls/e3.key" ] || fail "a key was written despite the wrong fingerprint"

# ---- bound to another agent id --------------------------------------------------------------
log "a token bound to another agent id"
enrolled_config e4
enroll e4 --token "$TOK3" --ca-fingerprint "$FP" && fail "e4 used e3's token"
grep -q "HTTP 403: this enrolment token is for another agent id" "$T/e4.enroll" ||
    fail "no 'another agent id'"
log "... which its own agent can use (trusting a CA file this time)"
enroll e3 --token "$TOK3" --ca "$T/ca/ca.crt" || {
    cat "$T/e3.enroll"
    fail "e3 could not use its own token"
}
[ "$(token_state "$ID3")" = used ] || fail "e3's token not used"

# ---- a wrong CA file: the TLS handshake fails, nothing is sent -----------------------------
log "a CA file of another CA"
WATCHPOST_CA_DIR=$T/ca2 "$BIN_CLI" ca init --cn "rogue CA" > /dev/null
TOK5=$("${CLI_E[@]}" add 2> /dev/null)
enrolled_config e5
enroll e5 --token "$TOK5" --ca "$T/ca2/ca.crt" && fail "enrolled trusting another CA"
cat "$T/e5.enroll"
[ "$(token_state "$(echo "$TOK5" | cut -c5-20)")" = unused ] || fail "token spent over bad TLS"

# ---- an existing key is kept ----------------------------------------------------------------
log "an existing key is not overwritten"
enroll e3 --token "$TOK5" --ca-fingerprint "$FP" && fail "overwrote e3's key without --force"
grep -q "exists already" "$T/e3.enroll" || fail "no 'exists already'"
[ "$(token_state "$(echo "$TOK5" | cut -c5-20)")" = unused ] || fail "token spent for nothing"

# ---- the wrong server name: the TLS check fails, nothing is sent -----------------------------
log "a collector certificate for another name"
enroll e5 --token "$TOK5" --ca-fingerprint "$FP" --server-name other-name &&
    fail "enrolled with a certificate for another name"
cat "$T/e5.enroll"
[ "$(token_state "$(echo "$TOK5" | cut -c5-20)")" = unused ] || fail "token spent over bad TLS"

# ---- re-enrolment: a valid certificate must be revoked first ---------------------------------
log "re-enrolment of e3 (token from stdin)"
TOK6=$("${CLI_E[@]}" add --name e3 2> /dev/null)
key0=$(sha256sum < "$T/e3-tls/e3.key")
echo "$TOK6" | enroll e3 --token - --ca-fingerprint "$FP" --force &&
    fail "re-enrolled while the old certificate is valid"
cat "$T/e3.enroll"
grep -q "HTTP 409" "$T/e3.enroll" || fail "no 409 for a valid certificate"
[ "$(token_state "$(echo "$TOK6" | cut -c5-20)")" = unused ] || fail "token spent on a 409"
"$BIN_CLI" ca revoke e3 > /dev/null
echo "$TOK6" | enroll e3 --token - --ca-fingerprint "$FP" --force || {
    cat "$T/e3.enroll"
    fail "re-enrolment after revoke failed"
}
[ "$(sha256sum < "$T/e3-tls/e3.key")" != "$key0" ] || fail "--force kept the old key"

# ---- secrets -----------------------------------------------------------------------------------
for t in "$TOK1" "$TOK2" "$TOK3" "$TOK5"; do
    grep -qF "${t:21}" "$T/collector.log" && fail "a token is in the collector's log"
done
grep -c "enroll: refused" "$T/collector.log" > /dev/null || fail "refusals are not logged"
grep "enroll: " "$T/collector.log" | tail -n 8

for t in "$TOK6"; do
    grep -qF "${t:21}" "$T/collector.log" && fail "a token is in the collector's log"
done

# ---- rate limit: refused attempts from one address end in 429 -------------------------------
log "rate limit"
codes=""
for _ in $(seq 1 25); do
    codes+=" $(curl -sk -o /dev/null -w '%{http_code}' --max-time 5 --noproxy '*' \
        -H 'Content-Type: application/json' \
        -d '{"token": "wpe_nope", "agent": "x1", "csr": "x"}' \
        "https://127.0.0.1:$HTTP_PORT/api/v1/enroll")"
done
echo "statuses:$codes"
case "$codes" in *429*) ;; *) fail "no 429 after 25 refused attempts" ;; esac

"${CLI_E[@]}" del "$ID1" || fail "del"
"${CLI_E[@]}" list | grep -q "^$ID1 " && fail "deleted token still listed"
stop collector
log "ok"
