#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Test TCP proxy on 127.0.0.1: listens on port 0 (written to LISTEN_PORT_FILE) and forwards
each new connection to the port currently in TARGET_PORT_FILE, so the target may restart on
another port. SIGUSR1 cuts the link: every open connection is aborted and new ones are refused
for CUT_SECONDS. Exits on SIGTERM."""
import asyncio
import os
import signal
import sys


async def main(listen_file, target_file, cut_seconds):
    loop = asyncio.get_running_loop()
    state = {"cut_until": 0.0, "writers": set()}

    async def pipe(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(reader, writer):
        if loop.time() < state["cut_until"]:
            writer.transport.abort()
            return
        try:
            with open(target_file) as f:
                port = int(f.read().strip())
            treader, twriter = await asyncio.open_connection("127.0.0.1", port)
        except (OSError, ValueError):
            writer.transport.abort()
            return
        state["writers"].update((writer, twriter))
        await asyncio.gather(pipe(reader, twriter), pipe(treader, writer))
        state["writers"].discard(writer)
        state["writers"].discard(twriter)

    def cut():
        state["cut_until"] = loop.time() + cut_seconds
        for w in list(state["writers"]):
            w.transport.abort()

    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, cut)
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tmp = listen_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.rename(tmp, listen_file)
    await stop
    server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 3.0))
