"""Init time of Lambda binaries: from process start to the first
`GET /2018-06-01/runtime/invocation/next`, under a Lambda Runtime API
emulator on loopback. Median of N starts per binary, beside a hello-world
`lambda_runtime` binary. Used by `scripts/bench lambda`.

    python3 bench/init_time.py N BIN [BIN...]     (the first BIN is the baseline)
"""

import http.server
import os
import statistics
import subprocess
import sys
import threading
import time

arrived = threading.Event()
arrival = [0.0]


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/2018-06-01/runtime/invocation/next"):
            arrival[0] = time.monotonic()
            arrived.set()
            time.sleep(5)  # hold the long poll; the process is killed
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]

env = dict(
    os.environ,
    AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}",
    AWS_LAMBDA_FUNCTION_NAME="bench",
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
    AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
    AWS_LAMBDA_LOG_STREAM_NAME="bench",
    AWS_LAMBDA_LOG_GROUP_NAME="bench",
    AWS_REGION="us-east-1",
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_ENDPOINT_URL="http://127.0.0.1:9",
    HOOKFLOW_TABLE="bench-table",
    HOOKFLOW_RUNS_QUEUE_URL="http://127.0.0.1:9/q/runs",
    HOOKFLOW_DELIVERIES_QUEUE_URL="http://127.0.0.1:9/q/deliveries",
)


def once(binary):
    arrived.clear()
    start = time.monotonic()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not arrived.wait(10):
            raise SystemExit(f"{binary} never asked for an invocation")
        return (arrival[0] - start) * 1000
    finally:
        p.kill()
        p.wait()


n = int(sys.argv[1])
binaries = sys.argv[2:]
medians = {}
for b in binaries:
    once(b)  # warm the page cache
    medians[b] = statistics.median(once(b) for _ in range(n))
base = medians[binaries[0]]
print(f"\ninit time (process start -> first invocation/next), median of {n} starts\n")
print("| binary | median (ms) | ratio to hello-world |")
print("|---|---|---|")
for b, m in medians.items():
    print(f"| {os.path.basename(b)} | {m:.2f} | {m / base:.2f} |")
