#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A fake AMI server for integration tests: it replays the server side of recorded AMI
# sessions (tests/fixtures/telephony/ami-*.txt). Connection 1 gets the first fixture, later
# connections the second. Each client action is answered with the blocks that follow the
# first recorded action of that name, up to the next recorded action, with the recorded
# ActionID replaced by the client's. Epoch times (Timestamp, LoginTime, LastPause, LastCall)
# are shifted so that the fixtures' 1767254400 becomes one hour ago (the shift, in seconds, is
# written to SHIFT_FILE). Creating DROP_FILE closes the current connection (a link outage).
# Usage: fake_ami.py FIXTURE1 FIXTURE2 PORT_FILE DROP_FILE SHIFT_FILE
import os
import re
import select
import socket
import sys
import time

FX_EPOCH = 1767254400


def load(path):
    with open(path, "rb") as f:
        data = f.read().decode()
    banner, rest = data.split("\r\n", 1)
    blocks = []
    for text in rest.split("\r\n\r\n"):
        if not text.strip():
            continue
        action = re.match(r"Action: (\S+)", text)
        aid = re.search(r"^ActionID: (\S+)\r?$", text, re.M)
        blocks.append((action.group(1) if action else None, aid.group(1) if aid else None,
                       text + "\r\n\r\n"))
    return banner + "\r\n", blocks


def answer(blocks, action, aid, shift):
    out = []
    for i, (name, raid, _) in enumerate(blocks):
        if name is not None and name.lower() == action.lower():
            for name2, _, text in blocks[i + 1:]:
                if name2 is not None:
                    break
                if raid is not None:
                    text = text.replace("ActionID: %s\r\n" % raid, "ActionID: %s\r\n" % aid)
                text = re.sub(r"^(Timestamp|LoginTime|LastPause|LastCall): (\d{10})",
                              lambda m: "%s: %d" % (m.group(1), int(m.group(2)) + shift),
                              text, flags=re.M)
                out.append(text)
            return "".join(out)
    return "Response: Error\r\nActionID: %s\r\nMessage: Invalid/unknown command\r\n\r\n" % aid


def main():
    fx = [load(sys.argv[1]), load(sys.argv[2])]
    port_file, drop_file, shift_file = sys.argv[3], sys.argv[4], sys.argv[5]
    shift = int(time.time()) - 3600 - FX_EPOCH
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    with open(shift_file + ".tmp", "w") as f:
        f.write("%d\n" % shift)
    os.rename(shift_file + ".tmp", shift_file)
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % lsock.getsockname()[1])
    os.rename(port_file + ".tmp", port_file)
    nconn = 0
    while True:
        conn, _ = lsock.accept()
        banner, blocks = fx[min(nconn, 1)]
        nconn += 1
        conn.sendall(banner.encode())
        buf = b""
        while True:
            if os.path.exists(drop_file):
                os.unlink(drop_file)
                break
            r, _, _ = select.select([conn], [], [], 0.1)
            if not r:
                continue
            data = conn.recv(65536)
            if not data:
                break
            buf += data.replace(b"\r\n", b"\n")
            while b"\n\n" in buf:
                msg, buf = buf.split(b"\n\n", 1)
                keys = dict(l.split(": ", 1) for l in msg.decode().split("\n") if ": " in l)
                if "Action" in keys:
                    conn.sendall(answer(blocks, keys["Action"], keys.get("ActionID", ""),
                                        shift).encode())
        conn.close()


if __name__ == "__main__":
    main()
