#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `watchpost report` end to end on a state directory written by the report unit test's data
# builder (WP_REPORT_MAKE: a synthetic 2026-W46/W47 through the real stores, UTC+8): the weekly,
# monthly and fault reports as HTML and CSV, byte-identical on rerun, HTML that parses with
# balanced tags and loads nothing from outside, CSV with a BOM, CRLF and the right columns; and
# the attendance report on the attendance unit test's week (WP_ATT_MAKE) with its known answers,
# and the weekly / monthly report with --schedule (seat attendance in the telephony section),
# or with -c taking schedule: of the kind in collector.yaml (the same bytes);
# the daily inspection report on the inspection unit test's state (WP_INSPECT_MAKE).
. "$(dirname "$0")/lib.sh"

export TZ=CST-8
MAKE=$WP_BIN/tests/test_report
[ -x "$MAKE" ] || fail "missing $MAKE"
WP_REPORT_MAKE=$T/state "$MAKE" || fail "could not build the synthetic state"
report() { "$BIN_CLI" report "$@" --state-dir "$T/state"; }

log "weekly report, twice"
report weekly --week 2026-W47 --out "$T/a" --format html,csv > "$T/a.out" || fail "weekly"
report weekly --week 2026-W47 --out "$T/b" --format csv,html > /dev/null || fail "weekly rerun"
[ -s "$T/a/watchpost-weekly-2026-W47.html" ] || fail "no HTML"
n=$(ls "$T/a" | wc -l)
[ "$n" -ge 19 ] || fail "expected the HTML and at least 18 CSV files, got $n"
diff -r "$T/a" "$T/b" || fail "rerun is not byte-identical"

log "HTML parses, self-contained"
cat > "$T/check_html.py" <<'PY'
import re
import sys
from html.parser import HTMLParser

VOID = {"meta", "br", "hr", "img", "link", "input"}

class Check(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.text = [], []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k.startswith("xmlns"):
                continue  # names, not loaded
            if k == "src" or (k.endswith("href") and not (v or "").startswith("#")) or \
                    (v and (re.search(r"url\((?!#)", v) or "http" in v)):
                sys.exit("external resource: %s=%s" % (k, v))
        if tag in ("script", "link", "img", "iframe"):
            sys.exit("unexpected <%s>" % tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            sys.exit("unbalanced </%s> at %s, open %s" % (tag, self.getpos(), self.stack[-3:]))
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

p = Check()
p.feed(open(sys.argv[1], encoding="utf-8").read())
p.close()
if p.stack:
    sys.exit("unclosed %s" % p.stack)
text = "".join(p.text)
for want in sys.argv[2:]:
    if want not in text:
        sys.exit("missing text: %r" % want)
PY
python3 "$T/check_html.py" "$T/a/watchpost-weekly-2026-W47.html" \
    "Watchpost weekly health report 2026-W47" \
    "8011 (pbx1) blocked 3 times" \
    "Host db1 unavailable for 60.0 min (availability 99.40 %)" \
    "SLA breached 4 times (response 3, resolve 1)" \
    "MTTA (time to acknowledge)" || fail "weekly HTML"

log "CSV: BOM, CRLF, columns"
cat > "$T/check_csv.py" <<'PY'
import csv, sys
path, header, row = sys.argv[1], sys.argv[2].split("|"), sys.argv[3].split("|")
raw = open(path, "rb").read()
if not raw.startswith(b"\xef\xbb\xbf"):
    sys.exit("%s: no BOM" % path)
if raw.replace(b"\r\n", b"").count(b"\n") != 0:
    sys.exit("%s: a line without CR" % path)
rows = list(csv.reader(open(path, encoding="utf-8-sig", newline="")))
if rows[0] != header:
    sys.exit("%s: header %s" % (path, rows[0]))
if row != [""] and row not in rows[1:]:
    sys.exit("%s: no row %s in %s" % (path, row, rows[1:]))
PY
W=$T/a/watchpost-weekly-2026-W47
python3 "$T/check_csv.py" "$W-findings.csv" "Finding|This period|Previous|Trend" \
    "8011 (pbx1) blocked 3 times|3|1|↑" || fail "findings.csv"
python3 "$T/check_csv.py" "$W-host_availability.csv" \
    "Host|Silences|Unplanned down (min)|Planned maintenance (min)|Availability (%)|Previous (%)|Trend" \
    "db1|1|60.0|0.0|99.40|99.70|↓" || fail "host_availability.csv"
python3 "$T/check_csv.py" "$W-response_times.csv" \
    "Measure|Incidents|Median (min)|p90 (min)|Previous median (min)|Previous p90 (min)" \
    "MTTR|5|120.0|1200.0|30.0|30.0" || fail "response_times.csv"
python3 "$T/check_csv.py" "$W-sla.csv" \
    "Priority|Response met|Response breached|Response pending|Resolve met|Resolve breached|Resolve pending" \
    "P2|2|0|0|1|1|0" || fail "sla.csv"
python3 "$T/check_csv.py" "$W-host_metrics.csv" \
    "Host|Metric|Average|p95|Peak|Previous average|Trend|Full in (days)" \
    "db1|CPU busy (%)|20.48|20.00|100.00|10.00|↑|" || fail "host_metrics.csv"
python3 "$T/check_csv.py" "$W-findings.csv" "Finding|This period|Previous|Trend" \
    "/u02 on db1 full in 2.3 days (trend of the period)|2.3|n/a|" || fail "forecast finding"
for f in "$T"/a/*.csv; do
    python3 "$T/check_csv.py" "$f" "$(head -1 "$f" | sed 's/^\xef\xbb\xbf//; s/\r$//; s/^"//; s/"$//; s/","/|/g')" "" \
        || fail "$f"
done

log "zh-CN"
report weekly --week 2026-W47 --out "$T/zh" --format html --lang zh-CN > /dev/null || fail "zh-CN"
python3 "$T/check_html.py" "$T/zh/watchpost-weekly-2026-W47.html" "8011（pbx1）阻塞 3 次" \
    "Watchpost 每周运行报告 2026-W47" || fail "zh-CN HTML"

log "monthly"
report monthly --month 2026-11 --out "$T/m" --format html,csv > /dev/null || fail "monthly"
python3 "$T/check_html.py" "$T/m/watchpost-monthly-2026-11.html" \
    "Watchpost monthly health report 2026-11" "8011 (pbx1) blocked 4 times" || fail "monthly HTML"

log "fault report"
report incident 4 --out "$T/i" --format html,csv > /dev/null || fail "incident 4"
python3 "$T/check_html.py" "$T/i/watchpost-incident-4.html" "Fault report: incident 4" \
    "capacity / disk_full" "Li Wei: archived logs cleaned" || fail "fault HTML"
python3 "$T/check_csv.py" "$T/i/watchpost-incident-4-timeline.csv" "Time|Event|By|Text" \
    "2026-11-19 10:50|resolved|Li Wei|archived logs cleaned" || fail "timeline.csv"

log "PDF"
if report weekly --week 2026-W47 --out "$T/p" --format pdf > /dev/null 2> "$T/pdf.err"; then
    report weekly --week 2026-W47 --out "$T/p2" --format pdf > /dev/null || fail "pdf rerun"
    cmp "$T/p/watchpost-weekly-2026-W47.pdf" "$T/p2/watchpost-weekly-2026-W47.pdf" \
        || fail "PDF rerun is not byte-identical"
    report incident 4 --out "$T/p" --format pdf --lang zh-CN > /dev/null || fail "fault PDF"
    if command -v pdftoppm > /dev/null; then
        for f in watchpost-weekly-2026-W47 watchpost-incident-4; do
            pdftoppm -r 30 -gray "$T/p/$f.pdf" "$T/p/$f" || fail "pdftoppm $f"
        done
        python3 - "$T/p" <<'PY' || fail "PDF pages"
import glob, sys
for prefix, least in (("watchpost-weekly-2026-W47", 4), ("watchpost-incident-4", 1)):
    pages = sorted(glob.glob("%s/%s-*.pgm" % (sys.argv[1], prefix)))
    if len(pages) < least:
        sys.exit("%s: %d pages, expected at least %d" % (prefix, len(pages), least))
    for p in pages:
        data = open(p, "rb").read()
        magic, w, h, maxval, pix = data.split(maxsplit=4)
        w, h = int(w), int(h)
        body = pix[-w * h:][: w * h * 9 // 10]  # above the footer
        if sum(1 for b in body if b < 200) < 50:
            sys.exit("%s: an empty page" % p)
PY
    else
        log "no pdftoppm: PDF pages not checked"
    fi
else
    grep -q "no PDF output" "$T/pdf.err" || fail "pdf: $(cat "$T/pdf.err")"
    log "this build has no PDF output; skipped"
fi

log "attendance"
AMAKE=$WP_BIN/tests/test_attendance
[ -x "$AMAKE" ] || fail "missing $AMAKE"
WP_ATT_MAKE=$T/att "$AMAKE" || fail "could not build the attendance state"
attend() { "$BIN_CLI" report attendance --state-dir "$T/att" --schedule "$T/att/attendance.yaml" "$@"; }
attend --week 2026-W47 --out "$T/aa" --format html,csv > /dev/null || fail "attendance"
attend --week 2026-W47 --out "$T/ab" --format csv,html > /dev/null || fail "attendance rerun"
diff -r "$T/aa" "$T/ab" || fail "attendance rerun is not byte-identical"
A=$T/aa/watchpost-attendance-2026-W47
python3 "$T/check_html.py" "$A.html" "Watchpost seat attendance report 2026-W47" \
    "present (make-up workday)" "8013 (pbx9), 9000 (pbx1)" || fail "attendance HTML"
python3 "$T/check_csv.py" "$A-seats.csv" \
    "Host|Seat|Scheduled days|Present|Absent|Late (times)|Late (min)|Early leave (times)|Early leave (min)|Holidays|Logged in (h)|Paused (h)" \
    "pbx1|8011|5|5|0|1|17|1|40|1|44.17|1.00" || fail "attendance seats.csv"
DAYS="Date|Day|Host|Seat|Shift|Scheduled|First login|Last logout|Logged in (h)|Paused (h)|Late (min)|Early leave (min)|Status"
python3 "$T/check_csv.py" "$A-days.csv" "$DAYS" \
    "2026-11-17|Tue|pbx1|8011|day|08:30-17:30|08:47|17:30|8.72|0.00|17|0|late" || fail "late 17"
python3 "$T/check_csv.py" "$A-days.csv" "$DAYS" \
    "2026-11-19|Thu|pbx1|8011|day|08:30-17:30|08:25|16:50|8.42|0.00|0|40|early leave" \
    || fail "early leave"
python3 "$T/check_csv.py" "$A-days.csv" "$DAYS" \
    "2026-11-18|Wed|pbx1|8012|day|08:30-17:30|||0.00|0.00|||holiday" || fail "holiday"
python3 "$T/check_csv.py" "$A-days.csv" "$DAYS" \
    "2026-11-20|Fri|pbx1|8012|day|08:30-17:30|||0.00|0.00|||absent" || fail "absent"
attend --week 2026-W47 --out "$T/az" --format html,csv --lang zh-CN > /dev/null || fail "zh-CN"
python3 "$T/check_html.py" "$T/az/watchpost-attendance-2026-W47.html" \
    "Watchpost 座席考勤报告 2026-W47" "出勤（调休上班）" || fail "attendance zh-CN HTML"
python3 "$T/check_csv.py" "$T/az/watchpost-attendance-2026-W47-seats.csv" \
    "主机|座席|应出勤天数|出勤天数|缺勤天数|迟到次数|迟到（分钟）|早退次数|早退（分钟）|节假日天数|登录时长（小时）|暂停时长（小时）" \
    "pbx1|8020|5|0|5|0|0|0|0|1|0.00|0.00" || fail "attendance zh-CN seats.csv"
if attend --week 2026-W47 --out "$T/ap" --format pdf > /dev/null 2>&1; then
    attend --week 2026-W47 --out "$T/ap2" --format pdf > /dev/null || fail "attendance pdf rerun"
    cmp "$A.html" "$T/ab/watchpost-attendance-2026-W47.html" > /dev/null || fail "html changed"
    cmp "$T/ap/watchpost-attendance-2026-W47.pdf" "$T/ap2/watchpost-attendance-2026-W47.pdf" \
        || fail "attendance PDF rerun is not byte-identical"
fi
printf 'shifts:\n  - name: night\n    seats: "8*"\n    days: mon-fri\n    start: "22:00"\n    end: "06:00"\n' \
    > "$T/night.yaml"
"$BIN_CLI" report attendance --state-dir "$T/att" --schedule "$T/night.yaml" --week 2026-W47 \
    --out "$T/an" --format csv > /dev/null || fail "an overnight shift"
python3 "$T/check_csv.py" "$T/an/watchpost-attendance-2026-W47-days.csv" "$DAYS" \
    "2026-11-16|Mon|pbx1|8011|night|22:00-06:00 (+1)|||9.00|1.00|||absent" || fail "overnight"
printf 'shifts:\n  - name: night\n    seats: "8*"\n    days: mon-fri\n    start: "22:00"\n    end: "22:00"\n' \
    > "$T/night.yaml"
set +e
"$BIN_CLI" report attendance --state-dir "$T/att" --schedule "$T/night.yaml" --out "$T/x" \
    > /dev/null 2> "$T/night.err"
[ $? -eq 2 ] || fail "a shift ending when it starts should be refused"
grep -q "night.yaml:6:10: shifts\[0\].end: 22:00 is the same time as start 22:00" \
    "$T/night.err" || fail "same-time message: $(cat "$T/night.err")"
"$BIN_CLI" report attendance --state-dir "$T/att" --out "$T/x" > /dev/null 2>&1
[ $? -eq 2 ] || fail "attendance without --schedule"
report incident 4 --schedule "$T/att/attendance.yaml" --out "$T/x" > /dev/null 2>&1
[ $? -eq 2 ] || fail "--schedule with incident"
report inspection --schedule "$T/att/attendance.yaml" --out "$T/x" > /dev/null 2>&1
[ $? -eq 2 ] || fail "--schedule with inspection"
report weekly --week 2026-W47 --schedule "$T/night.yaml" --out "$T/x" > /dev/null 2> "$T/wn.err"
[ $? -eq 2 ] || fail "weekly with a schedule that does not parse"
grep -q "night.yaml:6:10: shifts\[0\].end" "$T/wn.err" || fail "weekly schedule: $(cat "$T/wn.err")"
attend --week 2026-W47 --month 2026-11 --out "$T/x" > /dev/null 2>&1
[ $? -eq 2 ] || fail "--week and --month together"
set -e

log "weekly and monthly with --schedule: seat attendance in the telephony section"
health() { "$BIN_CLI" report "$@" --state-dir "$T/att" --format html,csv; }
health weekly --week 2026-W47 --out "$T/w0" > /dev/null || fail "weekly on the attendance state"
[ ! -e "$T/w0/watchpost-weekly-2026-W47-seat_attendance.csv" ] || fail "attendance without --schedule"
health weekly --week 2026-W47 --schedule "$T/att/attendance.yaml" --out "$T/wa" > /dev/null \
    || fail "weekly --schedule"
health weekly --week 2026-W47 --schedule "$T/att/attendance.yaml" --out "$T/wb" > /dev/null \
    || fail "weekly --schedule rerun"
diff -r "$T/wa" "$T/wb" || fail "weekly --schedule rerun is not byte-identical"
[ "$(ls "$T/wa" | wc -l)" -eq "$(($(ls "$T/w0" | wc -l) + 1))" ] || fail "expected one more CSV"
WA=$T/wa/watchpost-weekly-2026-W47
python3 "$T/check_html.py" "$WA.html" "Seat attendance" \
    "8012 (pbx1) absent 3 days (of 5 working days)" || fail "weekly --schedule HTML"
ACOLS="Host|Seat|Shift|Working days|Logged in (h)|Late (times)|Late (min)|Early leave (times)|Early leave (min)|Absent (days)|Late, previous (times)|Absent, previous (days)"
python3 "$T/check_csv.py" "$WA-seat_attendance.csv" "$ACOLS" \
    "pbx1|8011|day|5|44.17|1|17|1|40|0|n/a|n/a" || fail "seat_attendance.csv: 8011"
python3 "$T/check_csv.py" "$WA-seat_attendance.csv" "$ACOLS" \
    "pbx1|8020|day|5|0.00|0|0|0|0|5|0|5" || fail "seat_attendance.csv: 8020"
python3 "$T/check_csv.py" "$WA-findings.csv" "Finding|This period|Previous|Trend" \
    "8020 (pbx1) absent 5 days (of 5 working days)|5|5|→" || fail "attendance finding"
health weekly --week 2026-W47 --schedule "$T/att/attendance.yaml" --lang zh-CN --out "$T/wz" \
    > /dev/null || fail "weekly --schedule zh-CN"
python3 "$T/check_csv.py" "$T/wz/watchpost-weekly-2026-W47-seat_attendance.csv" \
    "主机|座席|班次|应出勤天数|登录时长（小时）|迟到次数|迟到（分钟）|早退次数|早退（分钟）|缺勤天数|上期迟到次数|上期缺勤天数" \
    "pbx1|8011|day|5|44.17|1|17|1|40|0|n/a|n/a" || fail "seat_attendance.csv zh-CN"
python3 "$T/check_html.py" "$T/wz/watchpost-weekly-2026-W47.html" "座席考勤" \
    "8012（pbx1）缺勤 3 天（应出勤 5 天）" || fail "weekly --schedule zh-CN HTML"
health monthly --month 2026-11 --schedule "$T/att/attendance.yaml" --out "$T/ma" > /dev/null \
    || fail "monthly --schedule"
python3 "$T/check_csv.py" "$T/ma/watchpost-monthly-2026-11-seat_attendance.csv" "$ACOLS" "" \
    || fail "monthly seat_attendance.csv"
if "$BIN_CLI" report weekly --week 2026-W47 --state-dir "$T/att" \
    --schedule "$T/att/attendance.yaml" --out "$T/wp" --format pdf > /dev/null 2>&1; then
    [ -s "$T/wp/watchpost-weekly-2026-W47.pdf" ] || fail "weekly --schedule PDF"
fi
# the scheduled weekly report with schedule: (a path relative to collector.yaml) makes the
# same bytes as the command
mkdir -p "$T/sched"
cp "$T/att/attendance.yaml" "$T/sched/shifts.yaml"
printf '%s\n' "listen: 127.0.0.1:0" "state_dir: $T/att" "tls:" "  ca: $T/sched/ca.crt" \
    "  cert: $T/sched/c.crt" "  key: $T/sched/c.key" "reports:" "  formats: [html, csv]" \
    "  archive_dir: $T/sched/archive" "  kinds:" "    - {kind: weekly, schedule: shifts.yaml}" \
    > "$T/sched/collector.yaml"
"$BIN_COLL" --report-job weekly --period 2026-W47 --no-mail -c "$T/sched/collector.yaml" \
    > "$T/sched/job.log" 2>&1 || fail "report job: $(cat "$T/sched/job.log")"
cmp "$T/sched/archive/weekly/2026-W47/report.html" "$WA.html" || fail "scheduled weekly differs"
cmp "$T/sched/archive/weekly/2026-W47/report-seat_attendance.csv" "$WA-seat_attendance.csv" \
    || fail "scheduled seat_attendance.csv differs"
# `report weekly|attendance -c` take schedule: of their kind (the same bytes as --schedule);
# the monthly kind has none, so neither has `report monthly -c`; --schedule still wins
rcfg() { "$BIN_CLI" report "$@" --format html,csv; }
rcfg weekly --week 2026-W47 -c "$T/sched/collector.yaml" --out "$T/wc" > /dev/null ||
    fail "report weekly -c"
diff -r "$T/wa" "$T/wc" || fail "report weekly -c differs from --schedule"
rcfg monthly --month 2026-11 -c "$T/sched/collector.yaml" --out "$T/mc" > /dev/null ||
    fail "report monthly -c"
[ ! -e "$T/mc/watchpost-monthly-2026-11-seat_attendance.csv" ] ||
    fail "report monthly -c took the weekly kind's schedule"
sed 's/{kind: weekly, schedule: shifts.yaml}/{kind: attendance, schedule: shifts.yaml}/' \
    "$T/sched/collector.yaml" > "$T/sched/att.yaml"
grep -q "kind: attendance" "$T/sched/att.yaml" || fail "no attendance kind in att.yaml"
rcfg attendance --week 2026-W47 -c "$T/sched/att.yaml" --out "$T/ac" > /dev/null ||
    fail "report attendance -c"
diff -r "$T/aa" "$T/ac" || fail "report attendance -c differs from --schedule"
set +e
rcfg weekly --week 2026-W47 -c "$T/sched/collector.yaml" --schedule "$T/night.yaml" \
    --out "$T/x" > /dev/null 2> "$T/wc.err"
[ $? -eq 2 ] || fail "-c with a --schedule that does not parse"
grep -q "night.yaml:6:10: shifts\[0\].end" "$T/wc.err" || fail "--schedule lost to schedule:"
set -e

log "daily inspection"
IMAKE=$WP_BIN/tests/test_report_inspect
[ -x "$IMAKE" ] || fail "missing $IMAKE"
WP_INSPECT_MAKE=$T/insp "$IMAKE" || fail "could not build the inspection state"
inspect() { "$BIN_CLI" report inspection --state-dir "$T/insp" --date 2026-11-30 "$@"; }
inspect --out "$T/ia" --format html,csv > /dev/null || fail "inspection"
inspect --out "$T/ib" --format csv,html > /dev/null || fail "inspection rerun"
diff -r "$T/ia" "$T/ib" || fail "inspection rerun is not byte-identical"
I=$T/ia/watchpost-inspection-2026-11-30
[ "$(ls "$T/ia" | wc -l)" -eq 2 ] || fail "expected one HTML and one CSV: $(ls "$T/ia")"
python3 "$T/check_html.py" "$I.html" "Watchpost daily inspection 2026-11-30 08:30" \
    "2. Failed items" "93.0 % used (limit 90 %)" "8011 blocked for 2 h 10 min" \
    "answered in 3.2 s" "#1 ora_pmon down on db1" || fail "inspection HTML"
ICOLS="Host|Item|Status|Evidence|Open incidents"
python3 "$T/check_csv.py" "$I-items.csv" "$ICOLS" \
    "db1|Disk space /u01|FAIL|93.0 % used (limit 90 %)|#3 Disk /u01 on db1 is 93% full" \
    || fail "inspection items.csv: disk"
python3 "$T/check_csv.py" "$I-items.csv" "$ICOLS" \
    "web1|TCP port app|FAIL|no result since 2026-11-30 07:50 (last: OK: TCP OK: 10.0.0.5:8080 in 1 ms)|" \
    || fail "inspection items.csv: stale check"
inspect --out "$T/iz" --format html,csv --lang zh-CN > /dev/null || fail "inspection zh-CN"
python3 "$T/check_html.py" "$T/iz/watchpost-inspection-2026-11-30.html" \
    "Watchpost 每日巡检 2026-11-30 08:30" "磁盘空间 /u01" "不通过" || fail "inspection zh-CN HTML"
python3 "$T/check_csv.py" "$T/iz/watchpost-inspection-2026-11-30-items.csv" \
    "主机|检查项|结果|依据|未关闭事件" "" || fail "inspection zh-CN CSV"
inspect --time 09:00 --limits disk=95 --out "$T/it" --format csv > /dev/null || fail "--time"
python3 "$T/check_csv.py" "$T/it/watchpost-inspection-2026-11-30-0900-items.csv" "$ICOLS" \
    "db1|Disk space /u01|PASS|93.0 % used (above 85 %, limit 95 %)|" || fail "--limits disk=95"
# limits: of the inspection kind in collector.yaml: the scheduled job and `report inspection
# -c` use them (the same bytes as --limits disk=95); --limits still wins
printf '%s\n' "listen: 127.0.0.1:0" "state_dir: $T/insp" "tls:" "  ca: $T/sched/ca.crt" \
    "  cert: $T/sched/c.crt" "  key: $T/sched/c.key" "reports:" "  formats: [csv]" \
    "  archive_dir: $T/insp-archive" "  kinds:" \
    "    - {kind: inspection, at: '09:00', limits: {disk: 95}}" > "$T/insp.yaml"
IT=$T/it/watchpost-inspection-2026-11-30-0900-items.csv
"$BIN_COLL" --report-job inspection --period 2026-11-30-0900 --no-mail -c "$T/insp.yaml" \
    > "$T/insp-job.log" 2>&1 || fail "inspection job: $(cat "$T/insp-job.log")"
cmp "$T/insp-archive/inspection/2026-11-30-0900/report-items.csv" "$IT" ||
    fail "the scheduled inspection does not use limits:"
icfg() { "$BIN_CLI" report inspection -c "$T/insp.yaml" --date 2026-11-30 --time 09:00 "$@"; }
icfg --out "$T/icf" --format csv > /dev/null || fail "report inspection -c"
cmp "$T/icf/watchpost-inspection-2026-11-30-0900-items.csv" "$IT" ||
    fail "report inspection -c does not use limits:"
icfg --limits disk=90 --out "$T/icl" --format csv > /dev/null || fail "-c with --limits"
python3 "$T/check_csv.py" "$T/icl/watchpost-inspection-2026-11-30-0900-items.csv" "$ICOLS" \
    "db1|Disk space /u01|FAIL|93.0 % used (limit 90 %)|#3 Disk /u01 on db1 is 93% full" \
    || fail "--limits does not override limits:"
if inspect --out "$T/ip" --format pdf > /dev/null 2>&1; then
    inspect --out "$T/ip2" --format pdf --lang en > /dev/null || fail "inspection pdf rerun"
    cmp "$T/ip/watchpost-inspection-2026-11-30.pdf" "$T/ip2/watchpost-inspection-2026-11-30.pdf" \
        || fail "inspection PDF rerun is not byte-identical"
    if command -v pdftoppm > /dev/null; then
        pdftoppm -r 30 -gray "$T/ip/watchpost-inspection-2026-11-30.pdf" "$T/ip/pg" \
            || fail "pdftoppm inspection"
        [ "$(ls "$T"/ip/pg-*.pgm | wc -l)" -ge 2 ] || fail "inspection PDF: fewer than 2 pages"
    fi
fi
set +e
inspect --date 2026-02-30 --out "$T/x" > /dev/null 2>&1; [ $? -eq 2 ] || fail "bad --date"
inspect --limits disk=101 --out "$T/x" > /dev/null 2>&1; [ $? -eq 2 ] || fail "bad --limits"
report weekly --date 2026-11-30 --out "$T/x" > /dev/null 2>&1; [ $? -eq 2 ] || fail "--date with weekly"
set -e

log "errors"
set +e
report incident 999 --out "$T/i" > /dev/null 2>&1; [ $? -eq 1 ] || fail "incident 999 should fail"
report weekly --week 2026-W99 --out "$T/x" > /dev/null 2>&1; [ $? -eq 2 ] || fail "bad week"
report weekly --out "$T/x" --format doc > /dev/null 2>&1; [ $? -eq 2 ] || fail "unknown format"
report monthly --week 2026-W47 > /dev/null 2>&1; [ $? -eq 2 ] || fail "--week with monthly"
set -e
log "PASS"
