#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Compare what a selftest probe produced (its record file: "ts_ms inst v0 v1 ...") with what
`watchpost query --format raw` printed from the RRD files ("ts inst value"), for one field,
over [start, end] seconds. Every produced value must be stored exactly once with the same value.
Stored values the record file lacks are allowed only when they are genuine (the probe's
deterministic value for that time) and at most ALLOW_EXTRA of them: a SIGKILL can land after a
batch reached the spool and before the probe recorded it. Prints count and sum per instance."""
import sys


def expected(ts_s, inst, field):
    i = int(inst[1:])
    return ts_s * 1000 + i * 32 + field


def main(record_path, query_path, field, start, end, allow_extra, label):
    field, start, end, allow_extra = int(field), int(start), int(end), int(allow_extra)
    produced = {}
    with open(record_path) as f:
        for line in f:
            parts = line.split()
            ts = int(parts[0]) // 1000
            if start <= ts <= end:
                key = (ts, parts[1])
                if key in produced:
                    print(f"{label}: the probe recorded {key} twice")
                    return 1
                produced[key] = float(parts[2 + field])
    stored = {}
    with open(query_path) as f:
        for line in f:
            ts_s, inst, val = line.split()
            ts = int(ts_s)
            if start <= ts <= end:
                stored[(ts, inst)] = float(val)
    bad = 0
    for key, v in sorted(produced.items()):
        if key not in stored:
            print(f"{label}: LOST {key} value {v}")
            bad += 1
        elif abs(stored[key] - v) > 1e-6 * max(1.0, abs(v)):
            print(f"{label}: WRONG {key} produced {v} stored {stored[key]}")
            bad += 1
    extra = [k for k in stored if k not in produced]
    for key in extra:
        if abs(stored[key] - expected(key[0], key[1], field)) > 1e-6 * abs(stored[key]):
            print(f"{label}: FOREIGN {key} value {stored[key]}")
            bad += 1
    if len(extra) > allow_extra:
        print(f"{label}: {len(extra)} stored values not in the record file (allowed {allow_extra})")
        bad += 1
    insts = sorted({k[1] for k in produced})
    for inst in insts:
        p = [v for k, v in produced.items() if k[1] == inst]
        s = [v for k, v in stored.items() if k[1] == inst and k in produced]
        print(f"{label} {inst}: produced {len(p)} values sum {sum(p):.0f}; "
              f"stored {len(s)} sum {sum(s):.0f}")
    if not produced:
        print(f"{label}: nothing produced in [{start}, {end}]")
        bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:8]))
