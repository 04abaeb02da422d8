"""The console overview's read on `hookflow dev`: `GET /v1/stats` over a
store holding N log entries (default 100,000, planted straight into the
SQLite file), beside the read the overview made before it had a summary
(`GET /v1/logs?since=…&limit=10000`, every entry's detail) in the same
run. A fifth of the entries are rejected requests carrying 16 KiB of
control bytes, as the flood in issue 25 sent them.

    python3 bench/overview.py HOOKFLOW_BINARY [N]

Prints one line per read (median and p90 of REPEAT=15 calls, the answer's
size) and the ratio of the two medians; the target is the summary under
200 ms at 100,000 entries.
"""

import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TOKEN = "bench-admin-token-0123456789"
FLOW = """id: orders
tenant: acme
trigger: { type: webhook, path: orders }
steps:
  - { id: s, type: set, vars: { x: 1 } }
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, work, port):
    proc = subprocess.Popen([binary, "dev", "--flows", str(work / "flows"), "--data", str(work / "data"),
                             "--listen", f"127.0.0.1:{port}", "--admin-token", TOKEN],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("hookflow dev did not start")


def stop(proc):
    proc.terminate()
    proc.wait(10)


def plant(db, n, now):
    noise = "".join(chr(i % 31 + 1) for i in range(16 * 1024))
    rows = []
    for i in range(n // 5):
        at = now - 86_400_000 + i * (86_400_000 // (n // 5))
        event = f"evt_{i:08d}"
        rows += [
            (at, "inbound", "acme", "orders", f"run_{i:08d}", event, None, "accepted", "{}"),
            (at + 1, "inbound", "acme", "orders", None, f"evt_r{i:08d}", None, "rejected_401",
             json.dumps({"reason": "bad key", "request": {"body": noise}})),
            (at + 5, "attempt", "acme", "orders", f"run_{i:08d}", event, f"msg_{i}", "retry" if i % 7 == 0 else "success",
             json.dumps({"subscription_id": f"sub_{i % 11}"} if i % 7 == 0 else {})),
            (at + 40 + i % 200, "attempt", "acme", "orders", f"run_{i:08d}", event, f"msg_{i}", "success", "{}"),
            (at + 300, "run", "acme", "orders", f"run_{i:08d}", event, None, "succeeded", "{}"),
        ]
    with sqlite3.connect(db) as c:
        c.executemany("INSERT INTO log (at, kind, tenant, flow_id, run_id, event_id, delivery_id, outcome, detail) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def timed(port, path, repeat):
    took, size = [], 0
    for _ in range(repeat):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"authorization": f"Bearer {TOKEN}"})
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=120) as r:
            size = len(r.read())
        took.append((time.perf_counter() - t) * 1000)
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.9) - 1], size


def main():
    binary, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    repeat = int(os.environ.get("REPEAT", "15"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "flows").mkdir()
        (work / "flows" / "orders.yaml").write_text(FLOW)
        port = free_port()
        stop(start(binary, work, port))  # makes the store
        now = int(time.time() * 1000)
        db = next((work / "data").glob("*.db"))
        planted = plant(db, n, now)
        proc = start(binary, work, port)
        try:
            since = now - 86_400_000
            reads = {
                "summary (GET /v1/stats, the day in hours)": f"/v1/stats?since={since}&until={now + 1}&bucket=3600000",
                "entries (GET /v1/logs?limit=10000, the read before)": f"/v1/logs?since={since}&limit=10000",
            }
            got = {}
            for name, path in reads.items():
                got[name] = timed(port, path, repeat)
                med, p90, size = got[name]
                print(f"{name}: median {med:.1f} ms, p90 {p90:.1f} ms, {size:,} bytes answered")
            (s, _, _), (e, _, _) = got.values()
            print(f"{planted:,} entries planted; summary / entries read = {s / e:.3f} (target: summary under 200 ms)")
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
