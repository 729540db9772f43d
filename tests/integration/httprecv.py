#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A scripted HTTP receiver for the notification tests (a test peer, not a real service desk:
the real ones are RT in test_rt*.sh and SMTP in test_mail*.sh).

    httprecv.py DIR

Listens on 127.0.0.1 port 0 (writes DIR/port), logs every request as one JSON line in
DIR/requests.jsonl: {"t", "method", "path", "idem", "body"}. Behaviour by path:
  POST /pd            the first message (by Idempotency-Key) gets DIR/pd.plan's codes in turn
                      ("503", "429:SECONDS", "202"; the last one from then on), others 202
  POST /chat          200 (a chat webhook)
  POST /bad           400 while DIR/bad_400 exists, then 200 (a dead letter an operator retries)
  POST /tickets       creates ticket T-n (201 {"id": "T-n"}); while DIR/slow_create exists it
                      waits 4 s before answering (the test kills the collector meanwhile)
  GET  /tickets?key=K {"items": [{"id": ...}]} of the tickets whose body had "key": K
  POST /tickets/ID/notes, PUT /tickets/ID   200; 404 for an unknown ticket
"""
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIR = sys.argv[1]
LOCK = threading.Lock()
COUNT = {}
TICKETS = {}
FIRST = []


def plan(name, n):
    try:
        with open(os.path.join(DIR, name)) as f:
            codes = f.read().split()
    except OSError:
        codes = ["200"]
    return codes[min(n, len(codes) - 1)]


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj=None, headers=()):
        body = json.dumps(obj if obj is not None else {}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        u = urllib.parse.urlsplit(self.path)
        with LOCK:
            k = (self.command, u.path)
            c = COUNT.get(k, 0)
            COUNT[k] = c + 1
            with open(os.path.join(DIR, "requests.jsonl"), "a") as f:
                f.write(json.dumps({"t": time.time(), "method": self.command, "path": self.path,
                                    "idem": self.headers.get("Idempotency-Key", ""),
                                    "body": body}) + "\n")
        if u.path == "/pd":
            idem = self.headers.get("Idempotency-Key", "")
            with LOCK:
                if not FIRST:
                    FIRST.append(idem)
                seen = COUNT.get(("pd", idem), 0)
                COUNT[("pd", idem)] = seen + 1
                code = plan("pd.plan", seen) if idem == FIRST[0] else "202"
            if code.startswith("429:"):
                return self.reply(429, {"status": "throttle"}, [("Retry-After", code[4:])])
            return self.reply(int(code), {"status": "success" if code.startswith("2") else "x"})
        if u.path == "/chat":
            return self.reply(200, {"ok": True})
        if u.path == "/bad":
            bad = os.path.exists(os.path.join(DIR, "bad_400"))
            return self.reply(400 if bad else 200, {"error": "bad request" if bad else ""})
        if u.path == "/tickets" and self.command == "POST":
            if os.path.exists(os.path.join(DIR, "slow_create")):
                time.sleep(4)
            with LOCK:
                tid = "T-%d" % (len(TICKETS) + 1)
                TICKETS[tid] = {"key": json.loads(body).get("key"), "state": "open", "notes": 0}
                json.dump(TICKETS, open(os.path.join(DIR, "tickets.json"), "w"))
            return self.reply(201, {"id": tid})
        if u.path == "/tickets" and self.command == "GET":
            key = urllib.parse.parse_qs(u.query).get("key", [""])[0]
            items = [{"id": t} for t, v in TICKETS.items() if v["key"] == key]
            return self.reply(200, {"items": items})
        parts = u.path.strip("/").split("/")
        if parts[0] == "tickets" and len(parts) >= 2:
            with LOCK:
                t = TICKETS.get(parts[1])
                if t is None:
                    return self.reply(404, {"error": "no ticket"})
                if self.command == "PUT":
                    t["state"] = json.loads(body).get("state", t["state"])
                else:
                    t["notes"] += 1
                json.dump(TICKETS, open(os.path.join(DIR, "tickets.json"), "w"))
            return self.reply(200, {"ok": True})
        return self.reply(404, {"error": "unknown path"})

    do_GET = do_POST = do_PUT = handle_any


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(os.path.join(DIR, "port.tmp"), "w") as f:
    f.write(str(srv.server_address[1]))
os.replace(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
srv.serve_forever()
