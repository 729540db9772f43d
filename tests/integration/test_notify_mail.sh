#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Incident mail end to end: the real collector's email destinations deliver through a real
# exim (exim.sh) on 127.0.0.1 into maildirs. An incident (an agent goes silent, host_silent
# nodata) opens, escalates (SLA response 3 s), is acknowledged from the CLI and resolves (the
# agent comes back). Destinations: mail-en (lang en, to alice, STARTTLS required + AUTH PLAIN,
# certificate checked for "localhost"), mail-zh (lang zh-CN, to "Bob <bob@wp.test>", plain,
# a '<' in the sender's display name) and mail-bad (to carol, unknown to exim: 550).
#  - exim defers every message with 451 after its data (DIR/defer-data) when the incident
#    opens: the open is retried (exim's DATA ACL logs Message-ID, size and body hash of every
#    attempt: all identical, and equal to the body finally delivered), the 451 and exim's text
#    in `outbox list`; once exim accepts, it is delivered exactly once;
#  - the 550 for carol is a dead letter at once, with exim's answer, in `watchpost outbox
#    list --state dead`, and a notify_dead_letter incident opens;
#  - python3's email module parses both maildirs: per recipient 4 mails (open, escalate, ack,
#    resolve) in one thread (<inc-N.0@domain> on the open; the others In-Reply-To and
#    References it, no duplicate), subjects "[INC-N] P1 ..." decoded in both languages
#    (zh-CN suffixes, RFC 2047 on the wire, no 8-bit header bytes), Auto-Submitted,
#    Content-Language, text and HTML parts, From/To, envelope sender and recipient
#    (Return-path, Envelope-to), EHLO with the notify domain, TLS + AUTH for alice only.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/exim.sh"

exim_require
ca_init
issue agent1
"$BIN_CLI" ca issue localhost --server --out "$T/certs" > /dev/null
EXIM_CERT=$T/certs/localhost.crt EXIM_KEY=$T/certs/localhost.key exim_start "$T/exim"
echo s3cret > "$T/smtp.pass"
E=$EXIM_DIR
touch "$E/defer-data"

rules_config
# No path in the URLs: the collector says EHLO with the notify domain. alice's mail goes over
# STARTTLS (required) with AUTH PLAIN, the certificate checked against the name localhost.
# bob's sender has a '<' in its display name: the envelope sender is still the last <...>.
SMTP="url: 'smtp://127.0.0.1:$EXIM_PORT', timeout: 10s"
TLS="url: 'smtp://localhost:$EXIM_PORT', timeout: 10s, starttls: true, ca_file: $T/ca/ca.crt,
  username: wpuser, secret_file: $T/smtp.pass"
FROM_EN="from: 'Watchpost NOC <watchpost@wp.test>'"
FROM_ZH="from: '\"Watchpost <NOC> 监控\" <watchpost@wp.test>'"
collector_config "incidents:" "  rules: [$T/rules.yaml]" \
    "  sla: {p1: {response: 3s, resolve: 1h}}" "  reopen_window: 0s" \
    "notify:" \
    "  domain: noc.wp.test" \
    "  dashboard_url: https://dash.wp.test" \
    "  backoff_min: 300ms" \
    "  backoff_max: 1s" \
    "  destinations:" \
    "    - {name: mail-en, kind: email, $TLS, $FROM_EN, to: [alice@wp.test], lang: en}" \
    "    - {name: mail-zh, kind: email, $SMTP, $FROM_ZH, to: ['Bob <bob@wp.test>'], lang: zh-CN}" \
    "    - {name: mail-bad, kind: email, $SMTP, $FROM_EN, to: [carol@wp.test], events: [open]}" \
    "  routes:" \
    "    - {priorities: [P1], rules: [host_silent], to: [mail-en, mail-zh, mail-bad]}"
"$BIN_CLI" check-config "$T/collector.yaml" --collector > "$T/check.log" 2>&1 ||
    { cat "$T/check.log"; fail "collector.yaml refused"; }
start_collector
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 1, fields: 1}"
agent_config agent1
start_agent agent1

ob() { "$BIN_CLI" outbox --state-dir "$T/state" "$@"; }
# obq 'python expression over r (a CSV row)': the matching rows of `outbox list --format csv`
obq() {
    ob list --format csv --limit 1000 | python3 -c '
import csv, sys
for r in csv.DictReader(sys.stdin.read().lstrip("\ufeff").splitlines()):
    if ('"$1"'):
        print(r["id"], r["state"], r["destination"], r["event"], r["attempts"], r["code"],
              r["last_error"])'
}
wait_for 20 "the agent streams" grep -q "agent connected" "$T/collector.log"
sleep 2
crash agent1
opened() { inc list --status open --format csv | grep -q host_silent; }
wait_for 20 "host_silent opened" opened
read -r ID HOST < <(inc list --status all --format csv | python3 -c '
import csv, sys
rows = [r for r in csv.DictReader(sys.stdin.read().lstrip("\ufeff").splitlines())
        if r["rule"] == "host_silent"]
print(rows[0]["id"], rows[0]["host"])')
log "INC-$ID opened (host $HOST)"

# exim takes the data of the open and defers it (451): retried, still queued
deferred() {
    [ "$(obq 'r["event"] == "open" and r["state"] == "queued" and r["code"] == "451" and
             "queue full" in r["last_error"] and int(r["attempts"]) >= 2 and
             r["destination"] in ("mail-en", "mail-zh")' |
         wc -l)" = 2 ]
}
wait_for 20 "the open deferred (451 queue full) twice for alice and bob" deferred
# carol is refused at RCPT (550): a dead letter at once, never retried, exim's answer shown
dead550() { ob list --state dead | grep " mail-bad .* 550 " | grep -q "unknown user"; }
wait_for 20 "the 550 for carol dead-lettered" dead550
dead_inc() { inc list --status open --format csv | grep -q notify_dead_letter; }
wait_for 20 "notify_dead_letter incident" dead_inc
[ "$(exim_count alice)" = 0 ] && [ "$(exim_count bob)" = 0 ] ||
    fail "a deferred message was delivered"
rm -f "$E/defer-data"
open_sent() {
    [ "$(obq 'r["event"] == "open" and r["state"] == "sent" and
             r["destination"] in ("mail-en", "mail-zh")' | wc -l)" = 2 ]
}
wait_for 20 "the open sent to alice and bob" open_sent

# escalation (response 3 s passed), then an operator's ack from another process
esc() { inc show "$ID" | grep -q "escalated"; }
wait_for 20 "escalation of INC-$ID" esc
inc ack "$ID" --by alice --note "looking" > /dev/null
# the agent comes back: resolved
start_agent agent1
resolved() { inc list --status resolved --format csv | grep -q host_silent; }
wait_for 30 "INC-$ID resolved" resolved
all_sent() {
    [ "$(obq 'r["state"] == "sent" and r["destination"] in ("mail-en", "mail-zh")' |
         wc -l)" = 8 ] && [ "$(exim_count alice)" -ge 4 ] && [ "$(exim_count bob)" -ge 4 ]
}
wait_for 30 "4 messages each sent to and delivered for alice and bob" all_sent
obq 'True' > "$T/outbox.txt"
[ "$(obq 'r["state"] not in ("sent", "dead")' | wc -l)" = 0 ] ||
    { cat "$T/outbox.txt"; fail "messages neither sent nor dead"; }
obq 'r["destination"] == "mail-bad"' | grep -q '^[0-9]* dead mail-bad open 1 550 ' ||
    { cat "$T/outbox.txt"; fail "the 550 was retried or not dead"; }
inc show "$ID" > "$T/timeline"
for k in "notify sent" "notify retry" "notify dead"; do
    grep -q "$k" "$T/timeline" || { cat "$T/timeline"; fail "no \"$k\" on the timeline"; }
done
stop agent1
stop collector # closes its cached SMTP connections, so exim's children can end
exim_stop

python3 - "$E/maildir" "$E/log/mainlog" "$ID" "$HOST" <<'PY' || fail "delivered mail is wrong"
import email, email.policy, hashlib, mailbox, re, sys

mdir, mainlog, n, host = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
dom = "noc.wp.test"
root = f"<inc-{n}.0@{dom}>"
summary = f"[INC-{n}] P1 {host} sends nothing"
want = {
    "alice": {"to": "alice@wp.test", "lang": "en", "from_name": "Watchpost NOC",
              "received": r"with esmtpsa \(TLS1\.[23]\) tls ",
              "sfx": {"open": "", "escalate": " — escalated", "ack": " — acknowledged",
                      "resolve": " — resolved"},
              "words": ["Priority: P1", f"Host: {host}"], "html": ['<html lang="en">',
                                                                  ">Priority</th>"]},
    "bob": {"to": "bob@wp.test", "lang": "zh-CN", "from_name": "Watchpost <NOC> 监控",
            "received": r"with esmtp ",
            "sfx": {"open": "", "escalate": " — 已升级", "ack": " — 已确认",
                    "resolve": " — 已恢复"},
            "words": ["优先级: P1", f"主机: {host}"], "html": ['<html lang="zh-CN">',
                                                             ">优先级</th>"]},
}
errors = []


def check(cond, what):
    if not cond:
        errors.append(what)


deferred_body = {}
log = open(mainlog, encoding="utf-8", errors="replace").read()
# every deferred attempt (the DATA ACL logs it) carried the open's Message-ID and size
tries = re.findall(r"deferred-data to=(\S+) mid=(\S*) size=(\d+) body=(\w+)", log)
for who in want:
    mine = [t for t in tries if t[0] == f"{who}@wp.test"]
    check(len(mine) >= 2, f"{who}: {len(mine)} deferred attempts logged, want >= 2")
    check(all(t[1] == root for t in mine), f"{who}: deferred attempts {mine}")
    check(len({t[2:] for t in mine}) == 1, f"{who}: retried messages differ {mine}")
    deferred_body[who] = mine[0][3] if mine else None
# received from the collector's envelope sender, after EHLO with the notify domain
recv = [l for l in log.splitlines() if " <= " in l]
check(len(recv) == 8, f"{len(recv)} messages received, want 8")
for l in recv:
    check(" <= watchpost@wp.test " in l and re.search(r" P=esmtp(sa)? ", l), f"received: {l}")
    m = re.search(r" H=\(([^)]*)\) ", l)
    check(m is not None and m.group(1) == dom, f"EHLO name in {l}")
check(sum(" A=plain:wpuser " in l and " X=TLS" in l for l in recv) == 4,
      "alice's 4 messages did not all arrive over TLS with AUTH")

for who, w in want.items():
    box = mailbox.Maildir(f"{mdir}/{who}", factory=None, create=False)
    msgs = []
    for key in box.keys():
        raw = box.get_bytes(key)
        msgs.append((raw, email.message_from_bytes(raw, policy=email.policy.default)))
    ids = [m["Message-ID"] for _, m in msgs]
    check(len(ids) == 4 and len(set(ids)) == 4, f"{who}: Message-IDs {ids}")
    check(ids.count(root) == 1, f"{who}: the root {root} delivered {ids.count(root)} times")
    seen = set()
    for raw, m in msgs:
        mid = m["Message-ID"]
        ev = m["X-Watchpost-Event-Id"] or ""
        hdr = raw.split(b"\n\n", 1)[0]
        check(all(b < 0x80 for b in hdr), f"{who} {mid}: 8-bit bytes in the header")
        check(re.fullmatch(rf"<inc-{n}\.\d+@{re.escape(dom)}>", mid or "") is not None,
              f"{who} Message-ID {mid}")
        subj = str(m["Subject"])
        kind = next((k for k, s in w["sfx"].items() if s and subj.endswith(s)), "open")
        seen.add(kind)
        check(subj == summary + w["sfx"][kind], f"{who} {mid} subject {subj!r}")
        if w["lang"] == "zh-CN" and kind != "open":
            check(b"=?utf-8?" in hdr.lower(), f"{who} {mid}: subject not RFC 2047 encoded")
        if kind == "open":
            check(mid == root, f"{who} open is {mid}, want {root}")
            # the body exim finally took is the body it refused before (stored, resent)
            body = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1].replace(b"\n", b" ")
            check(hashlib.sha256(body).hexdigest() == (deferred_body.get(who) or "").lower(),
                  f"{who}: the delivered open differs from the deferred attempts")
            check(m["In-Reply-To"] is None and m["References"] is None, f"{who} root replies")
        else:
            check(mid != root, f"{who} {kind} reuses the root Message-ID")
            check(m["In-Reply-To"] == root, f"{who} {mid} In-Reply-To {m['In-Reply-To']}")
            check(m["References"] == root, f"{who} {mid} References {m['References']}")
        check(m["Auto-Submitted"] == "auto-generated", f"{who} {mid} Auto-Submitted")
        check(m["X-Watchpost-Incident"] == str(n), f"{who} {mid} X-Watchpost-Incident")
        check(m["Content-Language"] == w["lang"], f"{who} {mid} Content-Language")
        check(m["To"].addresses[0].addr_spec == w["to"], f"{who} {mid} To {m['To']}")
        check(m["From"].addresses[0].addr_spec == "watchpost@wp.test", f"{who} From")
        check(m["From"].addresses[0].display_name == w["from_name"],
              f"{who} From name {m['From'].addresses[0].display_name!r}")
        check(m["Return-path"] == "<watchpost@wp.test>", f"{who} Return-path {m['Return-path']}")
        check(m["Envelope-to"] == w["to"], f"{who} Envelope-to {m['Envelope-to']}")
        check(m["Date"].datetime is not None, f"{who} Date")
        rcv = " ".join(str(m["Received"]).split())
        check(re.search(w["received"], rcv) and f"(helo={dom})" in rcv and
              "(envelope-from <watchpost@wp.test>)" in rcv, f"{who} {mid} Received: {rcv}")
        check(m.get_content_type() == "multipart/alternative", f"{who} {mid} type")
        parts = list(m.iter_parts())
        types = [p.get_content_type() for p in parts]
        check(types == ["text/plain", "text/html"], f"{who} {mid} parts {types}")
        if len(parts) == 2:
            text, html = parts[0].get_content(), parts[1].get_content()
            for s in w["words"]:
                check(s in text, f"{who} {mid} text lacks {s!r}")
            for s in w["html"]:
                check(s in html, f"{who} {mid} html lacks {s!r}")
            check(f"https://dash.wp.test/incidents/{n}" in html, f"{who} {mid} link")
            if kind == "ack":
                check("alice" in text, f"{who} {mid} ack text does not name alice")
    check(seen == set(w["sfx"]), f"{who}: events {sorted(seen)}")
if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"mail ok: INC-{n} to alice (en) and bob (zh-CN), 4 messages each in one thread; "
      f"{len(tries)} deferred attempts")
PY
log "PASS"
