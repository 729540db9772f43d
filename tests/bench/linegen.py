#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Middleware table generator for tests/bench/lines.sh (the linetable probe's `command`).

Each run is one round: it loads the table from STATE (a JSON file), changes CHANGES distinct
lines of the N lines to another state (deterministic: the round number seeds the choice),
saves it, appends "round line state" for every change to LOG and prints the whole table in
the DevLink layout (tests/fixtures/telephony/devlink-lines.txt). The probe runs it once per
interval, so every round is read exactly once: the log is the ground truth of every change.

    linegen.py STATE LOG N CHANGES

While STATE.stop exists, rounds change nothing (the bench stops the load this way, so no
round is logged that the probe did not read).
"""
import json
import os
import random
import sys

# raw DevLink words and how often a change picks them (the probe's state_map normalises)
RAW = ["Idle"] * 5 + ["Connected"] * 3 + ["Ringing", "Busy", "Held", "OutOfService", "Blocked"]


def main():
    state_path, log_path, n, changes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if os.path.exists(state_path):
        with open(state_path) as f:
            st = json.load(f)
    else:
        st = {"round": 0, "lines": ["Idle"] * n}
    rnd = random.Random(st["round"])
    lines = st["lines"]
    out = []
    frozen = os.path.exists(state_path + ".stop")  # the bench is ending: no more changes
    if st["round"] > 0 and not frozen:  # round 0 is the first snapshot: every line idle, no change
        for i in rnd.sample(range(n), changes):
            new = rnd.choice([r for r in RAW if r != lines[i]])
            lines[i] = new
            out.append(f"{st['round']} {10000 + i} {new}\n")
    st["round"] += 1
    tmp = state_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st, f)
    os.replace(tmp, state_path)
    with open(log_path, "a") as f:
        f.writelines(out)
    w = sys.stdout.write
    w("Normal Running ...\n\nDevLink State: IPO DevLink connected\n\n")
    w("DeviceID\tDeviceNum\tPhoneNum\tInService\tType\tState\tState\tLoginCodeFlag\tCall Info\n")
    for i, raw in enumerate(lines):
        ins = "N" if raw == "OutOfService" else "Y"
        w(f"{i}\t{10000 + i}\t{10000 + i}\t{ins}\tExtension\t{raw}\t{raw}\t0\t\n")


if __name__ == "__main__":
    main()
