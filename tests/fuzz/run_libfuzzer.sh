#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# libFuzzer smoke runs for ctest (see tests/fuzz/CMakeLists.txt).
#   run_libfuzzer.sh build SRC_DIR BUILD_DIR CLANG WERROR TARGET...
#       configure SRC_DIR with clang into BUILD_DIR and build the libFuzzer TARGETs
#       (for builds whose own compiler is not clang); a target that fails to build
#       fails its own smoke test only
#   run_libfuzzer.sh run FUZZER CORPUS SECONDS ARTIFACT_DIR
#       fuzz for SECONDS over a temporary copy of CORPUS; fails on any crash, leak,
#       sanitizer report or timeout, and keeps the input that caused it in ARTIFACT_DIR
set -u

die() {
    echo "run_libfuzzer: $*" >&2
    exit 1
}

build() {
    [ $# -ge 5 ] || die "usage: build SRC_DIR BUILD_DIR CLANG WERROR TARGET..."
    local src=$1 dir=$2 clang=$3 werror=$4
    shift 4
    mkdir -p "$dir" || die "cannot create $dir"
    # -O1 -g as libFuzzer recommends; Debug keeps the project's ASan+UBSan flags.
    cmake -S "$src" -B "$dir" -DCMAKE_C_COMPILER="$clang" -DCMAKE_BUILD_TYPE=Debug \
        -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DWP_WERROR="$werror" >"$dir/fuzz-configure.log" 2>&1 ||
        { cat "$dir/fuzz-configure.log"; die "clang configure failed"; }
    # Each target alone, so that one that does not build fails only its own smoke test
    # (which finds no binary and shows this log), not the others.
    local t failed=0
    for t in "$@"; do
        rm -f "$dir/tests/fuzz/$t"
        if ! cmake --build "$dir" --target "$t" -j2 >"$dir/tests/fuzz/$t.build.log" 2>&1; then
            tail -n 40 "$dir/tests/fuzz/$t.build.log"
            echo "run_libfuzzer: $t did not build with clang" >&2
            failed=1
        fi
    done
    [ $failed -eq 0 ] || echo "run_libfuzzer: see the failing smoke tests" >&2
}

run() {
    [ $# -eq 4 ] || die "usage: run FUZZER CORPUS SECONDS ARTIFACT_DIR"
    local fuzzer=$1 corpus=$2 secs=$3 artifacts=$4
    if [ ! -x "$fuzzer" ]; then
        [ -f "$fuzzer.build.log" ] && tail -n 40 "$fuzzer.build.log"
        die "no fuzzer at $fuzzer"
    fi
    [ -d "$corpus" ] || die "no corpus at $corpus"
    mkdir -p "$artifacts" || die "cannot create $artifacts"

    local rc name log
    # global, for the EXIT trap
    work=$(mktemp -d) || die "mktemp failed"
    trap 'rm -rf "$work"' EXIT
    cp -R "$corpus/." "$work/" || die "cannot copy the corpus"
    name=$(basename "$fuzzer")
    log="$artifacts/$name.log"

    # A crash must end the run with an error: UBSan stops at the first report, and
    # libFuzzer exits non-zero on crashes, leaks, OOMs and timeouts.
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        "$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" >"$log" 2>&1
    rc=$?
    if [ $rc -ne 0 ] || grep -qE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
        tail -n 80 "$log"
        echo "run_libfuzzer: $name FAILED (exit $rc); inputs kept in $artifacts:" >&2
        ls -l "$artifacts" >&2
        exit 1
    fi
    # The last status line has the coverage and speed; the stats give the totals.
    grep -E '^#[0-9]+' "$log" | tail -n 1
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log"
    echo "run_libfuzzer: $name ok ($secs s, corpus $(find "$work" -type f | wc -l) files)"
}

mode=${1:-}
[ $# -gt 0 ] && shift
case "$mode" in
build) build "$@" ;;
run) run "$@" ;;
*) die "usage: run_libfuzzer.sh build|run ..." ;;
esac
