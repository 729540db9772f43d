#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Incident mail through a real MTA. The test starts its own exim (exim.sh: Debian
# exim4-daemon-light, its own config, spool, log and maildirs under the temp dir, on a free
# 127.0.0.1 port, in the foreground; the system's exim, if any, is never used) and sends with mailsend
# (notify_mail_render + libcurl SMTP):
#  - incident 42 opens, escalates and resolves; alice gets English, bob Simplified Chinese;
#  - the resolve is sent to alice twice (a retry): the same Message-ID and identical bytes;
#  - an unknown recipient is refused with 550 (a dead letter), a busy one with 451 (a retry);
#  - over STARTTLS with AUTH PLAIN (the certificate from `watchpost ca`), and a wrong
#    password refused with 535.
# python3's email module parses what exim delivered: Message-ID, In-Reply-To and References
# threading, decoded subjects in both languages, Auto-Submitted, and both alternative parts.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/exim.sh"

exim_require
MAILSEND=$WP_BIN/tests/mailsend
[ -x "$MAILSEND" ] || fail "missing $MAILSEND (build first)"

ca_init
"$BIN_CLI" ca issue localhost --server --out "$T/certs" > /dev/null
EXIM_CERT=$T/certs/localhost.crt EXIM_KEY=$T/certs/localhost.key exim_start "$T/exim"
E=$EXIM_DIR
PORT=$EXIM_PORT

URL=smtp://127.0.0.1:$PORT/client.wp.test
FROM="Watchpost Collector <watchpost@wp.test>"
ZH_SUM="磁盘空间不足：web01 上的 /var 分区使用率超过百分之九十五"
EN_SUM="Disk full on web01"

# send EVENT SEQ STATUS LANG RCPT [extra mailsend args]
send() {
    local ev=$1 seq=$2 st=$3 lang=$4 rcpt=$5
    shift 5
    local sum=$EN_SUM
    [ "$lang" = en ] || sum=$ZH_SUM
    "$MAILSEND" --from "$FROM" --to "$rcpt" --lang "$lang" --domain wp.test \
        --dashboard https://dash.wp.test --id 42 --seq "$seq" --event "$ev" --status "$st" \
        --prio 2 --summary "$sum" --event-id "mail-42-$seq-$lang" \
        --values '{"used_pct": 97.5, "mount": "/var"}' "$@"
}

for step in "open 0 open" "escalate 5 open" "resolve 9 resolved"; do
    set -- $step
    send "$1" "$2" "$3" en alice@wp.test --url "$URL" >> "$T/mailsend.log" 2>&1 ||
        fail "sending $1 to alice"
    send "$1" "$2" "$3" zh-CN bob@wp.test --url "$URL" >> "$T/mailsend.log" 2>&1 ||
        fail "sending $1 to bob"
done
# a retry of the resolve: the same bytes again
send resolve 9 resolved en alice@wp.test --url "$URL" >> "$T/mailsend.log" 2>&1 ||
    fail "resending the resolve"
send resolve 9 resolved en alice@wp.test --out "$T/resolve-en.eml" || fail "rendering to a file"

# an unknown recipient: refused at RCPT with 5xx, mailsend fails
rc=0
send update 7 open en carol@wp.test --url "$URL" > "$T/carol.out" 2>&1 || rc=$?
cat "$T/carol.out"
[ "$rc" -eq 2 ] || fail "an unknown recipient was not refused (exit $rc)"
grep -q "smtp_code=550" "$T/carol.out" || fail "no 550 for an unknown recipient"

# a temporary refusal: 451 at RCPT, to be retried (not a dead letter)
rc=0
send update 7 open en busy@wp.test --url "$URL" > "$T/busy.out" 2>&1 || rc=$?
cat "$T/busy.out"
[ "$rc" -eq 2 ] || fail "a deferred recipient was not refused (exit $rc)"
grep -q "smtp_code=451" "$T/busy.out" || fail "no 451 for a deferred recipient"

# STARTTLS + AUTH PLAIN with the name on the certificate, the address on 127.0.0.1
TLSARGS=(--url "smtp://localhost:$PORT/client.wp.test" --resolve "localhost:$PORT:127.0.0.1"
    --starttls --cacert "$T/ca/ca.crt" --user wpuser)
send update 7 open en alice@wp.test "${TLSARGS[@]}" --pass s3cret >> "$T/mailsend.log" 2>&1 ||
    fail "sending over STARTTLS with AUTH"
rc=0
send update 8 open en alice@wp.test "${TLSARGS[@]}" --pass wrong > "$T/badauth.out" 2>&1 ||
    rc=$?
cat "$T/badauth.out"
[ "$rc" -eq 2 ] || fail "a wrong password was accepted (exit $rc)"
grep -q "smtp_code=535" "$T/badauth.out" || fail "no 535 for a wrong password"

delivered() { [ "$(exim_count alice)" -ge 5 ] && [ "$(exim_count bob)" -ge 3 ]; }
wait_for 30 "5 mails for alice and 3 for bob" delivered
grep -q "A=plain:wpuser" "$E/log/mainlog" || fail "no message arrived authenticated"
grep "A=plain:wpuser" "$E/log/mainlog" | grep -q "X=TLS" ||
    fail "the authenticated message was not over TLS"
exim_stop

python3 - "$E/maildir" "$T/resolve-en.eml" "$ZH_SUM" "$EN_SUM" <<'PY' || fail "delivered mail is wrong"
import email, email.policy, mailbox, sys

mdir, resolve_file, zh_sum, en_sum = sys.argv[1:5]
root = "<inc-42.0@wp.test>"
want = {
    "alice": {"open": "", "escalate": " — escalated", "resolve": " — resolved",
              "update": " — updated", "sum": en_sum, "words": ["Priority: P2", "Host: web01",
              "Runbook:", "used_pct"], "html": ['<html lang="en">', ">Priority</th>"]},
    "bob": {"open": "", "escalate": " — 已升级", "resolve": " — 已恢复",
            "sum": zh_sum, "words": ["优先级: P2", "主机: web01", "处理步骤:", "触发值:"],
            "html": ['<html lang="zh-CN">', ">优先级</th>", ">处理步骤</h3>"]},
}
errors = []

def check(cond, what):
    if not cond:
        errors.append(what)

for who, w in want.items():
    box = mailbox.Maildir(f"{mdir}/{who}", factory=None, create=False)
    msgs = []
    for key in box.keys():
        raw = box.get_bytes(key)
        msgs.append((raw, email.message_from_bytes(raw, policy=email.policy.default)))
    ids = sorted(m["Message-ID"] for _, m in msgs)
    if who == "alice":
        check(ids == ["<inc-42.0@wp.test>", "<inc-42.5@wp.test>", "<inc-42.7@wp.test>",
                      "<inc-42.9@wp.test>", "<inc-42.9@wp.test>"], f"{who} ids {ids}")
    else:
        check(ids == ["<inc-42.0@wp.test>", "<inc-42.5@wp.test>", "<inc-42.9@wp.test>"],
              f"{who} ids {ids}")
    for raw, m in msgs:
        mid = m["Message-ID"]
        seq = int(mid.split(".")[1].split("@")[0])
        ev = {0: "open", 5: "escalate", 7: "update", 9: "resolve"}[seq]
        subj = str(m["Subject"])
        check(subj == f"[INC-42] P2 {w['sum']}{w[ev]}", f"{who} {mid} subject {subj!r}")
        if ev == "open":
            check(m["In-Reply-To"] is None and m["References"] is None, f"{who} root replies")
        else:
            check(m["In-Reply-To"] == root, f"{who} {mid} In-Reply-To {m['In-Reply-To']}")
            check(m["References"] == root, f"{who} {mid} References {m['References']}")
        check(m["Auto-Submitted"] == "auto-generated", f"{who} {mid} Auto-Submitted")
        check(m["X-Watchpost-Incident"] == "42", f"{who} {mid} X-Watchpost-Incident")
        check(m["To"] == f"{who}@wp.test", f"{who} {mid} To {m['To']}")
        check(m["From"].addresses[0].addr_spec == "watchpost@wp.test", f"{who} From")
        check(m["Date"].datetime is not None, f"{who} Date")
        check(m.get_content_type() == "multipart/alternative", f"{who} {mid} type")
        parts = [p for p in m.iter_parts()]
        types = [p.get_content_type() for p in parts]
        check(types == ["text/plain", "text/html"], f"{who} {mid} parts {types}")
        if len(parts) == 2:
            text, html = parts[0].get_content(), parts[1].get_content()
            for s in w["words"]:
                check(s in text, f"{who} {mid} text lacks {s!r}")
            for s in w["html"]:
                check(s in html, f"{who} {mid} html lacks {s!r}")
            check("https://dash.wp.test/incidents/42" in html, f"{who} {mid} link")
        if who == "alice" and seq == 9:
            # what exim stored is what was rendered (exim stores LF line ends and prepends
            # Return-path, Envelope-to and Received)
            want_raw = open(resolve_file, "rb").read().replace(b"\r\n", b"\n")
            check(raw.replace(b"\r\n", b"\n").endswith(want_raw), f"alice {mid} bytes differ")
if errors:
    print("\n".join(errors))
    sys.exit(1)
print("mail ok: alice (en) 5 messages, bob (zh-CN) 3 messages, one thread each")
PY
log "PASS"
