#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# logtail matching throughput: generates a log file of realistic lines (most match no rule),
# then runs the real probe over it (read, split, UTF-8 check, rules) with 20 rules and with
# no rules, and prints lines/s. One core (the probe is single-threaded).
#
#   tests/bench/logtail.sh [SIZE_MB]        # default 1024 (1 GiB)
#
# Builds a Release tree in build-logbench (WP_BENCH_BUILD), the file and outputs go to
# tests/bench/out/ (the generated file is deleted unless WP_KEEP=1).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${WP_BENCH_BUILD:-$SRC/build-logbench}
OUT=$SRC/tests/bench/out
SIZE_MB=${1:-1024}
mkdir -p "$OUT"

cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target wpprobes wpcommon >/dev/null
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_GNU_SOURCE -o "$OUT/logtail_bench" "$SRC/tests/bench/logtail_bench.c" \
    -I"$SRC/probes" -I"$SRC/common/include" \
    "$BUILD/probes/libwpprobes.a" "$BUILD/common/libwpcommon.a" \
    $(pkg-config --cflags --libs libuv libpcre2-8 libcurl yaml-0.1 msgpack) \
    -lmbedtls -lmbedx509 -lmbedcrypto -lm

LOG=$OUT/logtail-bench.log
if [ ! -f "$LOG" ] || [ "$(($(stat -c %s "$LOG") / 1048576))" -lt "$((SIZE_MB - 1))" ]; then
    echo "generating $SIZE_MB MiB of log lines in $LOG"
    python3 - "$LOG" "$SIZE_MB" <<'PY'
import random, sys
path, mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
hosts = ["db1", "app2", "web3"]
procs = ["sshd[1234]", "CRON[221]", "kernel", "systemd[1]", "nginx[880]", "java[4410]",
         "postfix/smtpd[77]", "dockerd[512]"]
msgs = [
    "Accepted publickey for deploy from 10.1.2.{n} port 5{n} ssh2: ED25519 SHA256:abcdefgh",
    "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
    "GET /api/v1/tickets/{n} HTTP/1.1 200 {n} 0.0{n}s \"Mozilla/5.0 (X11; Linux x86_64)\"",
    "INFO [http-nio-8080-exec-{n}] c.e.ticket.TicketService - loaded ticket {n} in {n} ms",
    "Started Session {n} of user deploy.",
    "DEBUG pool stats active={n} idle=8 waiting=0 total=16 max=64",
    "Thread 1 advanced to log sequence {n} (LGWR switch)",
    "connection from 192.168.{n}.17 accepted, tls=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384",
    "audit: type=1400 audit({n}.120:88): apparmor=\"ALLOWED\" operation=\"open\" profile=\"x\"",
    "WARN slow query took {n} ms: SELECT * FROM evt_ticket WHERE id = {n}",
]
bad = [
    "ORA-00600: internal error code, arguments: [kdsgrp1], [], []",
    "ORA-01653: unable to extend table ITSM.EVT by 8192 in tablespace USERS",
    "Out of memory: Killed process {n} (java) total-vm:812345kB",
    "java.lang.OutOfMemoryError: Java heap space",
    "Failed password for invalid user admin from 203.0.113.{n} port 22 ssh2",
    "SEVERE [main] org.apache.catalina.core.StandardContext.startInternal failed",
    "segfault at 0 ip 00007f sp 00007ffd error 4 in libc.so.6",
]
block = []
for i in range(20000):
    n = rnd.randint(1, 99999)
    m = rnd.choice(bad) if rnd.random() < 0.01 else rnd.choice(msgs)
    block.append("2024-05-%02d %02d:%02d:%02d %s %s: %s\n" % (
        rnd.randint(1, 28), rnd.randint(0, 23), rnd.randint(0, 59), rnd.randint(0, 59),
        rnd.choice(hosts), rnd.choice(procs), m.replace("{n}", str(n))))
data = "".join(block).encode()
with open(path, "wb") as f:
    left = mb << 20
    while left > 0:
        chunk = data[:left]
        if len(chunk) < len(data):
            chunk = chunk[:chunk.rfind(b"\n") + 1]  # whole lines only
            if not chunk:
                break
        f.write(chunk)
        left -= len(data)
PY
fi

cat > "$OUT/logtail-rules.yaml" <<'YAML'
rules:
  - {name: ora_internal, pattern: "(?<code>ORA-(?:00600|07445))", severity: critical}
  - {name: ora_tablespace, pattern: "(?<code>ORA-016(?:53|54|88))", severity: error}
  - {name: ora_eof, pattern: "ORA-03113"}
  - {name: ora_checkpoint, pattern: "Checkpoint not complete"}
  - {name: ora_archiver, pattern: "ORA-00257"}
  - {name: oom_kill, pattern: "Out of memory: Killed process (?<pid>\\d+)", severity: critical}
  - {name: java_oom, pattern: "java\\.lang\\.OutOfMemoryError", literal: OutOfMemoryError}
  - {name: tomcat_severe, pattern: "\\bSEVERE\\b", severity: error}
  - {name: segfault, pattern: "segfault at (?<addr>\\w+)", severity: error}
  - {name: ssh_fail, pattern: "Failed password for (?:invalid user )?(?<user>\\S+)"}
  - {name: io_error, pattern: "Buffer I/O error on dev (?<dev>\\w+)", severity: error}
  - {name: fs_ro, pattern: "Remounting filesystem read-only", severity: critical}
  - {name: disk_full, pattern: "No space left on device", severity: error}
  - {name: too_many_files, pattern: "Too many open files", severity: error}
  - {name: deadlock, pattern: "deadlock detected", severity: error}
  - {name: conn_refused, pattern: "Connection refused"}
  - {name: timeout, pattern: "timed out after (?<ms>\\d+) ?ms"}
  - {name: kernel_bug, pattern: "kernel BUG at (?<where>\\S+)", severity: critical}
  - {name: nfs_down, pattern: "nfs: server (?<server>\\S+) not responding", severity: error}
  - {name: slow_query, pattern: "slow query took (?<ms>\\d{4,}) ms"}
YAML

echo "file: $LOG ($(($(stat -c %s "$LOG") / 1048576)) MiB), CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
# the first pass also warms the page cache
"$OUT/logtail_bench" "$LOG" none >/dev/null
printf 'rules off : '
"$OUT/logtail_bench" "$LOG" none
printf '20 rules  : '
"$OUT/logtail_bench" "$LOG" "$OUT/logtail-rules.yaml"
[ -n "${WP_KEEP:-}" ] || rm -f "$LOG"
