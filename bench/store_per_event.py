"""hookflow dev: bytes of store per event: N events with a 2 KiB JSON body through a
one-step async flow to a receiver answering 200, then the database's size
(after a truncating checkpoint) per event. Usage: python3 bench/store_per_event.py BINARY N"""
import http.server, json, os, shutil, sqlite3, subprocess, sys, threading, time, urllib.request
binary, n = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0))); self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H); threading.Thread(target=srv.serve_forever, daemon=True).start()
root = "/tmp/bodysize"; shutil.rmtree(root, ignore_errors=True); os.makedirs(root + "/flows")
open(root + "/flows/f.yaml", "w").write(f"""id: f
tenant: t
trigger: {{ type: webhook, path: p }}
steps:
  - {{ id: s, type: http, url: "http://127.0.0.1:{srv.server_address[1]}/in", body: {{ json: {{ n: "{{{{ trigger.body.n }}}}" }} }} }}
""")
p = subprocess.Popen([binary, "dev", "--flows", root + "/flows", "--data", root + "/data", "--listen", "127.0.0.1:18941",
                      "--allow-private-targets", "127.0.0.0/8"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1.5)
pad = "x" * 2048
for i in range(n):
    body = json.dumps({"n": i, "pad": pad}).encode()
    urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:18941/hooks/t/p", data=body, headers={"content-type": "application/json"}), timeout=10).read()
time.sleep(3)
p.terminate(); p.wait()
c = sqlite3.connect(root + "/data/hookflow.db"); c.execute("PRAGMA wal_checkpoint(TRUNCATE)"); c.execute("VACUUM"); c.close()
size = os.path.getsize(root + "/data/hookflow.db")
print(f"{os.path.basename(binary)}: {n} events, {size/1024:.0f} KiB, {size/n/1024:.2f} KiB an event")
