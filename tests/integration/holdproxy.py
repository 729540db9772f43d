#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Test HTTP proxy on 127.0.0.1 that can hold back the answer to one kind of request.

holdproxy.py DIR TARGET_PORT PREFIX

Listens on port 0 (written to DIR/port) and forwards every connection to 127.0.0.1:TARGET_PORT
byte for byte (keep-alive included). While the file DIR/hold exists, a request whose request
line starts with PREFIX (e.g. "POST /REST/2.0/ticket ") has its answer held: the proxy reads
the target's answer up to its final status line (a "100 Continue" does not count), writes that
status line to DIR/held (so the test knows the target has answered, i.e. has done the work),
and forwards the answer only once DIR/hold is gone (at most 60 s). If the client is gone by
then, the answer is lost: a client killed "right after the call". Exits on SIGTERM."""
import asyncio
import os
import re
import signal
import sys

FINAL = re.compile(rb"HTTP/1\.[01] [2-5][0-9][0-9][^\r\n]*")


async def main(d, target_port, prefix):
    loop = asyncio.get_running_loop()
    hold_file = os.path.join(d, "hold")
    held_file = os.path.join(d, "held")

    def write_atomic(path, text):
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)

    async def handle(creader, cwriter):
        try:
            treader, twriter = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            cwriter.transport.abort()
            return
        conn = {"hold": False}

        async def upstream():
            try:
                while True:
                    data = await creader.read(65536)
                    if not data:
                        break
                    if data.startswith(prefix) and os.path.exists(hold_file):
                        conn["hold"] = True
                    twriter.write(data)
                    await twriter.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                twriter.close()

        async def downstream():
            buf = b""
            try:
                while True:
                    data = await treader.read(65536)
                    if not data:
                        break
                    if conn["hold"]:
                        buf += data
                        m = FINAL.search(buf)
                        if m is None:
                            continue  # a 100 Continue or a partial status line: keep reading
                        write_atomic(held_file, m.group(0).decode("latin-1") + "\n")
                        for _ in range(1200):  # 60 s at most
                            if not os.path.exists(hold_file):
                                break
                            await asyncio.sleep(0.05)
                        conn["hold"] = False
                        data, buf = buf, b""
                    cwriter.write(data)
                    await cwriter.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                cwriter.close()

        await asyncio.gather(upstream(), downstream())

    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    write_atomic(os.path.join(d, "port"), f"{server.sockets[0].getsockname()[1]}\n")
    await stop
    server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()))
