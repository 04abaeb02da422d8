"""The console's live tail under load: `hookflow dev` with its console,
a light flow driven at a fixed rate by `hookflow-bench load`, and one
client reading `/console/log/stream` as the page does (server-sent
events). The baseline is the same tail at a rate a person can read (10
requests/s), measured in the same run.

    python3 bench/tail.py HOOKFLOW HOOKFLOW_BENCH [RATE] [SECONDS]

Reports, for each rate: entries stored in the interval (the API's count
after the starting cursor) against entries the tail counted (they should
be equal: the tail reads after the store's `seq`), pushes a second, rows
pushed, bytes pushed a second, and the lag from an entry's time to its
push reaching the client (p50, p99 of each push's newest row).
"""

import html
import json
import pathlib
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HOOKFLOW, BENCH = sys.argv[1], sys.argv[2]
RATE = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
SECONDS = int(sys.argv[4]) if len(sys.argv) > 4 else 10
TOKEN = "bench-admin-token-0123"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{what} exited")
            time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


class Client:
    """The page's side: signed in with the admin token, reading the stream."""

    def __init__(self, base):
        self.base = base
        req = urllib.request.Request(f"{base}/console/login", data=f"token={TOKEN}".encode(), method="POST")

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(req, timeout=5)
        except urllib.error.HTTPError as e:  # the 303 to /console
            self.cookie = e.headers["set-cookie"].split(";")[0]
        self.pushes = []  # (received_ms, count, rows, newest_row_ms, bytes)
        self.stop = threading.Event()

    def get(self, path):
        req = urllib.request.Request(self.base + path, headers={"cookie": self.cookie})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    def follow(self):
        page = self.get("/console/log")
        stream = html.unescape(re.search(r'data-stream="([^"]+)"', page).group(1))
        start = re.search(r"after=(s\d+|t\d+)", stream).group(1)
        req = urllib.request.Request(self.base + stream, headers={"cookie": self.cookie})
        resp = urllib.request.urlopen(req, timeout=SECONDS + 30)

        def read():
            data = b""
            for line in resp:
                if self.stop.is_set():
                    break
                if line.startswith(b"data:"):
                    data = line[5:].strip()
                elif line.strip() == b"" and data:
                    batch = json.loads(data)
                    times = [t for row in batch["rows"] for t in re.findall(r'datetime="([^"]+)"', row)]
                    newest = max(map(to_ms, times)) if times else None
                    self.pushes.append((time.time() * 1000, batch["count"], len(batch["rows"]), newest, len(data)))
                    data = b""

        threading.Thread(target=read, daemon=True).start()
        return start


def to_ms(rfc3339):
    import datetime
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, (len(xs) * p + 99) // 100 - 1))] if xs else float("nan")


def measure(rate, seconds):
    work = pathlib.Path(tempfile.mkdtemp())
    (work / "flows").mkdir()
    receiver_port, dev_port, console_port = free_port(), free_port(), free_port()
    (work / "flows" / "bench.yaml").write_text(f"""
id: bench
tenant: bench
trigger: {{ type: webhook, path: in }}
steps:
  - id: deliver
    type: http
    url: http://127.0.0.1:{receiver_port}/hook
    body: {{ json: {{ n: "{{{{ trigger.body.n }}}}" }} }}
    wait_for_response: false
""")
    procs = [subprocess.Popen([BENCH, "receiver", "--listen", f"127.0.0.1:{receiver_port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs.append(subprocess.Popen(
        [HOOKFLOW, "dev", "--flows", str(work / "flows"), "--listen", f"127.0.0.1:{dev_port}",
         "--data", str(work / "data"), "--admin-token", TOKEN, "--console", f"127.0.0.1:{console_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        wait_port(receiver_port, procs[0], "the receiver")
        wait_port(dev_port, procs[1], "hookflow dev")
        wait_port(console_port, procs[1], "the console")
        client = Client(f"http://127.0.0.1:{console_port}")
        start = client.follow()
        time.sleep(0.5)
        began = time.time()
        subprocess.run([BENCH, "load", "--url", f"http://127.0.0.1:{dev_port}/hooks/bench/in",
                        "--requests", str(rate * seconds), "--concurrency", "64", "--rate", str(rate)],
                       check=True, stdout=subprocess.DEVNULL, timeout=seconds * 3 + 30)
        # Until the log is quiet (deliveries land after their requests).
        quiet = time.time()
        while time.time() - quiet < 1.5:
            n = len(client.pushes)
            time.sleep(0.5)
            if len(client.pushes) != n:
                quiet = time.time()
        elapsed = time.time() - began
        client.stop.set()
        after = start[1:] if start.startswith("s") else "0"
        req = urllib.request.Request(f"http://127.0.0.1:{dev_port}/v1/logs?since=0&after_seq={after}&limit=1",
                                     headers={"authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            stored = json.loads(r.read())["count"]
        pushes = client.pushes
        counted = sum(p[1] for p in pushes)
        lags = [p[0] - p[3] for p in pushes if p[3] is not None]
        return {
            "rate": rate, "stored": stored, "counted": counted,
            "pushes/s": len(pushes) / elapsed, "rows": sum(p[2] for p in pushes),
            "KB pushed/s": sum(p[4] for p in pushes) / elapsed / 1000,
            "lag p50 ms": pct(lags, 50), "lag p99 ms": pct(lags, 99),
        }
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


base = measure(10, SECONDS)
load = measure(RATE, SECONDS)
print(f"\nThe live tail: {SECONDS} s of requests at 10/s (baseline) and {RATE}/s, one client on the stream\n")
print(f"| measure | 10/s | {RATE}/s | ratio |")
print("|---|---|---|---|")
for k in ("stored", "counted", "pushes/s", "rows", "KB pushed/s", "lag p50 ms", "lag p99 ms"):
    b, l = base[k], load[k]
    print(f"| {k} | {b:.1f} | {l:.1f} | {l / b if b else 0:.2f} |")
for r in (base, load):
    print(f"at {r['rate']}/s the tail counted {r['counted']} of {r['stored']} entries stored "
          f"({r['counted'] / r['stored'] if r['stored'] else 0:.3f})")
