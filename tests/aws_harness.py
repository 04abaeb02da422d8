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
"""

import base64
import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.error
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


class Watch:
    """`cargo lambda watch` serving the three functions on a free port."""

    def __init__(self, env, log_path):
        self.port = free_port()
        env_file = log_path.with_suffix(".env")
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "cargo-lambda"), "lambda", "watch", "--ignore-changes", "--quiet",
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
    for the admin route `ANY /v1/{proxy+}` (after IAM authorisation)."""
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
        "rawQueryString": "",
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
