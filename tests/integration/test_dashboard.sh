#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The NOC dashboard end to end in a real headless Chromium (Debian's `chromium`, driven over
# the DevTools protocol on --remote-debugging-pipe by tests/integration/browser.py, standard
# library only). A real collector serves dashboards/ over HTTP on 127.0.0.1:0, a real agent
# streams selftest values and a PBX line table (the DevLink fixture: 8006 blocked); users are
# made with `watchpost user add`. In the browser: log in as operator, see the agent's host
# tile on the Overview and its Host page (latest values, a graph image loads, its proc check
# and process); a line change reaches the telephony wall through the event stream ("lines"),
# and the Overview's line summary too (its polls of /api/v1/lines answered with stale lines);
# the agent is killed so host_silent opens, and the incident must show up
# on the open Overview within 3 s of opening without a reload (the event stream); acknowledge
# it on the Incidents page (checked with `watchpost incidents`); the telephony wall highlights
# the blocked line; a dead letter is retried from the Outbox page; switching to zh-CN shows
# Chinese labels, kept per user; a viewer gets no action buttons; no console errors.
# Screenshots of every page go to $T/screens (and to $WP_ARTIFACTS/dashboard when set;
# WP_ARTIFACTS=1 means $WP_BIN/test-artifacts).
# the Host page draws graphs: librrd's known rrd_graph_v leaks are only recognised (and
# suppressed, collector/http_graph.c) with the slow unwinder
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:fast_unwind_on_malloc=0}
. "$(dirname "$0")/lib.sh"

chromium_require

ca_init
issue pbx1
cp "$WP_SRC/tests/fixtures/telephony/devlink-lines.txt" "$T/lines.txt"
# host_silent with a runbook
rules_config - <<'YAML'
    runbook: |
      1. Check that the host is up (ping, console).
      2. systemctl status watchpost-agent
YAML
mkdir -p "$T/state" "$T/screens" "$T/recv"
user_add vera viewer viewer-pass-1
user_add otto operator operator-pass-1

# a webhook that refuses (400) until told otherwise: the notification becomes a dead letter
# that the operator retries from the Outbox page
touch "$T/recv/bad_400"
start_recv
collector_config "incidents:" "  rules: [$T/rules.yaml]" "  reopen_window: 0s" \
    "notify:" \
    "  domain: noc.test" \
    "  backoff_min: 300ms" \
    "  destinations:" \
    "    - name: desk" \
    "      kind: webhook" \
    "      url: 'http://127.0.0.1:$RP/bad'" \
    "      requests:" \
    "        open: {body: '{\"event\": {event}, \"id\": {id}}'}" \
    "        update: {body: '{\"event\": {event}, \"id\": {id}}'}" \
    "  routes:" \
    "    - {to: [desk]}" \
    "http:" \
    "  listen: 127.0.0.1:0" \
    "  static_dir: $WP_SRC/dashboards" \
    "  sse_ping: 1s"
start_collector_http
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 1, fields: 1}
  - {kind: proc, interval: 1s, match: [{name: agent, comm: watchpost-agent, cmdline: '$T/pbx1.yaml', min: 1}]}
  - {kind: linetable, name: devlink, interval: 1s, file: $T/lines.txt, group: hotline}"
agent_config pbx1
start_agent pbx1
wait_for 20 "the agent streams" grep -q "agent connected" "$T/collector.log"
lines_in() { cli lines 2>/dev/null | grep -q '8006 *blocked'; }
wait_for 30 "line 8006 stored as blocked" lines_in
proc_in() {
    python3 - "$T/state/events.db" <<'PYQ'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
sys.exit(0 if c.execute("SELECT COUNT(*) FROM checks WHERE name = 'proc_agent'").fetchone()[0] else 1)
PYQ
}
wait_for 30 "the proc check stored in events.db" proc_in

log "dashboard at http://127.0.0.1:$HP/"
rc=0
WP_SRC=$WP_SRC python3 - "http://127.0.0.1:$HP" "$T/screens" "${PIDS[pbx1]}" "$BIN_CLI" "$T/state" "$T/recv" \
    > "$T/browser.log" 2>&1 <<'PY' &
import json, os, signal, subprocess, sys, time
sys.path.insert(0, os.path.join(os.environ["WP_SRC"], "tests", "integration"))
from browser import Dashboard, check, log

base, out, agent_pid, cli, state, recv = sys.argv[1:7]
agent_pid = int(agent_pid)


def incidents(status):
    return subprocess.run([cli, "incidents", "list", "--state-dir", state, "--status", status,
                           "--format", "csv"], capture_output=True, text=True, check=True).stdout


J = json.dumps
with Dashboard(out) as b:
    b.open(base)
    b.screenshot("01-login.png")
    b.login("otto", "operator-pass-1")
    b.wait("document.querySelector('.tile[data-host=pbx1][data-state=ok]')",
           what="the pbx1 tile (connected, OK)")
    b.wait("document.querySelector('#live.on') && wpDash.sseHellos >= 1", what="the event stream")
    b.wait("document.querySelector('.line-count.ls-blocked')", what="the line summary")
    b.screenshot("02-overview.png")
    log("overview shows pbx1, event stream live")

    # the Host page from its tile: latest values and a graph image that loaded
    b.click(".tile[data-host=pbx1]")
    b.wait("document.querySelector('#page').dataset.page === 'host' &&"
           " document.querySelector('.host-head[data-host=pbx1]')", what="the pbx1 Host page")
    b.wait("document.querySelector('tr[data-metric=\"selftest.v0\"]') &&"
           " document.querySelector('figure.graph img')", timeout=30, what="values and a graph")
    b.wait("[...document.querySelectorAll('figure.graph img')].every(i => i.complete) &&"
           " document.querySelector('figure.graph img').naturalWidth > 0",
           timeout=20, what="the graph image loaded")
    b.click(".ranges button[data-range='7d']")
    b.wait("[...document.querySelectorAll('figure.graph img')].every(i =>"
           " i.src.includes('range=7d') && i.complete && i.naturalWidth > 0)",
           timeout=20, what="every 7d graph loaded")
    b.click(".ranges button[data-range='1h']")
    b.wait("[...document.querySelectorAll('figure.graph img')].every(i =>"
           " i.src.includes('range=1h') && i.complete && i.naturalWidth > 0)",
           timeout=20, what="every 1h graph loaded")
    # its checks and processes (the proc probe watches the agent itself; stored before the
    # browser started)
    b.wait("document.querySelector('.host-checks tr[data-check=proc_agent][data-status=ok] .chk-ok')"
           " && document.querySelector('.host-procs tr[data-proc=agent] td.num').textContent === '1'"
           " && document.querySelector('.host-logs')", timeout=10, what="checks and processes")
    b.screenshot("02b-host.png")
    log("host page: values and graph (%d px wide)"
        % b.eval("document.querySelector('figure.graph img').naturalWidth"))

    # the Telephony wall follows a line change through the event stream ("lines" events),
    # not its poll (every 30 s while the stream is live): 8003 goes from busy to idle
    b.nav("telephony")
    b.wait("document.querySelector('.cell[data-line=\"8003\"][data-state=busy]')", what="8003 busy")
    lines_txt = os.path.join(os.path.dirname(state), "lines.txt")
    with open(lines_txt) as f:
        txt = f.read()
    busy = "15\t8003\t8003\tY\tExtension\tBusy\tBusy\t1\t"
    check(busy in txt, "the fixture has no busy 8003")
    with open(lines_txt + ".tmp", "w") as f:
        f.write(txt.replace(busy, "15\t8003\t8003\tY\tExtension\tIdle\tIdle\t0\t"))
    os.replace(lines_txt + ".tmp", lines_txt)
    t_line = time.time()
    b.wait("document.querySelector('.cell[data-line=\"8003\"][data-state=idle]') && wpDash.sseLines >= 1",
           timeout=10, what="8003 idle on the wall from the event stream")
    log("telephony wall: line change shown %.1f s after it was written" % (time.time() - t_line))
    b.nav("overview")
    b.wait("document.querySelector('.tile[data-host=pbx1][data-state=ok]')", what="the Overview again")

    # the Overview's line summary follows the stream too: from now on the page's requests for
    # /api/v1/lines get the lines as they are now (8003 idle), so only a "lines" event can
    # show 8003 busy again; a MutationObserver records every busy count the page draws
    stale = b.eval("fetch('/api/v1/lines').then(r => r.text())")
    check('"8003"' in stale, "no 8003 in /api/v1/lines")
    busy_js = ("(() => { const e = document.querySelector('.line-count.ls-busy .num');"
               " return e ? Number(e.textContent) : 0; })()")
    busy0 = b.eval(busy_js)
    b.eval("""(() => {
        const stale = %s, real = window.fetch;
        window.__realFetch = real;
        window.fetch = (u, o) => String(u).startsWith('/api/v1/lines')
            ? Promise.resolve(new Response(stale, {status: 200,
                                                   headers: {'Content-Type': 'application/json'}}))
            : real(u, o);
        window.__busySeen = [];
        window.__obs = new MutationObserver(() => window.__busySeen.push(%s));
        window.__obs.observe(document.querySelector('#page'), {childList: true, subtree: true});
        return true;
    })()""" % (J(stale), busy_js))
    sse0 = b.eval("wpDash.sseLines")
    with open(lines_txt + ".tmp", "w") as f:
        f.write(txt)
    os.replace(lines_txt + ".tmp", lines_txt)
    t_line = time.time()
    b.wait("window.__busySeen.includes(%d) && wpDash.sseLines > %d" % (busy0 + 1, sse0),
           timeout=10, what="8003 busy in the Overview's line summary from the event stream")
    log("overview: line summary updated %.1f s after the change, busy %d -> %d"
        % (time.time() - t_line, busy0, busy0 + 1))
    b.eval("window.__obs.disconnect(); window.fetch = window.__realFetch; true")

    # the agent dies: host_silent opens; the open Overview must show it without reload
    b.eval("window.__noReload = 42")
    os.kill(agent_pid, signal.SIGKILL)
    log("agent killed")
    sel = "#ov-incidents [data-incident-id]"
    iid = b.wait("(() => { const e = document.querySelector(%s);"
                 " return e ? Number(e.dataset.incidentId) : 0; })()" % J(sel),
                 timeout=20, interval=0.05, what="the incident on the Overview")
    seen_ms = time.time() * 1000
    inc = b.eval("fetch('/api/v1/incidents/%d').then(r => r.json())" % iid)
    delay = seen_ms - inc["opened_ms"]
    log("incident %d (%s) on the Overview %.0f ms after it opened" % (iid, inc["rule"], delay))
    check(inc["rule"] == "host_silent", "the incident is %s" % inc["rule"])
    check(delay <= 3000, "the incident appeared %.0f ms after opening (limit 3000)" % delay)
    check(b.eval("window.__noReload") == 42, "the page was reloaded")
    check(b.eval("wpDash.sseEvents") >= 1, "no event came through the event stream")
    b.wait("document.querySelector('.tile[data-host=pbx1][data-state=p1]')",
           what="the pbx1 tile turned P1")
    b.wait("document.querySelector('.count-card.p1 .count-num').textContent === '1'",
           what="P1 count 1")
    b.screenshot("03-overview-incident.png")

    # Incidents: list, detail, acknowledge as operator
    b.nav("incidents")
    b.wait("document.querySelector('tr[data-incident-id=\"%d\"]')" % iid, what="the incident row")
    b.screenshot("04-incidents.png")
    b.click("tr[data-incident-id=\"%d\"] a" % iid)
    b.wait("document.querySelector('.detail[data-incident-id=\"%d\"] [data-action=ack]')" % iid,
           what="the ack button")
    check(b.eval("!!document.querySelector('.runbook') &&"
                 " document.querySelector('.runbook').textContent.includes('systemctl')"),
          "the runbook is not shown")
    check(b.eval("document.querySelectorAll('.timeline li').length") >= 1, "empty timeline")
    b.type("#inc-note", "on it (from the browser)")
    b.click("[data-action=ack]")
    b.wait("document.querySelector('.detail[data-status=acknowledged]')", what="acknowledged")
    b.wait("[...document.querySelectorAll('.timeline li')].some(l => l.textContent.includes('otto'))",
           what="the ack on the timeline")
    b.screenshot("05-incident-acked.png")
    csv = incidents("acknowledged")
    check("host_silent" in csv or "sends nothing" in csv,
          "not acknowledged in watchpost incidents list: " + csv)
    show = subprocess.run([cli, "incidents", "show", str(iid), "--state-dir", state],
                          capture_output=True, text=True).stdout
    check("otto" in csv or "otto" in show, "acked_by otto not shown by the CLI: " + show)
    log("acknowledged through the browser; watchpost incidents agrees")

    # Telephony wall
    b.nav("telephony")
    b.wait("document.querySelector('.cell[data-line=\"8006\"].problem')", what="8006 highlighted")
    check(b.eval("document.querySelectorAll('.cell').length") >= 10, "too few line cells")
    check(b.eval("!!document.querySelector('.cell[data-line=\"8004\"][data-state=out_of_service].problem')"),
          "8004 out_of_service not highlighted")
    check(not b.eval("document.querySelector('.cell[data-line=\"8001\"]').classList.contains('problem')"),
          "an idle line is highlighted")
    b.screenshot("06-telephony.png")

    # Outbox: the dead letter, retried by the operator once the receiver accepts again
    b.nav("outbox")
    dead = "document.querySelector('tr[data-msg-id] [data-action=retry]')"
    for _ in range(40):
        if b.eval("!!" + dead):
            break
        time.sleep(0.5)
        b.select("#ob-state", "dead")  # reload the list
    b.wait(dead, what="a dead letter with a retry button")
    b.screenshot("07-outbox.png")
    os.unlink(os.path.join(recv, "bad_400"))
    b.click("tr[data-msg-id] [data-action=retry]")
    b.wait("document.querySelector('.ok-msg')", what="the retry confirmation")
    log("dead letter retried")

    # language: zh-CN, applied without reload, kept for this user
    b.nav("overview")
    b.select("#lang", "zh-CN")
    b.wait("document.querySelector('nav a[data-page=overview]').textContent === '总览'",
           what="Chinese navigation")
    b.wait("document.querySelector('.hosts-panel h2').textContent.startsWith('主机')",
           what="Chinese page labels")
    check(b.eval("window.__noReload") == 42, "the language switch reloaded the page")
    check(b.eval("localStorage.getItem('wp.lang.otto')") == "zh-CN", "language not stored")
    b.screenshot("08-overview-zh.png")
    b.nav("incidents")
    b.wait("document.querySelector('table.incidents th') &&"
           " document.querySelector('#f-status option').textContent === '活动'",
           what="Chinese incident filters")
    b.screenshot("09-incidents-zh.png")
    log("zh-CN applied")

    # a viewer: no action buttons anywhere
    b.click("#logout")
    b.login("vera", "viewer-pass-1")
    b.select("#lang", "en")
    b.eval("location.hash = '#/incidents/%d'" % iid)
    b.wait("document.querySelector('.detail[data-incident-id=\"%d\"]') &&"
           " document.querySelector('#viewer-note')" % iid, what="the detail as viewer")
    check(b.eval("document.querySelectorAll('[data-action]').length") == 0,
          "a viewer sees action buttons")
    b.screenshot("10-incident-viewer.png")
    b.nav("outbox")
    b.select("#ob-state", "sent")
    b.wait("document.querySelector('tr[data-msg-id]')", what="sent messages as viewer")
    check(b.eval("document.querySelectorAll('[data-action]').length") == 0,
          "a viewer sees a retry button")
    # the operator's language is still Chinese (per user)
    b.click("#logout")
    b.login("otto", "operator-pass-1")
    b.wait("document.documentElement.lang === 'zh-CN'", what="otto's language restored")
    log("viewer has no buttons; language kept per user")

    # the collector restarts (the test script does it when asked): the event stream comes back
    # by itself on the same page, and the data is reloaded
    hellos = b.eval("wpDash.sseHellos")
    nerr = len(b.errors)
    open(os.path.join(out, "restart.req"), "w").close()
    for _ in range(300):
        if os.path.exists(os.path.join(out, "restart.done")):
            break
        time.sleep(0.1)
    check(os.path.exists(os.path.join(out, "restart.done")), "the collector was not restarted")
    t_up = time.time()
    b.wait("wpDash.sseHellos > %d && document.querySelector('#live.on')" % hellos, timeout=15,
           what="the event stream back after the restart")
    log("event stream reconnected %.1f s after the collector came back" % (time.time() - t_up))
    check(b.eval("window.__noReload") == 42, "the page was reloaded")
    # while the collector was down, refused connections are logged by the browser itself
    during = b.errors[nerr:]
    del b.errors[nerr:]
    check(all(e.startswith(("network:", "log[network]")) for e in during),
          "errors during the restart: %s" % during)
    b.nav("overview")
    b.wait("document.querySelector('.tile[data-host=pbx1][data-state=p1]')",
           what="the Overview after the restart")
    b.screenshot("11-overview-after-restart.png")

    check(not b.errors, "browser console errors: %s" % b.errors)
    log("no console errors (%d console lines)" % len(b.console))
log("ok")
PY
BPID=$!
PIDS[browser]=$BPID
# the scenario asks for a collector restart half-way (same HTTP port, so the page's origin
# stays; sessions live in users.db): SIGTERM must end it cleanly, then it starts again
for _ in $(seq 1 600); do
    [ -e "$T/screens/restart.req" ] && break
    kill -0 "$BPID" 2>/dev/null || break
    sleep 0.2
done
if [ -e "$T/screens/restart.req" ]; then
    stop collector
    sed -i "s/^  listen: 127.0.0.1:0\$/  listen: 127.0.0.1:$HP/" "$T/collector.yaml"
    grep -q "^  listen: 127.0.0.1:$HP\$" "$T/collector.yaml" || fail "could not pin the HTTP port"
    start_collector_http
    [ "$HP" = "$(sed -n 's/^  listen: 127.0.0.1://p' "$T/collector.yaml")" ] ||
        fail "the HTTP port changed in the restart"
    touch "$T/screens/restart.done"
    log "collector restarted on the same HTTP port"
fi
wait "$BPID" || rc=$?
unset 'PIDS[browser]'
cat "$T/browser.log"
# the agent was killed by the browser script
if [ -n "${PIDS[pbx1]:-}" ]; then
    kill -KILL "${PIDS[pbx1]}" 2>/dev/null || true
    wait "${PIDS[pbx1]}" 2>/dev/null || true
    unset 'PIDS[pbx1]'
fi
if [ -n "${WP_ARTIFACTS:-}" ]; then
    dest=$WP_ARTIFACTS
    [ "$dest" != 1 ] || dest=$WP_BIN/test-artifacts
    mkdir -p "$dest/dashboard"
    cp "$T"/screens/*.png "$dest/dashboard/" 2>/dev/null || true
    log "screenshots copied to $dest/dashboard"
fi
[ "$rc" -eq 0 ] || { WP_KEEP=1; fail "browser scenario failed (screenshots in $T/screens)"; }
ls "$T/screens"/*.png > /dev/null || fail "no screenshots"
stop collector
kill "${PIDS[recv]}" 2>/dev/null || true
wait "${PIDS[recv]}" 2>/dev/null || true
unset 'PIDS[recv]'
log "ok"
