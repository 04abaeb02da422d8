"""hookflow dev: bytes of store per event.

N events with a 2 KiB JSON body through a one-step async flow to a receiver
on loopback answering 200, one at a time; then the database checkpointed
and vacuumed, and its size divided by N. Bytes do not depend on the build
(debug or release).

    python3 bench/store_per_event.py BINARY N
"""
import http.server
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    binary, n = sys.argv[1], int(sys.argv[2])
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/flows")
        with open(f"{root}/flows/f.yaml", "w") as f:
            f.write(
                "id: f\ntenant: t\ntrigger: { type: webhook, path: p }\nsteps:\n"
                f'  - {{ id: s, type: http, url: "http://127.0.0.1:{receiver.server_address[1]}/in",'
                ' body: { json: { n: "{{ trigger.body.n }}" } } }\n'
            )
        port = free_port()
        dev = subprocess.Popen(
            [binary, "dev", "--flows", f"{root}/flows", "--data", f"{root}/data",
             "--listen", f"127.0.0.1:{port}", "--allow-private-targets", "127.0.0.0/8"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        sys.exit("hookflow dev did not listen within 30 s")
                    time.sleep(0.1)
            pad = "x" * 2048
            for i in range(n):
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/hooks/t/p", data=json.dumps({"n": i, "pad": pad}).encode(),
                    headers={"content-type": "application/json"})
                urllib.request.urlopen(req, timeout=10).read()
            time.sleep(3)  # the deliveries, then their jobs deleted
        finally:
            dev.terminate()
            dev.wait(timeout=30)
        db = sqlite3.connect(f"{root}/data/hookflow.db")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("VACUUM")
        db.close()
        size = os.path.getsize(f"{root}/data/hookflow.db")
    print(f"{os.path.basename(binary)}: {n} events, {size / 1024:.0f} KiB, {size / n / 1024:.2f} KiB an event")


if __name__ == "__main__":
    main()
