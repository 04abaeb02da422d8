"""End to end: the real `hookflow dev` process against real HTTP receivers on
127.0.0.1. Nothing of Hookflow is mocked; the receivers are plain Python
HTTP servers whose answers each test scripts.
"""

import json
import os
import pathlib
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = "tok-very-secret-4711"
INBOUND_KEY = "inbound-key-0815"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A loopback HTTP server. `script` is a list of (status, headers, body,
    delay) answers, used in order; the last repeats."""

    def __init__(self, script=((200, {}, b'{"id": "r-1"}', 0),), handler=None):
        self.script = list(script)
        # handler(request, n) -> (status, headers, body, delay) answers
        # instead of the script when given.
        self.handler = handler
        self.requests = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.requests.append(
                        {"at": time.monotonic(), "method": self.command, "path": self.path,
                         "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                    )
                    n = len(receiver.requests)
                    req = receiver.requests[-1]
                if receiver.handler:
                    status, headers, out, delay = receiver.handler(req, n)
                else:
                    status, headers, out, delay = receiver.script[min(n, len(receiver.script)) - 1]
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = do_GET = do_PUT = handle_any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"expected {n} requests, got {len(self.requests)}")

    def close(self):
        self.server.shutdown()


class Dev:
    """A running `hookflow dev` with the given flows."""

    def __init__(self, binary, tmp, flows, args=()):
        self.dir = tmp / "flows"
        self.dir.mkdir()
        for name, text in flows.items():
            (self.dir / name).write_text(text)
        secrets = tmp / "secrets.json"
        secrets.write_text(json.dumps({"signing": SIGNING, "token": TOKEN, "inbound_key": INBOUND_KEY}))
        secrets.chmod(0o600)
        self.data = tmp / "data"
        self.port = free_port()
        self.out = open(tmp / "stdout.log", "w+")
        self.proc = subprocess.Popen(
            [binary, "dev", "--flows", str(self.dir), "--listen", f"127.0.0.1:{self.port}",
             "--data", str(self.data), "--secrets-file", str(secrets), *args],
            stdout=self.out, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError("hookflow dev exited: " + self.stdout())
                time.sleep(0.05)
        raise AssertionError("hookflow dev did not start")

    def call(self, path, body=None, headers=None, method="POST"):
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        h = {"content-type": "application/json", **(headers or {})}
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stdout(self):
        if not self.out.closed:
            self.out.flush()
        return pathlib.Path(self.out.name).read_text()

    def logs(self):
        return [json.loads(line) for line in self.stdout().splitlines() if line.startswith("{")]

    def wait_log(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.logs():
                if pred(line):
                    return line
            time.sleep(0.05)
        raise AssertionError("no matching log line in:\n" + self.stdout()[-4000:])

    def close(self):
        if self.out.closed:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.out.close()


@pytest.fixture
def dev(tmp_path):
    made = []

    def start(flows, *args):
        binary = os.environ["HOOKFLOW_BIN"]
        d = Dev(binary, tmp_path, flows, args)
        made.append(d)
        return d

    yield start
    for d in made:
        d.close()


@pytest.fixture
def receiver():
    made = []

    def start(*script):
        r = Receiver(script or ((200, {}, b'{"id": "r-1"}', 0),))
        made.append(r)
        return r

    yield start
    for r in made:
        r.close()


def async_flow(url, extra=""):
    return f"""
id: push
tenant: acme
trigger:
  type: webhook
  path: orders
  auth: {{ type: api_key, header: X-Api-Key, secret: inbound_key }}
sign: {{ secret: signing }}
steps:
  - id: send
    type: http
    url: {url}
    headers: {{ Authorization: "Bearer {{{{ secrets.token }}}}" }}
    body: {{ json: {{ order: "{{{{ trigger.body.id }}}}" }} }}
{extra}"""


AUTH = {"X-Api-Key": INBOUND_KEY}


def test_async_flow_delivers_a_signature_standardwebhooks_verifies(dev, receiver):
    r = receiver()
    d = dev({"push.yaml": async_flow(r.url())})
    status, _, body = d.call("/hooks/acme/orders", {"id": 42}, AUTH)
    assert status == 202
    event_id = json.loads(body)["event_id"]
    req = r.wait(1)[0]
    assert json.loads(req["body"]) == {"order": 42}
    assert req["headers"]["authorization"] == f"Bearer {TOKEN}"
    Webhook(SIGNING).verify(req["body"], req["headers"])
    d.wait_log(lambda l: l["message"] == "run finished" and l.get("event_id") == event_id)


def test_500_500_200_retries_twice_with_one_webhook_id(dev, receiver):
    r = receiver((500, {}, b"{}", 0), (500, {}, b"{}", 0), (200, {}, b"{}", 0))
    d = dev({"push.yaml": async_flow(r.url(), "    retry: { schedule: [100ms, 100ms, 100ms] }")})
    assert d.call("/hooks/acme/orders", {"id": 1}, AUTH)[0] == 202
    reqs = r.wait(3)
    ids = {q["headers"]["webhook-id"] for q in reqs}
    assert len(ids) == 1
    d.wait_log(lambda l: l["message"] == "delivered" and l["attempt"] == 3)
    time.sleep(0.3)
    assert len(r.requests) == 3


def test_400_halts_and_the_run_fails_with_the_reason(dev, receiver):
    r = receiver((400, {}, b'{"error": "bad"}', 0))
    d = dev({"push.yaml": async_flow(r.url())})
    d.call("/hooks/acme/orders", {"id": 1}, AUTH)
    dead = d.wait_log(lambda l: l["message"] == "delivery dead")
    assert dead["reason"] == "status 400 halts the step"
    run = d.wait_log(lambda l: l["message"] == "run finished")
    assert run["status"] == {"state": "failed", "step": "send", "reason": "status 400 halts the step"}
    assert len(r.requests) == 1


def test_429_retry_after_is_honoured(dev, receiver):
    r = receiver((429, {"Retry-After": "2"}, b"{}", 0), (200, {}, b"{}", 0))
    d = dev({"push.yaml": async_flow(r.url(), "    retry: { schedule: [100ms], max_delay: 1m }")})
    d.call("/hooks/acme/orders", {"id": 1}, AUTH)
    first, second = r.wait(2, timeout=15)
    assert second["at"] - first["at"] >= 2.0


def test_a_timeout_is_retried(dev, receiver):
    r = receiver((200, {}, b"{}", 2.0), (200, {}, b"{}", 0))
    d = dev({"push.yaml": async_flow(r.url(), "    timeout: 300ms\n    retry: { schedule: [100ms] }")})
    d.call("/hooks/acme/orders", {"id": 1}, AUTH)
    reqs = r.wait(2)
    assert reqs[0]["headers"]["webhook-id"] == reqs[1]["headers"]["webhook-id"]
    line = d.wait_log(lambda l: l.get("error_class") == "timeout")
    assert line["attempt"] == 1
    d.wait_log(lambda l: l["message"] == "delivered")


def test_ssrf_targets_are_refused_and_logged(dev):
    d = dev({"push.yaml": async_flow("http://169.254.169.254/latest/meta-data")})
    d.call("/hooks/acme/orders", {"id": 1}, AUTH)
    dead = d.wait_log(lambda l: l["message"] == "delivery dead")
    assert dead["error_class"] == "ssrf"
    assert "metadata" in dead["reason"]


def test_sync_flow_answers_from_a_request_response_step(dev, receiver):
    r = receiver((200, {}, b'{"id": "p-9", "price": 12.5}', 0))
    notify = receiver()
    flow = f"""
id: quote
tenant: acme
trigger: {{ type: webhook, path: quote, respond: {{ mode: sync, timeout: 5s }} }}
steps:
  - id: sync
    type: http
    url: {r.url("/price")}
    body: {{ json: {{ sku: "{{{{ trigger.body.sku }}}}" }} }}
  - id: notify
    type: http
    url: {notify.url("/notify")}
    body: {{ json: {{ ref: "{{{{ steps.sync.response.body.id }}}}" }} }}
  - id: answer
    type: respond
    status: "{{{{ 201 if steps.sync.response.body.price > 10 else 200 }}}}"
    body: {{ json: {{ price: "{{{{ steps.sync.response.body.price }}}}" }} }}
"""
    d = dev({"quote.yaml": flow})
    status, headers, body = d.call("/hooks/acme/quote", {"sku": "A-1"})
    assert status == 201, body
    assert json.loads(body) == {"price": 12.5}
    assert json.loads(notify.wait(1)[0]["body"]) == {"ref": "p-9"}


@pytest.mark.parametrize(
    "status,call",
    [
        (404, lambda d: d.call("/hooks/acme/nowhere", {})),
        (404, lambda d: d.call("/hooks/other-tenant/orders", {})),
        (405, lambda d: d.call("/hooks/acme/orders", None, method="GET")),
        (401, lambda d: d.call("/hooks/acme/orders", {"id": 1}, {"X-Api-Key": "wrong"})),
        (403, lambda d: d.call("/hooks/acme/guarded", {"id": 1})),
        (413, lambda d: d.call("/hooks/acme/orders", {"x": "y" * 300_000}, AUTH)),
        (415, lambda d: d.call("/hooks/acme/orders", b"\x00\x01", {**AUTH, "content-type": "application/octet-stream"})),
    ],
)
def test_inbound_rejections_answer_and_log_their_reason(dev, receiver, status, call):
    r = receiver()
    guarded = """
id: guarded
tenant: acme
trigger: { type: webhook, path: guarded, ip_allowlist: [203.0.113.0/24] }
steps:
  - { id: s, type: set, vars: { x: 1 } }
"""
    d = dev({"push.yaml": async_flow(r.url()), "guarded.yaml": guarded})
    got, headers, body = call(d)
    assert got == status, body
    if status == 405:
        assert headers.get("allow") == "POST" or headers.get("Allow") == "POST"
    line = d.wait_log(lambda l: l["message"] == "inbound rejected" and l["status"] == status)
    assert line["reason"]
    assert json.loads(body)["event_id"] == line["event_id"]
    assert r.requests == []


def test_a_duplicate_idempotency_key_starts_one_run(dev, receiver):
    r = receiver()
    flow = async_flow(r.url()).replace(
        "  auth: { type: api_key", "  idempotency: { header: X-Event-Id }\n  auth: { type: api_key"
    )
    d = dev({"push.yaml": flow})
    first = d.call("/hooks/acme/orders", {"id": 1}, {**AUTH, "X-Event-Id": "e-1"})
    second = d.call("/hooks/acme/orders", {"id": 1}, {**AUTH, "X-Event-Id": "e-1"})
    assert first[0] == second[0] == 202
    assert first[2] == second[2]
    r.wait(1)
    d.wait_log(lambda l: l["message"] == "inbound accepted")
    time.sleep(0.5)  # no second run: nothing more arrives or is logged
    assert len(r.requests) == 1
    assert sum(1 for l in d.logs() if l["message"] == "inbound accepted") == 1


def test_concurrent_requests_with_one_key_start_one_run(dev, receiver):
    import concurrent.futures
    r = receiver()
    flow = async_flow(r.url()).replace(
        "  auth: { type: api_key", "  idempotency: { header: X-Event-Id }\n  auth: { type: api_key"
    )
    d = dev({"push.yaml": flow})
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(
            lambda _: d.call("/hooks/acme/orders", {"id": 1}, {**AUTH, "X-Event-Id": "e-race"}), range(16)))
    # The first is accepted; the others are told it is in progress (409) or
    # get its answer (202, the same event id).
    assert {a[0] for a in answers} <= {202, 409}, [a[0] for a in answers]
    accepted = {json.loads(a[2])["event_id"] for a in answers if a[0] == 202}
    assert len(accepted) == 1, accepted
    r.wait(1)
    d.wait_log(lambda l: l["message"] == "inbound accepted")
    time.sleep(0.5)  # no second run: nothing more arrives or is logged
    assert len(r.requests) == 1
    assert sum(1 for l in d.logs() if l["message"] == "inbound accepted") == 1


def slow_keyed_flow(url, timeout):
    """A sync flow with an idempotency key whose step calls `url`."""
    return f"""
id: slow
tenant: acme
trigger:
  type: webhook
  path: slow
  idempotency: {{ header: X-Event-Id }}
  respond: {{ mode: sync, timeout: {timeout} }}
steps:
  - {{ id: call, type: http, url: "{url}" }}
  - {{ id: answer, type: respond, status: 200 }}
"""


def test_a_sync_answer_of_504_is_kept_for_its_idempotency_key(dev, receiver):
    slow = receiver((200, {}, b"{}", 1.0))
    d = dev({"slow.yaml": slow_keyed_flow(slow.url(), "300ms")})
    first = d.call("/hooks/acme/slow", {}, {"X-Event-Id": "e-slow"})
    assert first[0] == 504
    second = d.call("/hooks/acme/slow", {}, {"X-Event-Id": "e-slow"})
    assert second[0] == 504, second
    assert json.loads(second[2])["event_id"] == json.loads(first[2])["event_id"], "the same run's answer"
    slow.wait(1)
    time.sleep(1.5)  # and no second call
    assert len(slow.requests) == 1, "one run, one call"


def test_a_caller_that_hangs_up_keeps_its_key_and_its_retry_starts_no_second_run(dev, receiver):
    slow = receiver((200, {}, b"{}", 1.0))
    d = dev({"slow.yaml": slow_keyed_flow(slow.url(), "5s")})
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    s.sendall(b"POST /hooks/acme/slow HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
              b"x-event-id: e-gone\r\ncontent-length: 2\r\n\r\n{}")
    slow.wait(1)  # the run's step is at the receiver, held 1 s: the flow runs
    s.close()  # the caller gives up while the flow runs
    # 409 while the first request holds the key; then its answer, kept under it.
    deadline = time.monotonic() + 15
    while (status := d.call("/hooks/acme/slow", {}, {"X-Event-Id": "e-gone"})[0]) == 409:
        assert time.monotonic() < deadline, "the key is still held"
        time.sleep(0.1)
    assert status == 200, "the first run's answer, kept under the key"
    time.sleep(0.5)
    assert len(slow.requests) == 1, "one run, one call"


def test_secret_values_never_reach_stdout_or_the_store(dev, receiver):
    r = receiver((500, {}, b"{}", 0), (200, {}, b"{}", 0))
    d = dev({"push.yaml": async_flow(r.url(), "    retry: { schedule: [100ms] }")})
    d.call("/hooks/acme/orders", {"id": 1}, AUTH)
    d.wait_log(lambda l: l["message"] == "run finished")
    # The receiver did get the secret: the scan below is not vacuous.
    assert r.requests[0]["headers"]["authorization"] == f"Bearer {TOKEN}"
    d.close()
    stored = b"".join(p.read_bytes() for p in d.data.iterdir() if p.is_file())
    assert stored, "the store is empty"
    for secret in (TOKEN, SIGNING, INBOUND_KEY):
        assert secret not in d.stdout()
        assert secret.encode() not in stored


def test_an_invalid_flow_stops_the_start_with_its_position(tmp_path):
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "bad.yaml").write_text("id: bad\ntenant: acme\ntrigger: { type: webhook, path: 'a b' }\nsteps: []\n")
    out = subprocess.run(
        [os.environ["HOOKFLOW_BIN"], "dev", "--flows", str(flows), "--listen", "127.0.0.1:0", "--data", str(tmp_path / "d")],
        capture_output=True, timeout=30,
    )
    assert out.returncode == 1
    err = out.stderr.decode()
    assert "bad.yaml:3:" in err and "trigger.path" in err
    assert "not starting" in err


def test_a_secret_sent_to_a_host_from_data_is_warned_about_and_refused_elsewhere(dev, receiver, tmp_path):
    r = receiver()
    flow = async_flow('"http://{{ trigger.body.host }}/x"')
    # `hookflow validate` warns: the caller picks the host the token goes to.
    (tmp_path / "open.yaml").write_text(flow)
    out = subprocess.run([os.environ["HOOKFLOW_BIN"], "validate", str(tmp_path / "open.yaml")],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out
    text = out.stdout.decode()
    assert "warning: " in text and "open.yaml:" in text and "steps[0].url" in text and "`token`" in text, text
    # Bound to the receiver's address, the token goes there and nowhere else.
    bound = flow.replace("steps:\n", "secrets:\n  token: { hosts: [127.0.0.1] }\nsteps:\n", 1)
    d = dev({"push.yaml": bound})
    port = r.port
    assert d.call("/hooks/acme/orders", {"id": 1, "host": f"127.0.0.1:{port}"}, AUTH)[0] == 202
    assert r.wait(1)[0]["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert d.call("/hooks/acme/orders", {"id": 2, "host": f"localhost:{port}"}, AUTH)[0] == 202
    dead = d.wait_log(lambda l: l["message"] == "delivery dead")
    assert "may be sent only to 127.0.0.1, not to localhost" in dead["reason"], dead
    time.sleep(0.3)
    assert len(r.requests) == 1


def test_a_second_dev_on_the_same_data_directory_refuses_and_the_store_is_owner_only(dev, tmp_path):
    """Two processes on one data directory would release each other's leases
    and send in-flight work twice: the second refuses, naming the directory.
    The directory and the database (subscriptions' signing keys) are
    owner-only."""
    first = dev({"a.yaml": async_flow("http://127.0.0.1:9/x")})
    assert first.call("/hooks/acme/orders", {"id": 1}, AUTH)[0] == 202
    second = subprocess.run(
        [os.environ["HOOKFLOW_BIN"], "dev", "--flows", str(first.dir), "--listen", "127.0.0.1:0",
         "--data", str(first.data)],
        capture_output=True, timeout=30,
    )
    err = second.stderr.decode()
    assert second.returncode != 0, err
    assert "another hookflow dev is using the data directory" in err and str(first.data) in err, err
    mode = lambda p: os.stat(p).st_mode & 0o777  # noqa: E731
    assert mode(first.data) == 0o700
    for name in ("hookflow.db", "hookflow.db-wal"):
        if (first.data / name).exists():
            assert mode(first.data / name) == 0o600, name


def test_an_empty_flow_directory_starts_with_a_warning(tmp_path):
    """Someone using only subscriptions and events has no flow to give."""
    flows = tmp_path / "empty"
    flows.mkdir()
    port = free_port()
    out = open(tmp_path / "out.log", "w+")
    proc = subprocess.Popen(
        [os.environ["HOOKFLOW_BIN"], "dev", "--flows", str(flows), "--listen", f"127.0.0.1:{port}",
         "--data", str(tmp_path / "d"), "--admin-token", "hfa_test_token_0123"],
        stdout=out, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, pathlib.Path(out.name).read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "did not start"
                time.sleep(0.05)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/subscriptions",
                                     headers={"authorization": "Bearer hfa_test_token_0123"})
        assert urllib.request.urlopen(req, timeout=10).status == 200
    finally:
        proc.terminate()
        proc.wait(10)
        out.close()
    text = (tmp_path / "out.log").read_text()
    assert "warning: no flow files" in text and str(flows) in text, text


class ChaosReceiver(Receiver):
    """Fails ~30% of attempts at random: 500s, connection resets and answers
    slower than the sender's timeout. Counts, per webhook-id, the attempts it
    answered 200."""

    def __init__(self, seed=7):
        import random

        super().__init__()
        self.rng = random.Random(seed)
        self.delivered = {}
        self.seen_ids = []
        receiver = self
        base = self.server.RequestHandlerClass

        class Chaos(base):
            def handle_any(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                wid = self.headers.get("webhook-id")
                with receiver.lock:
                    roll = receiver.rng.random()
                    receiver.seen_ids.append(wid)
                if roll < 0.15:
                    self.send_response(500)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if roll < 0.225:
                    import struct

                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if roll < 0.30:
                    time.sleep(0.5)
                with receiver.lock:
                    receiver.delivered.setdefault(wid, json.loads(body)["n"])
                try:
                    self.send_response(200)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass

            do_POST = handle_any

        self.server.RequestHandlerClass = Chaos


def chaos_flow(url):
    return f"""
id: chaos
tenant: acme
trigger: {{ type: webhook, path: chaos }}
sign: {{ secret: signing }}
steps:
  - id: send
    type: http
    url: {url}
    body: {{ json: {{ n: "{{{{ trigger.body.n }}}}" }} }}
    timeout: 200ms
    retry: {{ max_attempts: 40, schedule: [20ms, 50ms, 100ms] }}
"""


def test_chaos_2000_events_to_a_receiver_failing_30_percent_all_arrive(dev):
    r = ChaosReceiver()
    try:
        d = dev({"chaos.yaml": chaos_flow(r.url())})
        for n in range(2000):
            assert d.call("/hooks/acme/chaos", {"n": n})[0] == 202
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(r.delivered) < 2000:
            time.sleep(0.1)
        # Every event arrived (answered 200), each under its own webhook-id.
        assert sorted(r.delivered.values()) == list(range(2000))
        assert len(r.delivered) == 2000
        # Every repeat carried an id seen before: retries, never new ids.
        first_seen = set()
        for wid in r.seen_ids:
            first_seen.add(wid)
        assert first_seen == set(r.delivered)
        assert len(r.seen_ids) > 2000  # failures happened and were retried
        assert not [l for l in d.logs() if l["message"] == "delivery dead"]
    finally:
        r.close()


def test_crash_sigkill_three_times_loses_no_accepted_event(tmp_path):
    """1,000 events sent while `hookflow dev` is SIGKILLed three times: each
    kill lands with accepted events not yet delivered (asserted: the
    receiver holds each request 0.5 s, so 64 workers deliver ~128 a second,
    behind the sender), and every accepted event arrives after the
    restarts."""
    import signal

    r = Receiver(((200, {}, b"{}", 0.5),))
    binary = os.environ["HOOKFLOW_BIN"]
    flow = f"""
id: crash
tenant: acme
trigger: {{ type: webhook, path: crash }}
steps:
  - id: send
    type: http
    url: {r.url()}
    body: {{ json: {{ n: "{{{{ trigger.body.n }}}}" }} }}
    retry: {{ schedule: [50ms] , max_attempts: 50 }}
"""
    d = Dev(binary, tmp_path, {"crash.yaml": flow})
    accepted = set()
    accepted_lock = threading.Lock()
    stop = threading.Event()

    def send_all():
        for n in range(1000):
            while not stop.is_set():
                try:
                    status, _, _ = d.call("/hooks/acme/crash", {"n": n})
                except OSError:
                    time.sleep(0.02)
                    continue
                if status == 202:
                    with accepted_lock:
                        accepted.add(n)
                    break
                time.sleep(0.02)

    sender = threading.Thread(target=send_all)
    sender.start()
    in_flight = []  # at each kill: accepted, not yet delivered
    try:
        for _ in range(3):
            time.sleep(0.7)
            with accepted_lock:
                taken = set(accepted)
            with r.lock:
                arrived = {json.loads(q["body"])["n"] for q in r.requests}
            in_flight.append(taken - arrived)
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait(5)
            d.proc = subprocess.Popen(d.proc.args, stdout=d.out, stderr=subprocess.STDOUT)
        sender.join(120)
        assert not sender.is_alive()
        deadline = time.monotonic() + 60
        delivered = set()
        while time.monotonic() < deadline:
            with r.lock:
                delivered = {json.loads(q["body"])["n"] for q in r.requests}
            if accepted <= delivered:
                break
            time.sleep(0.1)
        assert len(accepted) == 1000
        missing = accepted - delivered
        assert not missing, f"{len(missing)} accepted events were never delivered: {sorted(missing)[:20]}"
        assert all(in_flight), f"a kill landed with nothing in flight: {[len(f) for f in in_flight]}"
        print(f"in flight at each kill: {[len(f) for f in in_flight]}, all delivered after")
    finally:
        stop.set()
        d.close()
        r.close()


def test_an_empty_flows_directory_says_how_to_add_one(dev):
    d = dev({})
    deadline = time.monotonic() + 10
    while "listening on" not in d.stdout():
        assert time.monotonic() < deadline, d.stdout()
        time.sleep(0.05)
    banner = next(l for l in d.stdout().splitlines() if "listening on" in l)
    assert "no flows yet: add a flow file" in banner and "triggers:" not in banner, banner


def test_logs_runs_and_dead_replay_from_the_cli(dev, receiver):
    r = receiver((400, {}, b'{"error": "not yet"}', 0), (200, {}, b"{}", 0))
    d = dev({"push.yaml": async_flow(r.url())})
    d.call("/hooks/acme/orders", {"id": 7}, AUTH)
    dead = d.wait_log(lambda l: l["message"] == "delivery dead")
    binary = os.environ["HOOKFLOW_BIN"]

    def cli(*args):
        out = subprocess.run([binary, *args, "--data", str(d.data)], capture_output=True, timeout=30)
        return out.returncode, out.stdout.decode(), out.stderr.decode()

    code, out, _ = cli("dead", "list", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [x["delivery_id"] for x in listed] == [dead["delivery_id"]]
    assert listed[0]["reason"] == "status 400 halts the step"

    code, out, _ = cli("logs", "--status", "failed", "--flow", "push")
    assert code == 0 and "halt" in out and "400" in out, out
    # The run id as `runs show` takes it: whole.
    assert dead["run_id"] in out, out

    code, out, _ = cli("runs", "show", dead["run_id"])
    assert code == 0
    # What happened first, as the console's run page says it; then the
    # timeline, oldest first.
    said = out.splitlines()[1]
    assert said == "Failed at step send: after 1 attempt: status 400 halts the step", out
    assert "attempt 1" in out and "400" in out, out
    times = [l.split()[0] for l in out.splitlines()[2:]]
    assert times == sorted(times), out

    # Listings go newest first, as the console; --reverse oldest first.
    code, out, _ = cli("logs")
    newest = [l.split()[0] for l in out.splitlines()]
    assert code == 0 and newest == sorted(newest, reverse=True) and len(newest) >= 4, out
    code, out, _ = cli("logs", "--reverse")
    oldest = [l.split()[0] for l in out.splitlines()]
    assert code == 0 and oldest == sorted(oldest) and len(oldest) >= 4, out

    # A reader that went away (`| head`): the command ends quietly, 0.
    closed = subprocess.Popen([binary, "logs", "--data", str(d.data)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    closed.stdout.close()
    assert closed.wait(timeout=30) == 0
    assert b"panicked" not in closed.stderr.read()

    code, _, err = cli("dead", "replay", "nosuch")
    assert code == 1 and "no dead delivery nosuch" in err, err
    # --wait follows the replay to its end and says it.
    code, out, err = cli("dead", "replay", "--all", "--wait", "20s")
    assert code == 0, err
    assert out.split() == [dead["delivery_id"], "run", dead["run_id"], "delivered", "200"], out
    second = r.wait(2)[1]
    assert second["headers"]["webhook-id"] == dead["delivery_id"]
    d.wait_log(lambda l: l["message"] == "delivered")
    code, out, _ = cli("dead", "list")
    assert out.strip() == ""
    code, out, _ = cli("dead", "list", "--json")
    assert json.loads(out) == []
    code, _, err = cli("dead", "replay", "--all")
    assert code == 0 and "no dead deliveries" in err, err


def test_a_receiver_echoing_the_secrets_gets_none_of_them_stored(dev, receiver):
    # A debugging endpoint answering with what it was sent: the bearer
    # token in a header, and in the body verbatim and base64-encoded.
    import base64
    echo = json.dumps({"you_sent": f"Authorization: Bearer {TOKEN}",
                       "b64": base64.b64encode(TOKEN.encode()).decode()}).encode()
    r = receiver((400, {"x-echo": f"Bearer {TOKEN}"}, echo, 0))
    d = dev({"push.yaml": async_flow(r.url())})
    d.call("/hooks/acme/orders", {"id": 7}, AUTH)
    dead = d.wait_log(lambda l: l["message"] == "delivery dead")
    binary = os.environ["HOOKFLOW_BIN"]
    out = subprocess.run([binary, "runs", "show", dead["run_id"], "--json", "--data", str(d.data)],
                         capture_output=True, timeout=30).stdout.decode()
    assert "you_sent" in out and "Bearer ***" in out, out
    d.close()
    for f in (p for p in d.data.iterdir() if p.is_file()):
        stored = f.read_bytes()
        for leaked in (TOKEN, base64.b64encode(TOKEN.encode()).decode()):
            assert leaked.encode() not in stored, f"{leaked} is stored in {f.name}"


def test_an_encoded_slash_is_decoded_once(dev):
    # API Gateway's HTTP APIs decode the path before the ingress sees it, so
    # `%2F` is `/` on AWS; `hookflow dev` decodes once too. Twice-encoded
    # stays encoded and matches nothing.
    d = dev({"ab.yaml": "id: ab\ntenant: acme\ntrigger: { type: webhook, path: a/b, respond: { mode: sync } }\nsteps:\n  - { id: ok, type: respond, status: 200, body: { json: { ok: true } } }\n"})
    assert d.call("/hooks/acme/a/b", {})[0] == 200
    assert d.call("/hooks/acme/a%2Fb", {})[0] == 200
    assert d.call("/hooks/acme/a%252Fb", {})[0] == 404


def test_slow_clients_are_cut_off_and_their_connections_freed(dev):
    d = dev({"push.yaml": async_flow("http://127.0.0.1:9/x")}, "--read-timeout", "1s")

    def fds():
        return len(os.listdir(f"/proc/{d.proc.pid}/fd"))

    before = fds()
    # 300 clients trickling a request head a byte at a time (slowloris).
    socks = []
    for _ in range(300):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(b"POST /hooks/acme/orders HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for s in socks:
            try:
                s.sendall(b"X")
            except OSError:
                pass
        time.sleep(0.2)
    held = fds() - before

    def closed_by_server(s):
        s.settimeout(2)
        try:
            while s.recv(4096):
                pass
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            s.close()

    closed = sum(closed_by_server(s) for s in socks)
    assert held < 50, f"the server still holds {held} connections after their heads timed out"
    assert closed == 300, closed

    # A body that trickles is answered 408 after the read timeout.
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    s.sendall(b"POST /hooks/acme/orders HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
              b"x-api-key: " + INBOUND_KEY.encode() + b"\r\ncontent-length: 100\r\n\r\n{\"id\":")
    # Bounded by the socket's 5 s timeout; how soon is not this test's.
    answer = s.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408"), answer
    s.close()


def test_requests_past_the_inflight_bound_are_answered_503_with_retry_after(dev, receiver):
    import concurrent.futures
    slow = receiver((200, {}, b"{}", 1.0))
    d = dev({"slow.yaml": f"""
id: slow
tenant: acme
trigger: {{ type: webhook, path: slow, respond: {{ mode: sync, timeout: 5s }} }}
steps:
  - {{ id: call, type: http, url: "{slow.url()}" }}
  - {{ id: answer, type: respond, status: 200 }}
"""}, "--max-inflight", "2")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: d.call("/hooks/acme/slow", {}), range(6)))
    statuses = sorted(a[0] for a in answers)
    assert statuses.count(200) >= 2 and statuses.count(503) >= 1, statuses
    assert set(statuses) <= {200, 503}, statuses
    busy = next(a for a in answers if a[0] == 503)
    assert {k.lower(): v for k, v in busy[1].items()}.get("retry-after") == "1", busy[1]
    # Once they are done, the next is served.
    assert d.call("/hooks/acme/slow", {})[0] == 200


def test_the_readme_example_answers(dev):
    d = dev({"hello.yaml": (pathlib.Path(__file__).parent.parent / "examples" / "hello.yaml").read_text()})
    status, _, body = d.call("/hooks/demo/hello", {"name": "Ada"})
    assert status == 200
    out = json.loads(body)
    assert out["message"] == "Hello, Ada!"
    assert out["event_id"].startswith("evt_")


def test_sync_flows_answer_504_past_the_timeout_and_500_when_failing_first(dev, receiver):
    slow = receiver((200, {}, b"{}", 1.5))
    failing = receiver((400, {}, b"{}", 0))
    flow = """
id: {id}
tenant: acme
trigger: {{ type: webhook, path: {id}, respond: {{ mode: sync, timeout: 500ms }} }}
steps:
  - id: call
    type: http
    url: {url}
  - id: answer
    type: respond
    status: 200
"""
    d = dev({
        "slow.yaml": flow.format(id="slow", url=slow.url()),
        "failing.yaml": flow.format(id="failing", url=failing.url()),
    })
    status, _, body = d.call("/hooks/acme/slow", {})
    assert status == 504
    event_id = json.loads(body)["event_id"]
    # The run goes on in the background and finishes.
    d.wait_log(lambda l: l["message"] == "run finished" and l.get("event_id") == event_id)
    status, _, body = d.call("/hooks/acme/failing", {})
    assert status == 500
    answer = json.loads(body)
    # No internal detail leaks to the caller (the random event id may hold
    # any digits, so only the message is searched).
    assert set(answer) == {"error", "event_id"} and "400" not in answer["error"], answer


def test_slack_url_verification_is_answered_after_the_signature_check(dev, receiver):
    import hashlib
    import hmac

    r = receiver()
    flow = f"""
id: slack
tenant: acme
trigger: {{ type: webhook, system: slack, path: slack, auth: {{ secret: inbound_key }} }}
steps:
  - {{ id: fwd, type: http, url: {r.url()} }}
"""
    d = dev({"slack.yaml": flow})
    body = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(INBOUND_KEY.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    status, _, out = d.call("/hooks/acme/slack", body, {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig})
    assert status == 200 and json.loads(out) == {"challenge": "c-123"}
    status, _, _ = d.call("/hooks/acme/slack", body, {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=00"})
    assert status == 401
    time.sleep(0.3)
    assert r.requests == []


def test_a_replayed_signed_request_is_answered_as_the_first_and_starts_no_second_run(dev, receiver):
    """`reject_replays: true`: a signed request captured and sent again
    while its signature is valid (or a sender's retry with the same
    `webhook-id`) gets the first answer and starts no run; without the
    option each copy starts one (checked first, so the test can fail)."""
    import datetime

    r = receiver()

    def flow(protected):
        opt = ", reject_replays: true" if protected else ""
        return f"""
id: swh{int(protected)}
tenant: acme
trigger: {{ type: webhook, path: swh{int(protected)}, auth: {{ type: standard_webhooks, secret: signing{opt} }} }}
steps:
  - {{ id: fwd, type: http, url: {r.url()} }}
"""
    github = f"""
id: gh
tenant: acme
trigger: {{ type: webhook, path: gh, system: github, auth: {{ secret: signing, reject_replays: true }} }}
steps:
  - {{ id: fwd, type: http, url: {r.url()} }}
"""
    d = dev({"open.yaml": flow(False), "guarded.yaml": flow(True), "gh.yaml": github})
    body = json.dumps({"n": 1})

    def signed(msg_id):
        now = datetime.datetime.now(datetime.timezone.utc)
        return {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(SIGNING).sign(msg_id, now, body)}

    open_first, open_again = (d.call("/hooks/acme/swh0", body.encode(), signed("msg_open")) for _ in range(2))
    assert open_first[0] == open_again[0] == 202 and open_first[2] != open_again[2], "two runs without the option"
    r.wait(2)
    headers = signed("msg_guarded")
    first = d.call("/hooks/acme/swh1", body.encode(), headers)
    again = d.call("/hooks/acme/swh1", body.encode(), headers)
    assert first[0] == again[0] == 202, (first, again)
    assert first[2] == again[2], "the replay gets the first answer (its event id)"
    other = d.call("/hooks/acme/swh1", body.encode(), signed("msg_guarded_2"))
    assert other[0] == 202 and other[2] != first[2]
    r.wait(4)
    # GitHub's signature has no time: the MAC is the identity, however the
    # header spells it (hex in capitals is the same signature to the check).
    import hashlib
    import hmac as hmac_lib
    mac = hmac_lib.new(SIGNING.encode(), body.encode(), hashlib.sha256).hexdigest()
    gh_first = d.call("/hooks/acme/gh", body.encode(), {"X-Hub-Signature-256": f"sha256={mac}"})
    gh_again = d.call("/hooks/acme/gh", body.encode(), {"X-Hub-Signature-256": f"sha256={mac.upper()}"})
    assert gh_first[0] == gh_again[0] == 202, (gh_first, gh_again)
    assert gh_first[2] == gh_again[2], "the re-encoded replay gets the first answer"
    r.wait(5)
    time.sleep(0.5)
    assert len(r.requests) == 5, "two unguarded runs, one for each guarded message, one for GitHub's"


def test_an_enforced_shape_answers_422_naming_the_path(dev, receiver):
    r = receiver()
    flow = f"""
id: strict
tenant: acme
trigger:
  type: webhook
  path: strict
  expect:
    enforce: true
    body:
      schema:
        type: object
        required: [order]
        properties:
          order: {{ type: object, properties: {{ total: {{ type: number }} }} }}
steps:
  - {{ id: fwd, type: http, url: {r.url()} }}
"""
    d = dev({"strict.yaml": flow})
    status, _, body = d.call("/hooks/acme/strict", {"order": {"total": "lots"}})
    assert status == 422
    assert "/order/total" in json.loads(body)["error"]
    assert d.call("/hooks/acme/strict", {"order": {"total": 3}})[0] == 202
    assert len(r.wait(1)) == 1


def test_a_run_goes_on_with_the_flow_version_it_started_on(dev):
    """A run waits on its first step while its flow file is edited (the
    second step now goes elsewhere) and reloaded: the run goes on with the
    version it started on — kept in the store, the loaded flow being the
    new one — and a run started after the edit takes the new one."""
    held = threading.Event()

    def handler(req, n):
        if req["path"] == "/first" and not held.is_set():
            return 500, {}, b"{}", 0
        return 200, {}, b"{}", 0

    r = Receiver(handler=handler)
    try:
        def flow(second):
            return f"""
id: pinned
tenant: acme
trigger: {{ type: webhook, path: pinned }}
steps:
  - id: first
    type: http
    url: {r.url("/first")}
    retry: {{ schedule: [200ms], max_attempts: 100 }}
  - id: second
    type: http
    url: {r.url(second)}
"""
        d = dev({"pinned.yaml": flow("/second")})
        assert d.call("/hooks/acme/pinned", {"n": 1})[0] == 202
        r.wait(1)
        time.sleep(1.1)  # the directory's modification time moves on
        (d.dir / "pinned.yaml").write_text(flow("/edited"))
        reloaded = d.wait_log(lambda l: l["message"] == "flows reloaded")
        assert reloaded["triggers"] == [f"POST http://127.0.0.1:{d.port}/hooks/acme/pinned"], reloaded
        held.set()
        d.wait_log(lambda l: l["message"] == "run finished")
        assert d.call("/hooks/acme/pinned", {"n": 2})[0] == 202
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(q["path"] == "/edited" for q in r.requests) < 1:
            time.sleep(0.05)
        paths = [q["path"] for q in r.requests if q["path"] != "/first"]
        assert paths == ["/second", "/edited"], paths
    finally:
        r.close()


def test_one_client_gets_its_share_of_requests_and_connections(dev, receiver):
    """`--max-inflight-per-client 2`: a client's third trigger request in
    progress is answered 429 with Retry-After; `--max-connections-per-client
    8`: its ninth connection is closed at once, and once it closes some it
    is served again (every test client is 127.0.0.1: one client)."""
    import concurrent.futures
    slow = receiver((200, {}, b"{}", 1.0))
    d = dev({"slow.yaml": f"""
id: slow
tenant: acme
trigger: {{ type: webhook, path: slow, respond: {{ mode: sync, timeout: 5s }} }}
steps:
  - {{ id: call, type: http, url: "{slow.url()}" }}
  - {{ id: answer, type: respond, status: 200 }}
"""}, "--max-inflight-per-client", "2", "--max-connections-per-client", "8")
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: d.call("/hooks/acme/slow", {}), range(5)))
    statuses = sorted(a[0] for a in answers)
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1, statuses
    assert set(statuses) <= {200, 429}, statuses
    busy = next(a for a in answers if a[0] == 429)
    assert {k.lower(): v for k, v in busy[1].items()}.get("retry-after") == "1", busy[1]

    time.sleep(0.3)  # the pool's connections are let go
    held = [socket.create_connection(("127.0.0.1", d.port), timeout=5) for _ in range(8)]
    time.sleep(0.3)
    extra = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    try:
        assert extra.recv(1) == b"", "the ninth connection was served"
    except ConnectionResetError:
        pass  # closed by the server, as a reset
    extra.close()
    for s in held:
        s.close()
    deadline = time.monotonic() + 5
    while True:
        try:
            if d.call("/hooks/acme/slow", {})[0] == 200:
                break
        except OSError:
            pass  # a connection counted before the closed ones were let go
        assert time.monotonic() < deadline, "not served again once its connections closed"
        time.sleep(0.1)


def in_flight_counter(seconds, then=None):
    """A handler taking `seconds` a request (`then(req, n)` answers first
    when it returns an answer), and its `{"now", "most"}` requests at once."""
    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    def handler(req, n):
        if then and (answer := then(req, n)):
            return answer
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(seconds)
        with lock:
            state["now"] -= 1
        return 200, {}, b"{}", 0
    return state, handler


def test_a_flow_s_host_limits_pace_its_steps_and_bound_them_in_flight(dev, receiver):
    """A flow's `limits:` (#27 item 4, for steps): its `http` steps to a
    limited host are paced and bounded in flight; what waits spends no
    attempt, and every request is sent."""
    r = receiver()
    state, r.handler = in_flight_counter(0.05)
    flow = f"""
id: paced
tenant: acme
trigger: {{ type: webhook, path: paced }}
limits:
  127.0.0.1: {{ rate_limit: {{ per_second: 20 }}, max_in_flight: 1 }}
steps:
  - id: send
    type: http
    url: {r.url()}
    body: {{ json: {{ n: "{{{{ trigger.body.n }}}}" }} }}
"""
    d = dev({"paced.yaml": flow})
    for n in range(20):
        assert d.call("/hooks/acme/paced", {"n": n})[0] == 202
    r.wait(20, timeout=20)
    times = sorted(q["at"] for q in r.requests)
    for i in range(len(times)):
        in_a_second = sum(1 for t in times[i:] if t - times[i] < 1.0)
        assert in_a_second <= 21, f"{in_a_second} within a second: {times}"
    assert times[-1] - times[0] >= 19 / 20 * 0.9, "spaced, not sent at once"
    assert state["most"] == 1, state
    assert sorted(int(json.loads(q["body"])["n"]) for q in r.requests) == list(range(20)), "each once"
    attempts = [e for e in d.logs() if e.get("message") == "delivered"]
    assert attempts and {e.get("attempt") for e in attempts} == {1}, "no attempt spent waiting"
