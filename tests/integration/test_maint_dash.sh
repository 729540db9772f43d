#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The dashboard's Maintenance page in a real headless Chromium (tests/integration/browser.py):
# a real collector serves dashboards/ over HTTP on 127.0.0.1:0 with a rules config that has a
# host group and a weekly window; a real agent (host db-1) streams. The operator sees the
# config's window (read-only), creates a window by ticking db-1 (checked with `watchpost
# maintenance list`), gets the server's error for a window over 31 days, ends the window with
# End now; the page in zh-CN shows Chinese labels; a viewer sees the lists but no form and no
# End button; no console errors. Screenshots go to $T/screens.
. "$(dirname "$0")/lib.sh"

chromium_require

ca_init
issue agent1
cat > "$T/rules.yaml" <<'YAML'
groups:
  dbs: ["db-*"]
maintenance:
  - name: Sunday backup
    groups: [dbs]
    weekly: {days: [sun], from: "03:00", to: "04:00"}
rules:
  - name: host_silent
    nodata: 30s
YAML
mkdir -p "$T/state" "$T/screens"
user_add vera viewer viewer-pass-1
user_add otto operator operator-pass-1
collector_config "incidents:" "  rules: [$T/rules.yaml]" \
    "http:" \
    "  listen: 127.0.0.1:0" \
    "  static_dir: $WP_SRC/dashboards"
start_collector_http
AGENT_PROBES="  - {kind: selftest, interval: 1s, series: 1, fields: 1}"
agent_config agent1
sed -i 's/^  id: agent1$/  id: agent1\n  host: db-1/' "$T/agent1.yaml"
start_agent agent1
wait_for 20 "the agent streams" grep -q "agent connected" "$T/collector.log"

WP_SRC=$WP_SRC python3 - "http://127.0.0.1:$HP" "$T/screens" "$BIN_CLI" "$T/state" \
    > "$T/browser.log" 2>&1 <<'PY' || { cat "$T/browser.log"; fail "browser scenario"; }
import os, subprocess, sys
sys.path.insert(0, os.path.join(os.environ["WP_SRC"], "tests", "integration"))
from browser import Dashboard, check, log

base, out, cli, state = sys.argv[1:5]


def mlist():
    return subprocess.run([cli, "maintenance", "list", "--state-dir", state, "--format", "csv"],
                          capture_output=True, text=True, check=True).stdout


with Dashboard(out) as b:
    b.open(base)
    b.login("otto", "operator-pass-1")
    b.nav("maintenance")
    b.wait("document.querySelector('#mt-form') && document.querySelector('input[data-hosts=\"db-1\"]')"
           " && document.querySelector('input[data-groups=\"dbs\"]')", what="the form with db-1 and dbs")
    check("Sunday backup" in b.eval("document.querySelector('#mt-config').innerText"),
          "the config window is not listed")
    check(b.eval("document.querySelectorAll('#mt-config [data-action]').length") == 0,
          "a config window has an End button")
    b.screenshot("01-maintenance.png")

    # the server's error is shown as is (the browser logs the 400 itself: expected)
    nerr = len(b.errors)
    b.type("#mt-name", "Too long")
    b.click("input[data-hosts=\"db-1\"]")
    b.type("#mt-duration", "40d")
    b.click("#mt-create")
    b.wait("document.querySelector('#mt-msg.error') &&"
           " document.querySelector('#mt-msg').textContent.includes('31 days')",
           what="the 31 days error")
    during = b.errors[nerr:]
    del b.errors[nerr:]
    check(all("status of 400" in e and e.endswith("/api/v1/maintenance") for e in during),
          "errors on a refused window: %s" % during)
    check(b.eval("document.querySelector('#mt-name').value") == "Too long",
          "the form lost its input after an error")
    check(b.eval("document.querySelector('input[data-hosts=\"db-1\"]').checked"),
          "the form lost the ticked host")
    # a good one
    b.type("#mt-name", "DB patching")
    b.type("#mt-duration", "1h")
    b.type("#mt-reason", "kernel update")
    b.click("#mt-create")
    b.wait("document.querySelector('#mt-active tr[data-mt-id]') &&"
           " document.querySelector('#mt-msg.ok-msg')", what="the new window in Active")
    row = b.eval("document.querySelector('#mt-active tr[data-mt-id]').innerText")
    check("DB patching" in row and "db-1" in row and "otto" in row, "active row: %r" % row)
    csv = mlist()
    check('"DB patching"' in csv and '"active"' in csv and '"otto"' in csv, "CLI list: %s" % csv)
    check(b.eval("document.querySelector('#mt-name').value") == "", "the form was not cleared")
    b.screenshot("02-created.png")
    log("window created from the form")

    # zh-CN labels
    b.select("#lang", "zh-CN")
    b.wait("document.querySelector('nav a[data-page=maintenance]').textContent === '维护窗口' &&"
           " document.querySelector('#mt-active h2').textContent === '进行中'", what="Chinese labels")
    b.screenshot("03-zh.png")
    b.select("#lang", "en")
    b.wait("document.querySelector('#mt-active h2').textContent === 'Active'", what="English again")

    # End now
    b.click("#mt-active button[data-action=end]")
    b.wait("document.querySelector('#mt-past tr[data-state=ended]') &&"
           " !document.querySelector('#mt-active tr[data-mt-id]')", what="the window ended")
    check('"ended"' in mlist(), "the CLI does not list it ended")
    b.screenshot("04-ended.png")
    log("window ended from the page")

    # a viewer: the lists, no form, no buttons
    b.click("#logout")
    b.login("vera", "viewer-pass-1")
    b.nav("maintenance")
    b.wait("document.querySelector('#viewer-note') && document.querySelector('#mt-past tr[data-mt-id]')",
           what="the page as viewer")
    check(b.eval("document.querySelector('#mt-form')") is None, "a viewer sees the form")
    check("null" not in b.eval("document.querySelector('#page').innerText"),
          "the page shows \"null\"")
    check(b.eval("document.querySelectorAll('[data-action]').length") == 0,
          "a viewer sees action buttons")
    b.screenshot("05-viewer.png")
    check(not b.errors, "browser console errors: %s" % b.errors)
    log("viewer sees no form; no console errors")
log("ok")
PY
cat "$T/browser.log"
stop agent1
stop collector
log "PASS"
