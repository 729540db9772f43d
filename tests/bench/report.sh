#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Report timing (not a ctest test): the weekly health report of a synthetic 1,000-host
# fortnight (2026-W46 and W47, UTC+8) written by `WP_REPORT_BIG=DIR test_report` through the
# real stores: 1,000 agents each with CPU, memory, one file system and two process series
# (5-minute RRD files with the collector's default archives), 20 hotline test-call series,
# 6,000 incidents with their timelines, 3,000 lines with 20 state changes each (1,000 of them
# kamreg extensions), 100,000 log events of 300 messages. The state is made once and kept.
#
#   tests/bench/report.sh [FORMATS] [RUNS]       default html,pdf,csv 3
#
# Prints the wall time of each `watchpost report weekly` run (the median last), the bytes
# written, and whether every run gave the same files.
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=$PWD
FORMATS=${1:-html,pdf,csv}
RUNS=${2:-3}
BUILD=${WP_BENCH_BUILD:-$SRC/build-bench}
OUT=${WP_BENCH_OUT:-$SRC/tests/bench/out}
STATE=$OUT/report-state
mkdir -p "$OUT"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DWP_TESTS=ON > "$OUT/cmake.log" 2>&1 ||
    { echo "cmake configure failed: see $OUT/cmake.log"; exit 1; }
cmake --build "$BUILD" -j2 --target watchpost test_report > /dev/null
export TZ=CST-8
if [ ! -f "$STATE/events.db" ]; then
    rm -rf "$STATE"
    start=$(date +%s.%N)
    WP_REPORT_BIG=$STATE "$BUILD/tests/test_report"
    echo "state made in $(echo "$(date +%s.%N) - $start" | bc) s: $(du -sh "$STATE" | cut -f1)"
fi
times=()
for i in $(seq 1 "$RUNS"); do
    rm -rf "$OUT/report-$i"
    start=$(date +%s.%N)
    "$BUILD/collector/watchpost" report weekly --week 2026-W47 --state-dir "$STATE" \
        --out "$OUT/report-$i" --format "$FORMATS" > /dev/null
    t=$(echo "$(date +%s.%N) - $start" | bc)
    times+=("$t")
    printf 'run %d: %.2f s, %s in %d files\n' "$i" "$t" \
        "$(du -sh "$OUT/report-$i" | cut -f1)" "$(ls "$OUT/report-$i" | wc -l)"
done
same=yes
for i in $(seq 2 "$RUNS"); do
    diff -r "$OUT/report-1" "$OUT/report-$i" > /dev/null || same=no
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
printf 'weekly %s, %d runs: median %.2f s; identical files: %s\n' "$FORMATS" "$RUNS" "$median" \
    "$same"
