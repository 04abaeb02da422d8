"""`scripts/bench limits`: destination limits on `hookflow dev`, measured.

One server, three subscriptions to one loopback receiver, every event
published to all three for SECONDS (default 30) at RATE events a second
(default 300):

- `paced`: `rate_limit: {per_second: 100}`: its deliveries a second over
  the window, against 100 (target within ±5%);
- `free`: no limit, on the same server: its deliveries a second, against
  the publish rate (it must not be held back by the paced one's backlog);
- `bounded`: `max_in_flight: 2`, its receiver taking 50 ms a request: the
  most requests the receiver saw at once (target: never above 2), and its
  throughput against the 40 a second two places allow.

Usage: python3 bench/limits.py HOOKFLOW_BINARY
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECONDS = float(os.environ.get("LIMIT_SECONDS", "30"))
RATE = float(os.environ.get("RATE", "300"))
TOKEN = "bench-admin-token-0123"


class Receiver:
    def __init__(self):
        self.lock = threading.Lock()
        self.arrivals = {"paced": [], "free": [], "bounded": []}
        self.now = 0
        self.most = 0
        self.busy = 0.0
        me = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are two writes: without this, Nagle and the
            # client's delayed ACK add 40 ms to each answer.
            disable_nagle_algorithm = True

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                which = self.path.strip("/")
                doc = json.loads(body or b"{}")
                out = b"{}"
                if doc.get("type") == "webhook.verification":
                    out = json.dumps({"token": doc["token"]}).encode()
                elif which == "bounded":
                    began = time.monotonic()
                    with me.lock:
                        me.now += 1
                        me.most = max(me.most, me.now)
                    time.sleep(0.05)
                    with me.lock:
                        me.now -= 1
                        me.arrivals[which].append(time.monotonic())
                        me.busy += time.monotonic() - began
                else:
                    with me.lock:
                        me.arrivals[which].append(time.monotonic())
                try:
                    self.send_response(200)
                    self.send_header("content-length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(port, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def main():
    binary = sys.argv[1]
    r = Receiver()
    work = pathlib.Path(tempfile.mkdtemp(prefix="hookflow-limits-"))
    (work / "flows").mkdir()
    port = free_port()
    log = open(work / "dev.log", "w")
    dev = subprocess.Popen([binary, "dev", "--flows", str(work / "flows"), "--listen", f"127.0.0.1:{port}",
                            "--data", str(work / "data"), "--admin-token", TOKEN], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        subs = {}
        for name, extra in (("paced", {"rate_limit": {"per_second": 100}}), ("free", {}), ("bounded", {"max_in_flight": 2})):
            subs[name] = call(port, "POST", "/v1/subscriptions", {
                "url": f"http://127.0.0.1:{r.port}/{name}", "event_types": ["bench.*"], **extra})["id"]
        deadline = time.monotonic() + 20
        while not all(call(port, "GET", f"/v1/subscriptions/{s}")["status"] == "active" for s in subs.values()):
            assert time.monotonic() < deadline, "subscriptions not verified"
            time.sleep(0.1)
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < SECONDS:
            time.sleep(max(0.0, start + sent / RATE - time.monotonic()))
            call(port, "POST", "/v1/events", {"type": "bench.tick", "data": {"n": sent}})
            sent += 1
        end = time.monotonic()
        backlog = call(port, "GET", f"/v1/subscriptions/{subs['paced']}")["backlog"]
        time.sleep(1)
        # The window: from the first second on (the burst at the start is
        # one request), to the publisher's end.
        lo, hi = start + 1, end
        with r.lock:
            counted = {k: sum(1 for t in v if lo <= t < hi) for k, v in r.arrivals.items()}
            most = r.most
            busy = r.busy
        span = hi - lo
        published = sent / (end - start)
        paced = counted["paced"] / span
        free = counted["free"] / span
        bounded = counted["bounded"] / span
        print(f"published {published:.1f} events/s for {end - start:.1f} s")
        print(f"| subscription | limit | deliveries/s | against |")
        print(f"|---|---|---|---|")
        print(f"| paced | 100/s | {paced:.1f} | {paced / 100:.3f} of the limit (target 0.95–1.05) |")
        print(f"| free | none | {free:.1f} | {free / published:.3f} of the publish rate |")
        print(f"| bounded | 2 in flight, 50 ms each | {bounded:.1f} | {bounded / 40:.3f} of 40/s; most at once {most} (≤ 2) |")
        print(f"paced backlog at the end: {backlog}; the bounded receiver busy {busy / (end - start) / 2:.2f} of its two places")
        print(json.dumps({"published_per_s": round(published, 1), "paced_per_s": round(paced, 1),
                          "free_per_s": round(free, 1), "bounded_per_s": round(bounded, 1), "most_in_flight": most,
                          "paced_backlog": backlog}))
        ok = 95 <= paced <= 105 and most <= 2
        sys.exit(0 if ok else 1)
    finally:
        dev.terminate()
        dev.wait(10)
        log.close()


if __name__ == "__main__":
    main()
