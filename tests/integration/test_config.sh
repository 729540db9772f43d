#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bad configuration: both daemons refuse to start and, like `watchpost check-config`, say
# file:line:column and what was expected. The shipped example configs pass check-config, and
# `watchpost-agent --once` prints one sample without connecting anywhere.
. "$(dirname "$0")/lib.sh"

expect_error() { # expect_error WANT CMD...: exit 1 and stderr equal to WANT
    local want=$1
    shift
    local rc=0
    "$@" > "$T/out" 2> "$T/err" || rc=$?
    [ "$rc" -eq 1 ] || fail "$* exited $rc, expected 1"
    grep -qxF "$want" "$T/err" || fail "$* said: $(cat "$T/err") -- expected: $want"
}

cat > "$T/coll.yaml" <<'YAML'
listen: 127.0.0.1:0
state_dir: /nonexistent
tls:
  ca: a
  cert: b
  key: c
rrd:
  flush_interval: soon
YAML
want="$T/coll.yaml:8:19: rrd.flush_interval: expected a duration like 10s, got \"soon\""
expect_error "$want" "$BIN_COLL" -c "$T/coll.yaml"
expect_error "$want" "$BIN_CLI" check-config "$T/coll.yaml"

cat > "$T/agent.yaml" <<'YAML'
agent:
  id: a1
colectors: [127.0.0.1:7443]
YAML
want="$T/agent.yaml:3:1: unknown key \"colectors\" (expected one of: agent, collectors, tls, spool, sender, probes)"
expect_error "$want" "$BIN_AGENT" -c "$T/agent.yaml"
expect_error "$want" "$BIN_CLI" check-config "$T/agent.yaml"

printf 'listen: [1, 2\n' > "$T/syntax.yaml"
"$BIN_CLI" check-config "$T/syntax.yaml" 2> "$T/err" && fail "a YAML syntax error passed"
grep -q "^$T/syntax.yaml:[0-9]*:[0-9]*: " "$T/err" || fail "syntax error without position: $(cat "$T/err")"

"$BIN_CLI" check-config --agent "$WP_SRC/packaging/etc/agent.yaml" > "$T/out" ||
    fail "packaging/etc/agent.yaml: $(cat "$T/out")"
"$BIN_CLI" check-config --collector "$WP_SRC/packaging/etc/collector.yaml" > "$T/out" ||
    fail "packaging/etc/collector.yaml: $(cat "$T/out")"
# docs/CONFIG.md is what the option tables say (regenerate: watchpost config-reference)
"$BIN_CLI" config-reference > "$T/CONFIG.md"
diff -u "$WP_SRC/docs/CONFIG.md" "$T/CONFIG.md" > "$T/config.diff" ||
    fail "docs/CONFIG.md is out of date; run: watchpost config-reference > docs/CONFIG.md
$(head -40 "$T/config.diff")"
# the commented notify: example is valid once uncommented (secrets and rules made local)
echo "not-a-real-secret" > "$T/secret"
python3 - "$WP_SRC/packaging/etc/collector.yaml" "$T" > "$T/notify.yaml" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
head, tail = s.split("#notify:", 1)
tail = "\n".join(l[1:] if l.startswith("#") else l for l in ("#notify:" + tail).splitlines())
t = head + tail + "\n"
t = re.sub(r"/etc/watchpost/[a-z.]+(token|key|password)", sys.argv[2] + "/secret", t)
t = t.replace("/etc/watchpost/rules.d/", sys.argv[1].rsplit("/", 1)[0] + "/rules.d/")
print(t)
PY
"$BIN_CLI" check-config --collector "$T/notify.yaml" > "$T/out" ||
    fail "the notify: example of packaging/etc/collector.yaml: $(cat "$T/out")"
# a route naming a destination that does not exist: file:line:column and the name
sed 's/to: \[rt, noc-mail\]/to: [rt, nowhere]/' "$T/notify.yaml" > "$T/bad-notify.yaml"
if "$BIN_CLI" check-config --collector "$T/bad-notify.yaml" > "$T/out" 2>&1; then
    fail "a route to an unknown destination was accepted"
fi
grep -Eq 'bad-notify.yaml:[0-9]+:[0-9]+: notify.routes\[0\].to: no destination named "nowhere"' \
    "$T/out" || fail "unexpected error: $(cat "$T/out")"

ca_init
issue a1
cat > "$T/once.yaml" <<YAML
agent: {id: a1, state_dir: $T/once}
collectors: [127.0.0.1:9]
tls: {ca: $T/ca/ca.crt, cert: $T/certs/a1.crt, key: $T/certs/a1.key}
probes: [{kind: host, interval: 1s}]
YAML
"$BIN_AGENT" -c "$T/once.yaml" --once > "$T/once.out" || fail "--once failed"
grep -q '^cpu total user=' "$T/once.out" || fail "--once printed no cpu row: $(head -3 "$T/once.out")"
grep -q '^mem - total=' "$T/once.out" || fail "--once printed no mem row"
log "PASS"
