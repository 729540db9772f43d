#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install what is missing, build, and start a demo fleet on 127.0.0.1: a CA, a collector and
# an agent for this host, all state under ./demo. `scripts/demo.sh stop` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
DEMO=$TOP/demo
BUILD=$TOP/build-release
BIN_C=$BUILD/collector

stop() {
    for p in agent collector; do
        if [ -f "$DEMO/$p.pid" ]; then
            pid=$(cat "$DEMO/$p.pid")
            if kill -0 "$pid" 2>/dev/null; then
                kill -TERM "$pid"
                for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            fi
            rm -f "$DEMO/$p.pid"
        fi
    done
}

if [ "${1:-}" = "stop" ]; then
    stop
    echo "demo stopped; its data stays in $DEMO (remove the folder to start afresh)"
    exit 0
fi

scripts/deps.sh
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWP_TESTS=OFF > /dev/null
cmake --build "$BUILD" -j"$(nproc)" > /dev/null
stop

HOST=$(hostname -s 2>/dev/null || hostname)
HOST=$(printf '%s' "$HOST" | tr -c 'A-Za-z0-9._-' '-')
mkdir -p "$DEMO"
export WATCHPOST_CA_DIR=$DEMO/ca
if [ ! -f "$DEMO/ca/ca.crt" ]; then
    "$BIN_C/watchpost" ca init --cn "Watchpost demo CA" > /dev/null
fi
mkdir -p "$DEMO/certs"
[ -f "$DEMO/certs/watchpost-collector.crt" ] ||
    "$BIN_C/watchpost" ca issue watchpost-collector --server --out "$DEMO/certs" > /dev/null
[ -f "$DEMO/certs/$HOST.crt" ] ||
    "$BIN_C/watchpost" ca issue "$HOST" --out "$DEMO/certs" > /dev/null

cat > "$DEMO/collector.yaml" <<YAML
# Demo collector: listens on 127.0.0.1 (a free port), keeps everything under demo/state.
listen: 127.0.0.1:0
state_dir: $DEMO/state
tls:
  ca: $DEMO/ca/ca.crt
  cert: $DEMO/certs/watchpost-collector.crt
  key: $DEMO/certs/watchpost-collector.key
  crl: $DEMO/ca/crl.pem
incidents:
  rules: [$TOP/packaging/etc/rules.d/default.yaml]
YAML
rm -f "$DEMO/collector.port"
"$BUILD/collector/watchpost-collector" -c "$DEMO/collector.yaml" \
    --port-file "$DEMO/collector.port" >> "$DEMO/collector.log" 2>&1 &
echo $! > "$DEMO/collector.pid"
for _ in $(seq 1 100); do [ -s "$DEMO/collector.port" ] && break; sleep 0.1; done
if [ ! -s "$DEMO/collector.port" ]; then
    echo "demo: the collector did not start; see $DEMO/collector.log" >&2
    tail -n 20 "$DEMO/collector.log" >&2
    exit 1
fi
PORT=$(cat "$DEMO/collector.port")

cat > "$DEMO/agent.yaml" <<YAML
# Demo agent for this host: the host probe every 10 s, streamed to the demo collector.
agent:
  id: $HOST
  state_dir: $DEMO/agent
collectors:
  - 127.0.0.1:$PORT
tls:
  ca: $DEMO/ca/ca.crt
  cert: $DEMO/certs/$HOST.crt
  key: $DEMO/certs/$HOST.key
probes:
  - kind: host
    interval: 10s
YAML
"$BUILD/agent/watchpost-agent" -c "$DEMO/agent.yaml" >> "$DEMO/agent.log" 2>&1 &
echo $! > "$DEMO/agent.pid"

cat <<MSG
Watchpost demo running: collector on 127.0.0.1:$PORT, agent "$HOST" (host probe every 10 s).
  RRD files:  $DEMO/state/rrd/$HOST/      SQLite: $DEMO/state/watchpost.db
  logs:       $DEMO/collector.log  $DEMO/agent.log
  look:       $BIN_C/watchpost query --state-dir $DEMO/state --host $HOST --metric cpu.user --since 10m
              $BIN_C/watchpost status --state-dir $DEMO/state
              $BIN_C/watchpost incidents list --state-dir $DEMO/state
  stop:       scripts/demo.sh stop
MSG
