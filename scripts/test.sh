#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install what is missing, build (Debug: ASan + UBSan, warnings as errors) and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DWP_WERROR=ON > /dev/null
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j"$(nproc)" --timeout 900
