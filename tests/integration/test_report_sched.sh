#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Scheduled reports end to end: a real collector with `reports:` on the report unit test's
# synthetic state (UTC+8). Every schedule's most recent due time is in the past, so on start
# the collector makes the weekly (zh-CN) and monthly (en) report of the period before it in a
# child process, archives them (<state>/reports/<kind>/<period>/), and mails them through the
# outbox to a real exim (exim.sh): to the destination's recipient and to an address, one
# multipart/mixed message each with the HTML as the body and the PDF and CSVs attached,
# delivered byte for byte as stored. A restart makes and mails nothing again. An attendance
# kind whose schedule file is missing fails, is logged with the reason and is retried later
# (backoff), not in a loop. The API lists the archive and serves its files (viewer token),
# refuses traversal and symbolic links, and POST /api/v1/reports/run (operator) makes a report
# of a chosen period now; with force it is made again without a second mail.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/exim.sh"

exim_require
export TZ=CST-8
MAKE=$WP_BIN/tests/test_report
[ -x "$MAKE" ] || fail "missing $MAKE"
WP_REPORT_MAKE=$T/state "$MAKE" > /dev/null || fail "could not build the synthetic state"
ca_init
exim_start "$T/exim"
E=$EXIM_DIR
user_add vera viewer viewer-pass-1
VTOKEN=$(cli token add dash --role viewer 2> /dev/null)
OTOKEN=$(cli token add ops --role operator 2> /dev/null)

# the periods the schedules below report on now (the last complete week before the most
# recent Monday 08:00, the month before the most recent 1st 08:00), computed independently
read -r WEEK MONTH < <(python3 - <<'PY'
import datetime as dt
now = dt.datetime.utcnow() + dt.timedelta(hours=8)
d = now.replace(hour=8, minute=0, second=0, microsecond=0) - dt.timedelta(days=now.weekday())
if d > now:
    d -= dt.timedelta(days=7)
y, w, _ = (d - dt.timedelta(days=7)).isocalendar()
m = now.replace(day=1, hour=8, minute=0, second=0, microsecond=0)
if m > now:
    m = (m - dt.timedelta(days=1)).replace(day=1)
prev = (m - dt.timedelta(days=1))
print(f"{y}-W{w:02d} {prev.year}-{prev.month:02d}")
PY
)
log "expecting weekly $WEEK and monthly $MONTH"

collector_config "notify:" \
    "  domain: noc.wp.test" \
    "  backoff_min: 300ms" \
    "  backoff_max: 1s" \
    "  destinations:" \
    "    - {name: mail-noc, kind: email, url: 'smtp://127.0.0.1:$EXIM_PORT', timeout: 10s," \
    "       from: 'Watchpost <watchpost@wp.test>', to: [alice@wp.test], events: [open]}" \
    "reports:" \
    "  formats: [html, pdf, csv]" \
    "  recipients: [mail-noc, bob@wp.test]" \
    "  retry_min: 1h" \
    "  kinds:" \
    "    - {kind: weekly, at: 'mon 08:00', lang: zh-CN}" \
    "    - {kind: monthly, formats: [html, pdf]}" \
    "    - {kind: attendance, at: '1 08:30', schedule: $T/missing-shifts.yaml}" \
    "    - {kind: inspection, enabled: false}" \
    "http:" \
    "  listen: 127.0.0.1:0" \
    "  static_dir: $WP_SRC/dashboards"
"$BIN_CLI" check-config --collector "$T/collector.yaml" > "$T/check.log" 2>&1 ||
    { cat "$T/check.log"; fail "collector.yaml refused"; }

# bad reports: configs are refused with file:line:col
bad_conf() { # bad_conf WANT_SUBSTRING YAML_LINES...
    local want=$1
    shift
    cp "$T/collector.yaml" "$T/bad.yaml"
    sed -i '/^reports:/,$d' "$T/bad.yaml"
    printf '%s\n' "$@" >> "$T/bad.yaml"
    if "$BIN_CLI" check-config --collector "$T/bad.yaml" > "$T/bad.out" 2>&1; then
        fail "accepted: $*"
    fi
    grep -q "^$T/bad.yaml:[0-9]*:[0-9]*: .*$want" "$T/bad.out" ||
        fail "for $*: $(cat "$T/bad.out") -- expected: $want"
}
bad_conf 'unknown report kind "yearly" (expected one of: weekly, monthly, attendance' \
    "reports:" "  kinds: [{kind: yearly}]"
bad_conf 'reports.kinds\[0\].at: expected a weekday and a time like "mon 08:00", got "1 08:00"' \
    "reports:" "  kinds: [{kind: weekly, at: '1 08:00'}]"
bad_conf 'recipient "nobody" is not an email destination' "reports:" "  recipients: [nobody]"
bad_conf 'reports.formats: expected html, pdf or csv, got "docx"' "reports:" "  formats: [docx]"
bad_conf 'attendance needs schedule' "reports:" "  kinds: [{kind: attendance}]"
bad_conf 'reports.kinds\[0\].limits: cpu: expected a positive number up to 100, got "120"' \
    "reports:" "  kinds: [{kind: inspection, limits: {disk: 85, cpu: 120}}]"

start_collector_http
# the API over plain HTTP (code and jq_ in lib.sh); bodies go to $T/out
HTTP_TIMEOUT=20 http_client "" --path-as-is
HTTP_OUT=$T/out
V=(-H "Authorization: Bearer $VTOKEN")
O=(-H "Authorization: Bearer $OTOKEN")
A=$T/state/reports
ob() { cli outbox list --format csv --limit 1000; }
nsent() { ob | grep -c ',"report",' | tr -d ' ' || true; }
sent_all() { # sent_all N: N report messages in the outbox, all sent
    local rows
    rows=$(ob | grep ',"report",' || true)
    [ "$(printf '%s\n' "$rows" | grep -c ',"sent",')" = "$1" ] &&
        [ "$(printf '%s\n' "$rows" | grep -c .)" = "$1" ]
}

log "the collector makes the due reports and mails them"
wait_for 60 "weekly $WEEK archived" test -s "$A/weekly/$WEEK/report.pdf"
wait_for 60 "monthly $MONTH archived" test -s "$A/monthly/$MONTH/report.pdf"
wait_for 60 "4 report mails sent" sent_all 4
wait_for 30 "delivered to alice and bob" \
    bash -c "[ \$(find '$E/maildir/alice/new' '$E/maildir/bob/new' -type f | wc -l) = 4 ]"
ls "$A/weekly/$WEEK" > "$T/weekly.files"
grep -qx report.html "$T/weekly.files" && grep -qx report.pdf "$T/weekly.files" &&
    grep -q '^report-.*\.csv$' "$T/weekly.files" || fail "weekly files: $(cat "$T/weekly.files")"
[ "$(ls "$A/monthly/$MONTH" | sort | tr '\n' ' ')" = "report.html report.pdf " ] ||
    fail "monthly files (html and pdf only): $(ls "$A/monthly/$MONTH")"
[ -z "$(find "$A" -name '.tmp-*' -o -name '.old-*')" ] || fail "temporary directories left"
[ "$(grep -c 'generated ' "$T/collector.log")" = 2 ] || fail "not generated exactly twice"

log "a failing kind is logged with its reason and retried later, not in a loop"
wait_for 30 "attendance failure logged" grep -q "attendance .* not made (.*missing-shifts.yaml.*); retry in 3600 s" "$T/collector.log"
sleep 12 # more than one scheduler check (10 s)
[ "$(grep -c 'attendance .* not made' "$T/collector.log")" = 1 ] || fail "attendance retried at once"

log "the delivered mails"
python3 - "$E/maildir" "$T/state/incidents.db" "$WEEK" "$MONTH" "$A" <<'PY' || fail "mail is wrong"
import email, email.policy, mailbox, sqlite3, sys
mdir, db, week, month, arch = sys.argv[1:]
errors = []
def check(c, what):
    if not c:
        errors.append(what)
stored = {}
for eid, body, state in sqlite3.connect(db).execute(
        "SELECT event_id, body, state FROM outbox WHERE event = 'report'"):
    stored[eid] = bytes(body)
want_ids = {f"mail-noc-report-weekly-{week}", f"mail-noc-report-weekly-{week}-bob@wp.test",
            f"mail-noc-report-monthly-{month}", f"mail-noc-report-monthly-{month}-bob@wp.test"}
check(set(stored) == want_ids, f"outbox ids {sorted(stored)}")
for who in ("alice", "bob"):
    box = mailbox.Maildir(f"{mdir}/{who}", factory=None, create=False)
    got = {}
    for key in box.keys():
        raw = box.get_bytes(key)
        m = email.message_from_bytes(raw, policy=email.policy.default)
        kind = (m["X-Watchpost-Report"] or "").split("/")[0]
        check(kind not in got, f"{who}: {kind} delivered twice")
        got[kind] = (raw, m)
    check(sorted(got) == ["monthly", "weekly"], f"{who}: got {sorted(got)}")
    for kind, (raw, m) in got.items():
        period = week if kind == "weekly" else month
        subj = {"weekly": f"Watchpost 周报 {week}", "monthly": f"Watchpost monthly report {month}"}
        check(str(m["Subject"]) == subj[kind], f"{who} {kind} subject {m['Subject']!r}")
        hdr = raw.split(b"\n\n", 1)[0]
        check(all(b < 0x80 for b in hdr), f"{who} {kind}: 8-bit header bytes")
        check(m["To"].addresses[0].addr_spec == f"{who}@wp.test", f"{who} To {m['To']}")
        check(m["Return-path"] == "<watchpost@wp.test>", f"{who} Return-path")
        check(m.get_content_type() == "multipart/mixed", f"{who} {kind} {m.get_content_type()}")
        parts = list(m.iter_parts())
        check(parts[0].get_content_type() == "text/html", f"{who} {kind} body type")
        html = open(f"{arch}/{kind}/{period}/report.html", "rb").read()
        check(parts[0].get_content().encode() == html, f"{who} {kind}: the body is not report.html")
        check(parts[1].get_filename() == f"watchpost-{kind}-{period}.pdf", f"{who} {kind} pdf name")
        pdf = parts[1].get_content()
        check(pdf.startswith(b"%PDF-") and pdf == open(f"{arch}/{kind}/{period}/report.pdf", "rb").read(),
              f"{who} {kind}: the PDF attachment differs from the archive")
        csvs = [p.get_filename() for p in parts[2:]]
        if kind == "weekly":
            check(len(csvs) >= 10 and all(n.startswith(f"watchpost-weekly-{week}-") and
                                          n.endswith(".csv") for n in csvs), f"csvs {csvs}")
        else:
            check(csvs == [], f"monthly has CSVs {csvs}")
        # delivered byte for byte as stored (exim adds its trace headers in front; LF endings)
        eid = f"mail-noc-report-{kind}-{period}" + ("-bob@wp.test" if who == "bob" else "")
        s = stored.get(eid, b"").replace(b"\r\n", b"\n")
        check(len(s) > 1000 and raw.endswith(s), f"{who} {kind}: delivered bytes differ from the stored message")
if errors:
    print("\n".join(errors))
    sys.exit(1)
PY

log "API: the archive list and its files"
[ "$(code GET /api/v1/reports)" = 401 ] || fail "list without login"
[ "$(code GET /api/v1/reports "${V[@]}")" = 200 ] || fail "list: $(cat "$T/out")"
python3 - "$T/out" "$WEEK" "$MONTH" <<'PY' || fail "archive list: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
r = {(x["kind"], x["period"]): x for x in d["reports"]}
assert set(r) == {("weekly", sys.argv[2]), ("monthly", sys.argv[3])}, r.keys()
w = r[("weekly", sys.argv[2])]
assert w["formats"] == ["html", "pdf", "csv"] and w["mail"] == "sent" and w["mail_sent"] == 2, w
assert "report.pdf" in w["files"] and w["bytes"] > 10000 and w["created_ms"] > 0, w
assert r[("monthly", sys.argv[3])]["formats"] == ["html", "pdf"]
assert [k["kind"] for k in d["kinds"]][:3] == ["weekly", "monthly", "attendance"], d["kinds"]
PY
for f in report.html report.pdf; do
    [ "$(code GET "/api/v1/reports/weekly/$WEEK/$f" "${V[@]}" -D "$T/hdr")" = 200 ] || fail "GET $f"
    cmp -s "$T/out" "$A/weekly/$WEEK/$f" || fail "$f served differs from the archive"
done
grep -qi '^content-type: application/pdf' "$T/hdr" || fail "pdf type: $(cat "$T/hdr")"
grep -qi "^content-disposition: inline; filename=\"watchpost-weekly-$WEEK.pdf\"" "$T/hdr" ||
    fail "pdf disposition: $(cat "$T/hdr")"
csv=$(grep '^report-.*\.csv$' "$T/weekly.files" | head -1)
[ "$(code GET "/api/v1/reports/weekly/$WEEK/$csv" "${V[@]}")" = 200 ] || fail "GET $csv"
cmp -s "$T/out" "$A/weekly/$WEEK/$csv" || fail "$csv differs"
[ "$(code GET "/api/v1/reports/weekly/$WEEK/report.pdf")" = 401 ] || fail "file without login"

log "API: traversal and links refused"
ln -s /etc/passwd "$A/weekly/$WEEK/evil.html"
ln -s "$A/weekly/$WEEK" "$A/weekly/linked"
ln -s "$T/state" "$A/statelink"
cp "$A/weekly/$WEEK/report.html" "$A/weekly/$WEEK/.hidden.html"
for p in "/api/v1/reports/weekly/$WEEK/evil.html" "/api/v1/reports/weekly/linked/report.html" \
    "/api/v1/reports/statelink/reports/report.html" "/api/v1/reports/weekly/$WEEK/.hidden.html" \
    "/api/v1/reports/weekly/$WEEK/../../../incidents.db" "/api/v1/reports/../../incidents.db" \
    "/api/v1/reports/weekly/..%2f..%2f..%2fincidents.db/x.html" "/api/v1/reports/weekly/$WEEK" \
    "/api/v1/reports/weekly/$WEEK/report.html/" "/api/v1/reports/weekly/$WEEK/%2e%2e" \
    "/api/v1/reports/weekly/..%2F$WEEK/report.html" "/api/v1/reports/weekly/$WEEK/report.pdf%00.html" \
    "/api/v1/reports/weekly/$WEEK/report%2Ehtml/../report.html" "/api/v1/reports//$WEEK/report.html" \
    "/api/v1/reports/weekly/$WEEK/..." "/api/v1/reports/weekly/$WEEK/nothere.pdf"; do
    c=$(code GET "$p" "${V[@]}")
    [ "$c" = 404 ] || [ "$c" = 400 ] || fail "GET $p gave $c"
    ! grep -q "root:" "$T/out" || fail "GET $p leaked /etc/passwd"
done
cp "$T/state/incidents.db" "$A/weekly/$WEEK/copy.db" 2> /dev/null || true
[ "$(code GET "/api/v1/reports/weekly/$WEEK/copy.db" "${V[@]}")" = 404 ] || fail "a .db was served"
rm -f "$A/weekly/$WEEK/evil.html" "$A/weekly/linked" "$A/statelink" "$A/weekly/$WEEK/.hidden.html" \
    "$A/weekly/$WEEK/copy.db"

CHROMIUM=${CHROMIUM:-$(command -v chromium || true)}
if [ -n "$CHROMIUM" ]; then
    log "dashboard: the Reports page (headless Chromium)"
    export CHROMIUM
    mkdir -p "$T/screens"
    WP_SRC=$WP_SRC python3 - "$BASE" "$T/screens" "$WEEK" "$MONTH" > "$T/browser.log" 2>&1 <<'PY' ||
import os, sys
sys.path.insert(0, os.path.join(os.environ["WP_SRC"], "tests", "integration"))
from browser import Dashboard
base, out, week, month = sys.argv[1:5]
with Dashboard(out) as b:
    b.open(base)
    b.login("vera", "viewer-pass-1")
    b.click("nav a[data-page=reports]")
    b.wait("document.querySelector('#page').dataset.page === 'reports' &&"
           " document.querySelector('section.rep-kind[data-kind=weekly] tr[data-period=\"%s\"]') &&"
           " document.querySelector('section.rep-kind[data-kind=monthly] tr[data-period=\"%s\"]')"
           % (week, month), what="weekly and monthly rows")
    order = b.eval("[...document.querySelectorAll('section.rep-kind')].map(s => s.dataset.kind).join()")
    assert order.startswith("weekly,monthly,attendance"), order
    pdf = b.eval("document.querySelector('section.rep-kind[data-kind=weekly] a.rep-file.pdf').getAttribute('href')")
    assert pdf == "/api/v1/reports/weekly/%s/report.pdf" % week, pdf
    n = b.eval("document.querySelectorAll('section.rep-kind[data-kind=weekly] a.rep-file.csv').length")
    assert n >= 10, n
    assert b.eval("document.querySelector('section.rep-kind[data-kind=weekly] .rep-mail').className") == "rep-mail sent"
    assert b.eval("document.querySelectorAll('button[data-action=run]').length") == 0, "a viewer sees Make now"
    b.screenshot("reports-en.png")
    b.select("#lang", "zh-CN")
    b.wait("document.querySelector('section.rep-kind[data-kind=weekly] h2').textContent.startsWith('周报')",
           what="zh-CN headings")
    b.wait("document.querySelector('nav a[data-page=reports]').textContent === '报告'", what="zh-CN nav")
    b.screenshot("reports-zh.png")
    b.select("#lang", "en")
    assert not b.errors, "browser console errors: %s" % b.errors
    print("reports page ok")
PY
        { cat "$T/browser.log"; fail "Reports page"; }
fi

[ "$(cstat report_runs_failed)" = 1 ] && [ "$(cstat report_runs_ok)" = 2 ] ||
    fail "status: $("$BIN_CLI" status --state-dir "$T/state" | grep report_)"

log "restart: nothing made or mailed again (also after losing the monthly row: a crash"
log "between the rename into the archive and the record)"
stop collector
python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("DELETE FROM reports WHERE kind = '"'monthly'"'"); c.commit()' \
    "$T/state/incidents.db"
before_w=$(stat -c %Y.%i "$A/weekly/$WEEK/report.html")
start_collector_http
oks() { grep -c "report\] .*: ok \(weekly\|monthly\) " "$T/collector.log" || true; }
wait_for 60 "both kinds checked again after the restart" bash -c "[ \$(grep -c ': ok \(weekly\|monthly\) ' '$T/collector.log') -ge 4 ]"
[ "$(grep -c 'generated ' "$T/collector.log")" = 2 ] || fail "a report was made again"
[ "$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM reports WHERE mailed = 1").fetchone()[0])' "$T/state/incidents.db")" = 2 ] ||
    fail "the monthly report was not recorded again"
[ "$(stat -c %Y.%i "$A/weekly/$WEEK/report.html")" = "$before_w" ] || fail "the archive changed"
sleep 2
sent_all 4 || fail "more report mails after the restart: $(ob | grep ',"report",')"
[ "$(find "$E/maildir" -path '*/new/*' -type f | wc -l)" = 4 ] || fail "a mail was delivered twice"

log "API: run a report now"
HTTP_TIMEOUT=20 http_client "" --path-as-is
[ "$(code POST /api/v1/reports/run "${V[@]}" -H 'Content-Type: application/json' \
    -d '{"kind":"weekly","period":"2026-W47"}')" = 403 ] || fail "a viewer ran a report"
[ "$(code POST /api/v1/reports/run "${O[@]}" -H 'Content-Type: application/json' \
    -d '{"kind":"weekly","period":"2026-W99"}')" = 400 ] || fail "bad period: $(cat "$T/out")"
[ "$(code POST /api/v1/reports/run "${O[@]}" -H 'Content-Type: application/json' \
    -d '{"kind":"yearly"}')" = 400 ] || fail "unknown kind: $(cat "$T/out")"
run() { code POST /api/v1/reports/run "${O[@]}" -H 'Content-Type: application/json' -d "$1"; }
wait_for 30 "run weekly 2026-W47 accepted" bash -c "[ \"\$(${CURL[*]} -X POST -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $OTOKEN' -H 'Content-Type: application/json' -d '{\"kind\":\"weekly\",\"period\":\"2026-W47\"}' $BASE/api/v1/reports/run)\" = 202 ]"
wait_for 60 "2026-W47 archived" test -s "$A/weekly/2026-W47/report.pdf"
wait_for 60 "2026-W47 mailed too" sent_all 6
first=$(stat -c %i "$A/weekly/2026-W47")
wait_for 30 "forced run accepted" bash -c "[ \"\$(${CURL[*]} -X POST -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $OTOKEN' -H 'Content-Type: application/json' -d '{\"kind\":\"weekly\",\"period\":\"2026-W47\",\"force\":true}' $BASE/api/v1/reports/run)\" = 202 ]"
wait_for 60 "2026-W47 made again" bash -c "[ \$(stat -c %i '$A/weekly/2026-W47') != $first ]"
wait_for 30 "the forced run finished" bash -c "[ \$(grep -c 'ok weekly 2026-W47' '$T/collector.log') -ge 2 ]"
sleep 2
sent_all 6 || fail "the forced run mailed again: $(ob | grep ',"report",')"
cmp -s "$A/weekly/2026-W47/report.html" <(cli report weekly --week 2026-W47 --lang zh-CN \
    --out "$T/cli" > /dev/null && cat "$T/cli/watchpost-weekly-2026-W47.html") ||
    fail "the archived report differs from watchpost report's"

log "keep: an entry made longer ago than keep is removed by the next run"
python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("UPDATE reports SET created_ms = 1000 WHERE period = '"'2026-W47'"'"); c.commit()' \
    "$T/state/incidents.db"
wait_for 30 "a run accepted" bash -c "[ \"\$(${CURL[*]} -X POST -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $OTOKEN' -H 'Content-Type: application/json' -d '{\"kind\":\"monthly\"}' $BASE/api/v1/reports/run)\" = 202 ]"
wait_for 30 "2026-W47 removed" bash -c "[ ! -e '$A/weekly/2026-W47' ]"
[ -d "$A/weekly/$WEEK" ] && [ -d "$A/monthly/$MONTH" ] || fail "a recent report was removed"
[ "$(code GET /api/v1/reports "${V[@]}")" = 200 ] && ! grep -q 2026-W47 "$T/out" ||
    fail "2026-W47 still listed: $(cat "$T/out")"
stop collector
exim_stop
log "ok"
