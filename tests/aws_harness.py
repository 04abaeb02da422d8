"""A stand-in for the AWS services around the Lambda functions, for the
end-to-end tests on the AWS path (tests/test_lambda.py).

- moto's server plays DynamoDB, SQS and Secrets Manager on loopback;
- `cargo lambda watch` runs the real `ingress`, `executor` and
  `dispatcher` binaries behind its Lambda Runtime API emulator;
- `ApiGateway` turns an HTTP request into an HTTP API payload v2 event,
  invokes the ingress and turns its answer back into a response;
- `EventSourceMapping` does what Lambda's SQS event source mapping does:
  receive up to 10 messages, invoke the function with them, delete those
  not named in `batchItemFailures`, and leave every message when the
  invocation fails (they come back after the visibility timeout, and after
  `maxReceiveCount` receives the queue moves them to its DLQ).

The harness signs its own AWS calls with the access key `harness`, the
functions with `functions`, so moto's request recording tells whose
requests were whose.

- `FaultProxy` stands between the functions and moto: it forwards every
  call, and fails the ones a test names — N times before forwarding (the
  call had no effect), or after forwarding with the answer dropped (it took
  effect, the caller saw an error). The SDK's own retries go through it
  too, so failing a call three times fails it for the function.
"""

import base64
import collections
import http.client
import http.server
import json
import os
import pathlib
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Moto:
    """moto's server on a free loopback port."""

    def __init__(self, recording):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.recording = recording
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            env=dict(os.environ, MOTO_RECORDER_FILEPATH=str(recording)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._up, 30, "moto to start")

    def _up(self):
        try:
            urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1)
            return True
        except (urllib.error.URLError, ConnectionError):
            return False

    def api(self, path):
        return urllib.request.urlopen(f"{self.url}/moto-api/{path}", timeout=10).read()

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Fault:
    """Fails the next `times` calls of `target` (an `X-Amz-Target`, e.g.
    `AmazonSQS.SendMessageBatch`) whose body contains `matching`: before
    forwarding them, or (`after`) after, dropping moto's answer; or, with
    `hold` (seconds), forwards them that much later (a slow call)."""

    def __init__(self, target, times, after=False, matching="", hold=0.0):
        self.target, self.left, self.after, self.matching, self.hold = target, times, after, matching, hold
        self.failed = 0

    def takes(self, target, body):
        return self.left > 0 and target == self.target and self.matching.encode() in body


class FaultProxy(http.server.ThreadingHTTPServer):
    """A loopback HTTP proxy in front of moto for the functions' AWS calls."""

    daemon_threads = True

    def __init__(self, upstream_port):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream_port = upstream_port
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.faults = []
        self.calls = collections.Counter()  # target -> calls seen
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def fail(self, target, times, after=False, matching="", hold=0.0):
        """Adds a fault; returns it (its `failed` counts what it did)."""
        fault = Fault(target, times, after, matching, hold)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self):
        with self.lock:
            self.faults.clear()
            self.random = None

    def chaos(self, rate, seed):
        """Fails a share `rate` of all DynamoDB and SQS calls at random
        (`seed`), half before forwarding them and half after (moto did it,
        the caller sees an error). Returns a counter of what it failed."""
        import random
        with self.lock:
            self.random = (rate, random.Random(seed), collections.Counter())
            return self.random[2]

    def decide(self, target, body):
        """None (forward), "before", "after", or seconds to hold it."""
        with self.lock:
            self.calls[target] += 1
            for f in self.faults:
                if f.takes(target, body):
                    f.left -= 1
                    f.failed += 1
                    return f.hold or ("after" if f.after else "before")
            chaos = getattr(self, "random", None)
            if chaos and target.startswith(("DynamoDB", "AmazonSQS")):
                rate, coin, failed = chaos
                roll = coin.random()
                if roll < rate:
                    verdict = "before" if roll < rate / 2 else "after"
                    failed[(target.split(".")[-1], verdict)] += 1
                    return verdict
        return None


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: without TCP_NODELAY, Nagle's
    # algorithm and the client's delayed ACK hold every answer ~40 ms.
    disable_nagle_algorithm = True
    HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "content-length", "host"}

    def _any(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        target = self.headers.get("x-amz-target", "")
        verdict = self.server.decide(target, body)
        if verdict == "before":
            return self._injected()
        if isinstance(verdict, float):
            time.sleep(verdict)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in self.HOP}
        try:
            status, answer, data = self._forward(body, headers)
        except (http.client.HTTPException, OSError):
            self.upstream = None  # moto closed the kept-alive connection: once more, anew
            status, answer, data = self._forward(body, headers)
        if verdict == "after":
            return self._injected()
        self.send_response(status)
        for k, v in answer:
            if k.lower() not in self.HOP:
                self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _forward(self, body, headers):
        """Sends the call to moto on this connection's kept-alive one."""
        if getattr(self, "upstream", None) is None:
            self.upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=60)
        self.upstream.request(self.command, self.path, body=body, headers=headers)
        r = self.upstream.getresponse()
        return r.status, r.getheaders(), r.read()

    def _injected(self):
        out = json.dumps({"__type": "InternalFailure", "message": "injected by the test proxy"}).encode()
        self.send_response(500)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

    def log_message(self, *args):
        pass


class Watch:
    """`cargo lambda watch` serving the three functions on a free port (one
    instance of each: invocations of one function take turns)."""

    def __init__(self, env, log_path):
        self.port = free_port()
        env_file = log_path.with_suffix(".env")
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "cargo-lambda"), "lambda", "watch", "--ignore-changes", "--quiet",
                # The features `cargo test --workspace` built the functions
                # with (their tests' dev-dependency): the binaries it made
                # are reused, not built again without it.
                "--features", "hookflow-aws/testing",
                "-A", "127.0.0.1", "-P", str(self.port), "--env-file", str(env_file),
            ],
            cwd=ROOT,
            env=dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}"),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.log_path = log_path
        wait_for(self._listening, 60, "cargo lambda watch to listen")

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def invoke(self, function, payload, timeout=120):
        """Invokes `function`; returns (ok, parsed answer or error text)."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/2015-03-31/functions/{function}/invocations",
            data=json.dumps(payload).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                body = r.read()
                failed = r.headers.get("X-Amz-Function-Error") or r.headers.get("Lambda-Runtime-Function-Error-Type")
                return (not failed, json.loads(body) if body else None)
        except urllib.error.HTTPError as e:
            return (False, e.read().decode(errors="replace"))
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            return (False, str(e))

    def stop(self):
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()


def api_gateway_event(method, path, headers, body, source_ip="203.0.113.9"):
    """An HTTP API payload v2 event for `ANY /hooks/{tenant}/{proxy+}`, or
    for the admin route `ANY /v1/{proxy+}` (after IAM authorisation). A
    query in `path` goes where API Gateway puts it."""
    path, _, query = path.partition("?")
    if path.startswith("/v1/"):
        route, params = "ANY /v1/{proxy+}", {"proxy": path.removeprefix("/v1/")}
    else:
        tenant, proxy = path.removeprefix("/hooks/").split("/", 1)
        route, params = "ANY /hooks/{tenant}/{proxy+}", {"tenant": tenant, "proxy": proxy}
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": query,
        "queryStringParameters": dict(urllib.parse.parse_qsl(query)) or None,
        "headers": {k.lower(): v for k, v in headers.items()},
        "pathParameters": params,
        "requestContext": {
            "accountId": "123456789012", "apiId": "e2e", "domainName": "e2e.execute-api.local",
            "domainPrefix": "e2e",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": "partner"},
            "requestId": uuid.uuid4().hex, "routeKey": route, "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": base64.b64encode(body.encode()).decode(),
        "isBase64Encoded": True,
    }


class ApiGateway:
    def __init__(self, watch):
        self.watch = watch

    def request(self, method, path, headers=None, body="", timeout=600):
        """Returns (status, headers, body text) as API Gateway would answer;
        `/v1/…` goes to the admin function, the rest to the ingress."""
        function = "admin" if path.startswith("/v1/") else "ingress"
        ok, answer = self.watch.invoke(function, api_gateway_event(method, path, headers or {}, body), timeout)
        if not ok:
            return (502, {}, json.dumps({"message": "Internal Server Error", "detail": answer}))
        text = answer.get("body") or ""
        if answer.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        return (answer["statusCode"], answer.get("headers") or {}, text)


class EventSourceMapping:
    """Lambda's SQS event source mapping, one poll at a time."""

    def __init__(self, sqs, watch, function, queue_url, queue_arn):
        self.sqs, self.watch, self.function = sqs, watch, function
        self.queue_url, self.queue_arn = queue_url, queue_arn

    def receive(self, wait=1):
        got = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
            AttributeNames=["All"], MessageAttributeNames=["All"],
        )
        return got.get("Messages", [])

    def event(self, messages):
        return {"Records": [{
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "us-east-1",
        } for m in messages]}

    def deliver(self, messages, timeout=120):
        """Invokes the function with `messages`; deletes what succeeded.
        Returns (invocation ok, ids of failed messages). An invocation that
        fails or outlives `timeout` (the function's timeout) deletes nothing."""
        ok, answer = self.watch.invoke(self.function, self.event(messages), timeout)
        if not ok:
            return (False, {m["MessageId"] for m in messages})
        failed = {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[i:i + 10])],
            )
        return (True, failed)

    def poll_once(self, wait=1):
        messages = self.receive(wait)
        if messages:
            self.deliver(messages)
        return len(messages)
