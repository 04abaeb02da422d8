"""End to end on the AWS path, with the real Lambda binaries.

`cargo lambda watch` runs `ingress`, `executor` and `dispatcher` (built
from this checkout) behind its Runtime API emulator; moto's server plays
DynamoDB, SQS and Secrets Manager; tests/aws_harness.py plays API Gateway
and the SQS event source mappings; receivers are HTTP servers on
127.0.0.1. What is checked: an async flow delivers with a signature the
`standardwebhooks` package verifies and the credential from Secrets
Manager; a sync flow answers through API Gateway with its `respond` step;
a 500 is retried through the queue; a poisoned message ends in the DLQ
while its batch neighbours are delivered; killing the dispatcher in the
middle of a batch loses nothing; no secret value is in any DynamoDB item,
queued message or log line. It also counts the AWS requests the functions
make per delivered event (docs/PERFORMANCE.md), and runs subscriptions
through the admin function: handshake, a signed event, a repeated id,
rotation, ed25519, 410, and per-key ordering through the FIFO queue under a
receiver that fails at random.
"""

import collections
import concurrent.futures
import http.server
import json
import os
import random
import re
import signal
import string
import subprocess
import threading
import time
import zlib

import boto3
import pytest
from standardwebhooks.webhooks import Webhook

from aws_harness import ROOT, ApiGateway, EventSourceMapping, FaultProxy, Moto, Watch, wait_for

SIGNING_KEY = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PARTNER_TOKEN = "tok-e2e-5f1c2a9b7d"
INBOUND_KEY = "inbound-e2e-8c3d"
SECRETS = [SIGNING_KEY.removeprefix("whsec_"), PARTNER_TOKEN, INBOUND_KEY]


class Receiver(http.server.ThreadingHTTPServer):
    """Records every request; `/flaky` answers 500 to the first attempt of
    each webhook-id, `/slow` holds each request for 3 s."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.arrivals = []  # (time, path, headers, body)
        self.seen = collections.Counter()
        self.ordered = []  # (key, n, status) of every event attempt to /subscriber-ordered
        self.chaos = []  # (path, n, webhook-id, status) of every attempt to /chaos-*
        self.chaos_at = []  # (time, path, n, status) of the same attempts
        self.stuck = []  # (key, n, webhook-id, status) of every event attempt to /subscriber-stuck
        self.stuck_fails = True  # whether /subscriber-stuck fails every attempt of key `stuck`
        self.chaos_coin = random.Random(30)
        self.coin = random.Random(5)
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server_address[1]}"

    def ids(self, path):
        with self.lock:
            return [h.get("webhook-id") for _, p, h, _ in self.arrivals if p == path]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        arrived = time.monotonic()
        if self.path == "/slow":
            time.sleep(3)
        with self.server.lock:
            self.server.arrivals.append((arrived, self.path, headers, body))
            key = (self.path, headers.get("webhook-id"))
            self.server.seen[key] += 1
            first = self.server.seen[key] == 1
        status = 500 if self.path == "/flaky" and first else 200
        if self.path.startswith("/chaos-"):
            # Fails 30% of the attempts, at random.
            with self.server.lock:
                status = 500 if self.server.chaos_coin.random() < 0.3 else 200
                n = json.loads(body or b"{}").get("n")
                self.server.chaos.append((self.path, int(n), headers.get("webhook-id"), status))
                self.server.chaos_at.append((arrived, self.path, int(n), status))
        out = b'{"ok": true}'
        if self.path.startswith("/subscriber"):
            # A subscribed endpoint: proves control by echoing the token;
            # `/subscriber-gone` then answers 410 to every event.
            doc = json.loads(body or b"{}")
            if doc.get("type") == "webhook.verification":
                out = json.dumps({"token": doc["token"]}).encode()
            elif self.path.startswith("/subscriber-gone"):
                status = 410
            elif self.path == "/subscriber-stuck":
                with self.server.lock:
                    key = doc["data"]["key"]
                    status = 500 if key == "stuck" and self.server.stuck_fails else 200
                    self.server.stuck.append((key, doc["data"]["n"], headers.get("webhook-id"), status))
            elif self.path == "/subscriber-ordered":
                # Fails a quarter of the attempts, at random.
                with self.server.lock:
                    status = 500 if self.server.coin.random() < 0.25 else 200
                    self.server.ordered.append((doc["data"]["key"], doc["data"]["n"], status))
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(out)
        except BrokenPipeError:
            pass  # the dispatcher that sent it was killed

    def log_message(self, *args):
        pass


def flow(flow_id, path, url, extra=""):
    return f"""
id: {flow_id}
tenant: e2e
trigger:
  type: webhook
  path: {path}
  auth: {{ type: api_key, header: X-Api-Key, secret: inbound_key }}
steps:
  - id: send
    type: http
    url: {url}
    headers: {{ Authorization: "Bearer {{{{ secrets.partner_token }}}}" }}
    body: {{ json: {{ id: "{{{{ trigger.body.id }}}}" }} }}
    sign: {{ secret: signing_key }}
    retry: {{ max_attempts: 8, initial: 1s, max_delay: 2s }}
{extra}"""


# Flows of the fault-injection tests: two steps each waiting for its
# response (the second queued by the executor), an idempotency key, a body
# limit past DynamoDB's item size. Step ids name what a fault matches.
FAULT_FLOWS = """
id: twostep
tenant: e2e
trigger: { type: webhook, path: twostep }
sign: { secret: signing_key }
steps:
  - { id: first_fx, type: http, url: "RECEIVER/two-a", body: { json: { n: "{{ trigger.body.n }}" } },
      retry: { max_attempts: 8, initial: 1s, max_delay: 2s } }
  - { id: second_fx, type: http, url: "RECEIVER/two-b", body: { json: { n: "{{ trigger.body.n }}" } },
      retry: { max_attempts: 8, initial: 1s, max_delay: 2s } }
---
id: keyed
tenant: e2e
trigger: { type: webhook, path: keyed, idempotency: { header: Idempotency-Key } }
sign: { secret: signing_key }
steps:
  - { id: keyed_fx, type: http, url: "RECEIVER/keyed", body: { json: { n: "{{ trigger.body.n }}" } },
      retry: { max_attempts: 8, initial: 1s, max_delay: 2s } }
---
id: chaos
tenant: e2e
trigger: { type: webhook, path: chaos, idempotency: { header: Idempotency-Key } }
sign: { secret: signing_key }
steps:
  - { id: chaos_a, type: http, url: "RECEIVER/chaos-a", body: { json: { n: "{{ trigger.body.n }}" } },
      retry: { max_attempts: 15, schedule: [200ms] } }
  - { id: chaos_b, type: http, url: "RECEIVER/chaos-b", body: { json: { n: "{{ trigger.body.n }}" } },
      retry: { max_attempts: 15, schedule: [200ms] } }
---
id: big
tenant: e2e
trigger: { type: webhook, path: big, max_body: 1048576 }
steps:
  - { id: big_fx, type: http, url: "RECEIVER/big", body: { json: { n: "{{ trigger.body.n }}" } } }
"""


class Aws:
    """Everything the tests share: emulator, functions, harness."""

    def __init__(self, tmp):
        self.receiver = Receiver()
        self.moto = Moto(recording=tmp / "moto_recording")
        # The functions reach moto through it; the harness directly.
        self.proxy = FaultProxy(self.moto.port)
        env = dict(os.environ, AWS_ENDPOINT_URL=self.moto.url, AWS_ACCESS_KEY_ID="harness",
                   AWS_SECRET_ACCESS_KEY="harness", AWS_REGION="us-east-1")
        env.pop("HOOKFLOW_TABLE", None)
        self.env = env
        up = self.hookflow("local-aws", "up", "--prefix", "e2e")
        names = dict(line.removeprefix("export ").split("=", 1) for line in up.splitlines() if line.startswith("export"))
        session = boto3.session.Session(aws_access_key_id="harness", aws_secret_access_key="harness",
                                        region_name="us-east-1")
        self.sqs = session.client("sqs", endpoint_url=self.moto.url)
        self.ddb = session.client("dynamodb", endpoint_url=self.moto.url)
        sm = session.client("secretsmanager", endpoint_url=self.moto.url)
        for name, value in [("signing_key", SIGNING_KEY), ("partner_token", PARTNER_TOKEN),
                            ("inbound_key", INBOUND_KEY)]:
            sm.create_secret(Name=f"hookflow/{name}", SecretString=value)
        self.table = names["HOOKFLOW_TABLE"]
        self.runs_url = names["HOOKFLOW_RUNS_QUEUE_URL"]
        self.deliveries_url = names["HOOKFLOW_DELIVERIES_QUEUE_URL"]
        self.ordered_url = names["HOOKFLOW_ORDERED_QUEUE_URL"]
        self.deliveries_dlq = self.sqs.get_queue_url(QueueName="e2e-deliveries-dlq")["QueueUrl"]
        self.ordered_dlq = self.sqs.get_queue_url(QueueName="e2e-ordered-dlq.fifo")["QueueUrl"]
        # The template's visibility timeout is 6x the function timeout; the
        # harness shortens it so that what a failed invocation leaves comes
        # back within the test.
        for url in (self.runs_url, self.deliveries_url, self.ordered_url, self.deliveries_dlq, self.ordered_dlq):
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "2"})

        flows = tmp / "flows"
        flows.mkdir()
        r = self.receiver.base
        (flows / "signed.yaml").write_text(flow("signed", "signed", f"{r}/ok"))
        (flows / "flaky.yaml").write_text(flow("flaky", "flaky", f"{r}/flaky"))
        (flows / "slow.yaml").write_text(flow("slow", "slow", f"{r}/slow", "    timeout: 10s\n"))
        (flows / "hello.yaml").write_text((ROOT / "examples" / "hello.yaml").read_text())
        for i, doc in enumerate(FAULT_FLOWS.split("---")):
            (flows / f"faults-{i}.yaml").write_text(doc.replace("RECEIVER", r))
        self.hookflow("apply", "--flows", str(flows), "--table", self.table)

        self.tmp = tmp
        self.watch_env = {
            "AWS_ENDPOINT_URL": self.proxy.url, "AWS_ACCESS_KEY_ID": "functions",
            "AWS_SECRET_ACCESS_KEY": "functions", "AWS_REGION": "us-east-1",
            "HOOKFLOW_TABLE": self.table, "HOOKFLOW_RUNS_QUEUE_URL": self.runs_url,
            "HOOKFLOW_DELIVERIES_QUEUE_URL": self.deliveries_url,
            "HOOKFLOW_ORDERED_QUEUE_URL": self.ordered_url,
            "HOOKFLOW_DEAD_LETTER_ARNS": names["HOOKFLOW_DEAD_LETTER_ARNS"],
            "HOOKFLOW_ALLOW_PRIVATE_TARGETS": "127.0.0.0/8",
            # Subscription retries after 1 s (the template keeps the
            # Standard Webhooks schedule): ten for events, two for the
            # verification request.
            "HOOKFLOW_EVENT_RETRY": ",".join(["1s"] * 10),
            "HOOKFLOW_VERIFICATION_RETRY": "1s,1s",
            # The stack's AllowedDestinationArns: these queues only.
            "HOOKFLOW_DESTINATIONS": "arn:aws:sqs:us-east-1:123456789012:e2e-dest-*",
        }
        self.watch = Watch(self.watch_env, tmp / "watch.log")
        self.logs = [self.watch.log_path]
        self.api = ApiGateway(self.watch)
        arn = lambda url: self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]  # noqa: E731
        self.runs = EventSourceMapping(self.sqs, self.watch, "executor", self.runs_url, arn(self.runs_url))
        self.deliveries = EventSourceMapping(self.sqs, self.watch, "dispatcher", self.deliveries_url,
                                             arn(self.deliveries_url))
        self.ordered = EventSourceMapping(self.sqs, self.watch, "dispatcher", self.ordered_url,
                                          arn(self.ordered_url))
        # The template maps the two delivery DLQs to the dispatcher, which
        # reads them back into dead deliveries.
        self.dead_letters = [EventSourceMapping(self.sqs, self.watch, "dispatcher", url, arn(url))
                             for url in (self.deliveries_dlq, self.ordered_dlq)]

    def restart_functions(self, **env):
        """The functions started again, with `env` over the harness's
        variables (until the next restart)."""
        self.watch.stop()
        self.watch = Watch(dict(self.watch_env, **env), self.tmp / f"watch-{len(self.logs) + 1}.log")
        self.logs.append(self.watch.log_path)
        for user in (self.api, self.runs, self.deliveries, self.ordered, *self.dead_letters):
            user.watch = self.watch

    def hookflow(self, *args):
        out = subprocess.run([os.environ["HOOKFLOW_BIN"], *args], env=self.env, capture_output=True, text=True,
                             timeout=60, cwd=ROOT)
        assert out.returncode == 0, out.stderr + out.stdout
        return out.stdout

    def admin(self, method, path, body=None):
        """A call to the admin API (through the admin function): (status, JSON)."""
        status, _, text = self.api.request(method, path, {"content-type": "application/json"},
                                           json.dumps(body) if body is not None else "")
        return status, (json.loads(text) if text else None)

    def post(self, path, body, key=INBOUND_KEY):
        return self.api.request("POST", f"/hooks/e2e/{path}",
                                {"content-type": "application/json", "x-api-key": key}, json.dumps(body))

    def pump(self, until, timeout, what):
        """Plays the event source mappings until `until()` holds: at once
        again while messages move, after 0.2 s when none did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            moved = self.runs.poll_once(wait=0) + self.deliveries.poll_once(wait=0) + self.ordered.poll_once(wait=0)
            moved += sum(esm.poll_once(wait=0) for esm in self.dead_letters)
            value = until()
            if value:
                return value
            if not moved:
                time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def queue_depth(self, url):
        a = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"]) + int(
            a["ApproximateNumberOfMessagesDelayed"])

    def close(self):
        self.watch.stop()
        self.proxy.shutdown()
        self.moto.stop()
        self.receiver.shutdown()


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    a = Aws(tmp_path_factory.mktemp("lambda"))
    try:
        # The first invocation of each function builds it (cargo lambda
        # watch; a no-op when scripts/test built them already).
        status, _, body = a.api.request("GET", "/hooks/e2e/nope")
        assert status == 404, body
        for esm in (a.runs, a.deliveries):
            ok, answer = a.watch.invoke(esm.function, {"Records": []}, timeout=600)
            assert ok and answer == {"batchItemFailures": []}, answer
        yield a
    finally:
        a.close()


def test_a_sync_flow_answers_through_api_gateway_with_its_respond_step(aws):
    status, headers, body = aws.api.request("POST", "/hooks/demo/hello", {"content-type": "application/json"},
                                            '{"name": "Ada"}')
    assert status == 200, body
    assert json.loads(body)["message"] == "Hello, Ada!"


def test_an_async_flow_delivers_a_verified_signature_and_the_secret_header(aws):
    status, _, body = aws.post("signed", {"id": 41})
    assert status == 202, body
    event_id = json.loads(body)["event_id"]
    aws.pump(lambda: aws.receiver.ids("/ok"), 60, "the delivery")
    _, _, headers, raw = [a for a in aws.receiver.arrivals if a[1] == "/ok"][0]
    assert headers["authorization"] == f"Bearer {PARTNER_TOKEN}"
    Webhook(SIGNING_KEY).verify(raw, headers)  # raises when the signature is wrong
    assert json.loads(raw) == {"id": "41"} or json.loads(raw) == {"id": 41}
    # Wrong key: refused before anything is stored.
    status, _, _ = aws.post("signed", {"id": 42}, key="wrong")
    assert status == 401
    assert event_id.startswith("evt_")


def test_aws_requests_per_delivered_event_with_warm_caches(aws):
    """Counts the functions' own AWS requests for one single-step async
    event (the harness's ESM calls are signed by another key and left out)."""
    drained = lambda: aws.queue_depth(aws.runs_url) == 0 and aws.queue_depth(aws.deliveries_url) == 0  # noqa: E731
    time.sleep(1)
    aws.pump(drained, 30, "what earlier tests left to finish")
    aws.moto.api("recorder/reset-recording")
    urllib_post(aws.moto.url + "/moto-api/recorder/start-recording")
    before = len(aws.receiver.ids("/ok"))
    status, _, _ = aws.post("signed", {"id": 43})
    assert status == 202
    aws.pump(lambda: len(aws.receiver.ids("/ok")) > before, 60, "the delivery")
    # Let the run finish (the executor's step after the delivery).
    time.sleep(1)
    aws.pump(drained, 30, "the run to finish")
    urllib_post(aws.moto.url + "/moto-api/recorder/stop-recording")
    calls = []
    for line in aws.moto.recording.read_text().splitlines():
        entry = json.loads(line)
        if "Credential=functions/" not in entry["headers"].get("Authorization", ""):
            continue
        calls.append(entry["headers"].get("X-Amz-Target", entry["url"]).split(".")[-1])
    print(f"\nAWS requests by the functions for one delivered event, in order: {len(calls)} {calls}")
    # ingress: PutItem (the run, its log kept in it), SendMessageBatch
    # (delivery) beside BatchWriteItem (the request's copy under its tenant);
    # dispatcher: PutItem (attempt), SendMessageBatch (step result);
    # executor: GetItem (run), PutItem (run finished). No transaction (each
    # write is of one item: a transaction would cost twice the write units).
    assert "PutItem" in calls and "SendMessageBatch" in calls, calls
    assert "TransactWriteItems" not in calls, calls
    assert len(calls) <= 7, calls


def test_apply_refuses_a_step_longer_than_the_dispatcher_can_wait_and_writes_nothing(aws, tmp_path):
    """A step timeout `hookflow dev` allows (up to 5m) but the dispatcher's
    function cannot give (20 s): refused by name, field and limit, and no
    flow of the directory written; the admin API's PUT refuses it too."""
    (tmp_path / "ok.yaml").write_text("id: fine\ntenant: e2e\ntrigger: { type: webhook, path: fine-slow }\n"
                                      "steps:\n  - id: quick\n    type: http\n    url: http://127.0.0.1:9/\n")
    (tmp_path / "slow.yaml").write_text("id: too-slow\ntenant: e2e\ntrigger: { type: webhook, path: too-slow }\nsteps:\n"
                                        "  - id: patient\n    type: http\n    url: http://127.0.0.1:9/\n"
                                        "    timeout: 60s\n")
    out = subprocess.run([os.environ["HOOKFLOW_BIN"], "apply", "--flows", str(tmp_path), "--table", aws.table],
                         env=aws.env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode != 0, out.stdout
    assert "slow.yaml:8:5: steps[0].timeout: step `patient` may take 60s, more than the 20s" in out.stdout, out.stdout
    for path in ("too-slow", "fine-slow"):
        status, _, _ = aws.api.request("POST", f"/hooks/e2e/{path}", {"content-type": "application/json"}, "{}")
        assert status == 404, path
    status, _, body = aws.api.request("PUT", "/v1/flows/e2e/too-slow", {"content-type": "application/yaml"},
                                      (tmp_path / "slow.yaml").read_text())
    assert status == 422, body
    assert "steps[0].timeout" in body and "20s" in body, body


def test_a_500_is_retried_through_the_queue_with_the_same_webhook_id(aws):
    status, _, _ = aws.post("flaky", {"id": 7})
    assert status == 202
    aws.pump(lambda: len(aws.receiver.ids("/flaky")) >= 2, 60, "the retry")
    first, second = aws.receiver.ids("/flaky")[:2]
    assert first == second


def test_a_poisoned_message_ends_in_the_dlq_while_its_neighbours_are_delivered(aws):
    before = len(aws.receiver.ids("/ok"))
    for i in range(3):
        assert aws.post("signed", {"id": 100 + i})[0] == 202
    aws.sqs.send_message(QueueUrl=aws.deliveries_url, MessageBody="{not a job")
    aws.pump(lambda: len(aws.receiver.ids("/ok")) >= before + 3, 60, "the three neighbours")
    aws.pump(lambda: aws.queue_depth(aws.deliveries_dlq) == 1, 60, "the poisoned message in the DLQ")
    # The dispatcher reads the DLQ back into dead deliveries; what it
    # cannot read stays there, under the DLQ's alarm.
    got = []
    wait_for(lambda: got.extend(aws.dead_letters[0].receive(wait=1)) or got, 10, "the DLQ's message")
    assert [m["Body"] for m in got] == ["{not a job"]
    ok, failed = aws.dead_letters[0].deliver(got)
    assert ok and failed == {got[0]["MessageId"]}, "not read back: it is no delivery"
    assert aws.queue_depth(aws.deliveries_dlq) == 1


def test_killing_the_dispatcher_in_the_middle_of_a_batch_loses_nothing(aws):
    # Longer than the receiver's 3 s hold, as the template's 6x the function
    # timeout is: a message comes back only when its invocation failed.
    aws.sqs.set_queue_attributes(QueueUrl=aws.deliveries_url, Attributes={"VisibilityTimeout": "5"})
    for i in range(4):
        assert aws.post("slow", {"id": 200 + i})[0] == 202
    # The executor has nothing to do for a first step; the deliveries are queued.
    messages = wait_for(lambda: aws.deliveries.receive(wait=1), 20, "the slow deliveries")
    deadline = time.monotonic() + 30
    while len(messages) < 4:
        assert time.monotonic() < deadline, f"{len(messages)} of the 4 slow deliveries queued"
        messages += aws.deliveries.receive(wait=1)
    ids = {json.loads(json.loads(m["Body"])["payload"])["delivery"]["id"] for m in messages}
    result = {}
    # The function's timeout is 15 s here: Lambda reports a process that
    # died as a failed invocation; under the emulator the invocation just
    # never answers, and the harness gives up on it as Lambda would.
    t = threading.Thread(target=lambda: result.update(r=aws.deliveries.deliver(messages, timeout=15)))
    t.start()
    # The receiver holds each request 3 s: kill the dispatcher while it waits.
    time.sleep(1.5)
    pids = subprocess.run(["pgrep", "-f", "debug/dispatcher"], capture_output=True, text=True).stdout.split()
    assert pids, "the dispatcher process"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    killed_at = time.monotonic()
    t.join(1)
    # Lambda starts a new execution environment for the next invocation;
    # cargo lambda watch does not restart a function whose process was
    # killed, so the harness starts the emulator again (which ends the
    # pending call at once, as Lambda's timeout would later).
    aws.restart_functions()
    t.join(30)
    assert result["r"][0] is False, "the invocation failed with its process"
    # Nothing was deleted: after the visibility timeout the batch comes back
    # and the new dispatcher process sends it.
    def all_arrived_after_the_kill():
        with aws.receiver.lock:
            late = {h.get("webhook-id") for at, p, h, _ in aws.receiver.arrivals if p == "/slow" and at > killed_at}
        return ids <= late
    aws.pump(all_arrived_after_the_kill, 90, "every delivery of the killed batch")
    aws.pump(lambda: aws.queue_depth(aws.deliveries_url) == 0, 60, "the deliveries queue to drain")


# ---------------------------------------------------------------------------
# Faults between the table write and the send (docs/ARCHITECTURE.md,
# "Failure model"): the proxy in front of moto fails a call after the
# commit before it was written; the SDK's three tries all fail, so the
# function sees the failure. Every accepted event is still delivered.

SEND = "AmazonSQS.SendMessageBatch"
TRANSACT = "DynamoDB_20120810.TransactWriteItems"
PUT = "DynamoDB_20120810.PutItem"
BATCH_WRITE = "DynamoDB_20120810.BatchWriteItem"


@pytest.fixture
def faults(aws):
    yield aws.proxy
    aws.proxy.clear()


def body_n(raw):
    """`n` of a fault flow's delivered body (rendered as a number or text)."""
    return int(json.loads(raw)["n"])


def run_of(aws, event_id):
    """The run an event started, as the admin API shows it."""
    status, out = aws.admin("GET", f"/v1/logs?event_id={event_id}&tenant=e2e")
    assert status == 200, out
    runs = {e["run_id"] for e in out["entries"] if e.get("run_id")}
    assert len(runs) == 1, out
    return aws.admin("GET", f"/v1/runs/{runs.pop()}")[1]


@pytest.mark.parametrize("after", [False, True], ids=["refused", "taken-answer-lost"])
def test_a_second_step_whose_send_failed_after_the_run_was_written_is_still_sent(aws, faults, after):
    """The executor writes the run (first step done, second waiting), then
    its send of the second step fails three times — refused, or taken by SQS
    with the answer lost. Its message comes back, finds the result applied,
    and sends the run's outbox again: the second step arrives (under one
    webhook-id, however often) and the run finishes."""
    n = 11 if after else 10
    fault = faults.fail(SEND, 3, after=after, matching="second_fx")
    status, _, body = aws.api.request("POST", "/hooks/e2e/twostep", {"content-type": "application/json"},
                                      json.dumps({"n": n}))
    assert status == 202, body
    event_id = json.loads(body)["event_id"]

    def second_arrived():
        with aws.receiver.lock:
            return [h["webhook-id"] for _, p, h, b in aws.receiver.arrivals
                    if p == "/two-b" and body_n(b) == n]
    ids = aws.pump(second_arrived, 90, "the second step")
    assert fault.failed == 3, "the fault was injected"
    aws.pump(lambda: run_of(aws, event_id)["run"]["status"]["state"] == "succeeded", 60, "the run to finish")
    time.sleep(1)
    aws.pump(lambda: aws.queue_depth(aws.runs_url) == 0 and aws.queue_depth(aws.deliveries_url) == 0, 60, "drained")
    ids = second_arrived()
    assert len(set(ids)) == 1, f"one webhook-id for the second step: {ids}"
    if after:
        assert len(ids) >= 2, "SQS took the three tries and the redo: sent more than once"


def test_an_idempotent_request_whose_send_failed_is_delivered_when_the_caller_retries(aws, faults):
    """The ingress stores the run and completes the key, then cannot queue
    the delivery: 503. The caller's retry with the same key is answered as
    the first was accepted, and now the delivery is queued and arrives."""
    fault = faults.fail(SEND, 3, matching="keyed_fx")
    headers = {"content-type": "application/json", "idempotency-key": "key-send-failed"}
    status, _, body = aws.api.request("POST", "/hooks/e2e/keyed", headers, json.dumps({"n": 1}))
    assert status == 503, body
    assert fault.failed == 3
    status, _, body = aws.api.request("POST", "/hooks/e2e/keyed", headers, json.dumps({"n": 1}))
    assert status == 202, body
    aws.pump(lambda: aws.receiver.ids("/keyed"), 60, "the delivery")


def test_an_idempotent_request_whose_commit_answer_was_lost_is_delivered(aws, faults):
    """The ingress's transaction commits but its answer is lost: the SDK's
    retry (the same ClientRequestToken) is refused or answered, and either
    way the request (or the caller's retry) ends with 202 and a delivery."""
    fault = faults.fail(TRANSACT, 1, after=True, matching="key-answer-lost")
    headers = {"content-type": "application/json", "idempotency-key": "key-answer-lost"}
    status, _, body = aws.api.request("POST", "/hooks/e2e/keyed", headers, json.dumps({"n": 2}))
    assert fault.failed == 1
    if status != 202:
        assert status == 503, body
        status, _, body = aws.api.request("POST", "/hooks/e2e/keyed", headers, json.dumps({"n": 2}))
    assert status == 202, body

    def arrived():
        with aws.receiver.lock:
            return [h["webhook-id"] for _, p, h, b in aws.receiver.arrivals if p == "/keyed" and body_n(b) == 2]
    ids = aws.pump(arrived, 60, "the delivery")
    assert len(set(ids)) == 1, ids


def test_a_run_write_whose_answer_was_lost_is_answered_as_written(aws, faults):
    """The ingress's write of a new run (one conditional PutItem) is
    written, but its answer is lost: the SDK's retry finds the run's item
    already there. It is its own (the same item), so the write is done:
    202, both steps delivered, the run finished — not a conflict with
    itself (503, the run left stranded)."""
    fault = faults.fail(PUT, 1, after=True, matching='"twostep"')
    status, _, body = aws.api.request("POST", "/hooks/e2e/twostep", {"content-type": "application/json"},
                                      json.dumps({"n": 13}))
    assert fault.failed == 1, "the fault was injected"
    assert status == 202, body
    event_id = json.loads(body)["event_id"]
    aws.pump(lambda: any(body_n(b) == 13 for _, p, _, b in list(aws.receiver.arrivals) if p == "/two-b"),
             90, "the second step")
    aws.pump(lambda: run_of(aws, event_id)["run"]["status"]["state"] == "succeeded", 60, "the run to finish")


def test_a_request_whose_log_copy_failed_to_write_is_still_accepted_and_delivered(aws, faults):
    """The request's light copy under its tenant and hour is written after
    the run, beside the send; when that write fails (the SDK's three tries),
    the request was still accepted — its run, entries and messages are
    stored and sent — so the answer is 202, not a 503 that would have the
    caller send it again."""
    fault = faults.fail(BATCH_WRITE, 3, matching='"twostep"')
    status, _, body = aws.api.request("POST", "/hooks/e2e/twostep", {"content-type": "application/json"},
                                      json.dumps({"n": 14}))
    assert fault.failed == 3, "the fault was injected"
    assert status == 202, body
    aws.pump(lambda: any(body_n(b) == 14 for _, p, _, b in list(aws.receiver.arrivals) if p == "/two-b"),
             90, "the second step")


def test_a_step_result_whose_send_failed_is_sent_again_and_the_run_finishes(aws, faults):
    """The dispatcher logs the attempt, then cannot queue the result for the
    run: its message comes back, the step is sent again (same webhook-id)
    and the result reaches the run."""
    fault = faults.fail(SEND, 3, matching="first_fx")
    # The ingress's own send carries `first_fx` too: let it through first.
    fault.left = 0
    status, _, body = aws.api.request("POST", "/hooks/e2e/twostep", {"content-type": "application/json"},
                                      json.dumps({"n": 12}))
    assert status == 202, body
    event_id = json.loads(body)["event_id"]
    fault.left = 3
    aws.pump(lambda: any(body_n(b) == 12 for _, p, _, b in list(aws.receiver.arrivals) if p == "/two-b"),
             90, "the second step")
    assert fault.failed == 3
    firsts = [h["webhook-id"] for _, p, h, b in list(aws.receiver.arrivals) if p == "/two-a" and body_n(b) == 12]
    assert len(firsts) >= 2 and len(set(firsts)) == 1, f"sent again under one webhook-id: {firsts}"
    aws.pump(lambda: run_of(aws, event_id)["run"]["status"]["state"] == "succeeded", 60, "the run to finish")


def test_a_published_event_whose_fan_out_failed_is_sent_when_published_again(aws, faults):
    """The admin function writes the event, then cannot queue its fan-out:
    an error. Publishing the same id again is answered `duplicate` and
    sends what the first publish left unsent."""
    status, sub = aws.admin("POST", "/v1/subscriptions", {"url": aws.receiver.base + "/subscriber-fx",
                                                           "event_types": ["fx.*"], "tenant": "e2e"})
    assert status == 201, sub
    SECRETS.append(sub["secret"].removeprefix("whsec_"))
    aws.pump(lambda: aws.admin("GET", f"/v1/subscriptions/{sub['id']}")[1]["status"] == "active", 60, "active")
    fault = faults.fail(SEND, 3, matching="fx-lost-1")
    event = {"type": "fx.happened", "id": "fx-lost-1", "tenant": "e2e", "data": {"n": 1}}
    status, out = aws.admin("POST", "/v1/events", event)
    assert status >= 500, out
    assert fault.failed == 3
    status, out = aws.admin("POST", "/v1/events", event)
    assert (status, out["duplicate"]) == (200, True), out
    aws.pump(lambda: len(aws.receiver.ids("/subscriber-fx")) >= 2, 60, "the event")
    with aws.receiver.lock:
        events = [json.loads(b) for _, p, _, b in aws.receiver.arrivals if p == "/subscriber-fx"][1:]
    assert [e["type"] for e in events] == ["fx.happened"], events
    # Sent once: a third publish finds nothing left to send.
    assert aws.admin("POST", "/v1/events", event)[1]["duplicate"]
    time.sleep(1)
    aws.pump(lambda: aws.queue_depth(aws.deliveries_url) == 0, 30, "drained")
    assert len(aws.receiver.ids("/subscriber-fx")) == 2


@pytest.mark.parametrize("then", ["back", "deleted", "enabled"])
def test_a_subscription_disabled_fan_out_whose_send_failed_is_sent_when_the_delivery_comes_back(aws, faults, then):
    """A 410 disables a subscription; the dispatcher's commit (the disabled
    record, the `subscription.disabled` event) is written, its fan-out send
    fails. The delivery's message comes back, finds its subscription
    disabled, and sends the event's outbox: the watcher hears of it. Or an
    admin deletes or enables the subscription before the message comes
    back (the message then finds it gone or active): the admin's change
    sends the outbox first (it used to be never sent)."""
    def subscribe(path, types):
        status, sub = aws.admin("POST", "/v1/subscriptions", {"url": aws.receiver.base + path,
                                                               "event_types": types, "tenant": "e2e"})
        assert status == 201, sub
        SECRETS.append(sub["secret"].removeprefix("whsec_"))
        return sub
    kind = f"gonefx{then}"
    gone = subscribe(f"/subscriber-gone-fx-{then}", [f"{kind}.*"])
    watcher = subscribe(f"/subscriber-wfx-{then}", ["subscription.disabled"])
    aws.pump(lambda: all(aws.admin("GET", f"/v1/subscriptions/{s['id']}")[1]["status"] == "active"
                         for s in (gone, watcher)), 60, "active")
    assert aws.admin("POST", "/v1/events", {"type": f"{kind}.x", "tenant": "e2e", "data": {}})[1]["deliveries"] == 1
    # The disabled event's fan-out names the subscription (the event above
    # was queued before the fault).
    fault = faults.fail(SEND, 3, matching=gone["id"].removeprefix("sub_"))
    if then != "back":
        aws.pump(lambda: fault.failed == 3, 60, "the fan-out's send, failed")
        disabled_at = aws.admin("GET", f"/v1/subscriptions/{gone['id']}")[1]["disabled_at"]
        if then == "deleted":
            assert aws.admin("DELETE", f"/v1/subscriptions/{gone['id']}")[0] == 204
        else:
            assert aws.admin("POST", f"/v1/subscriptions/{gone['id']}/enable")[0] == 200

    def heard():
        with aws.receiver.lock:
            return [(h, json.loads(b)) for _, p, h, b in aws.receiver.arrivals
                    if p == f"/subscriber-wfx-{then}" and json.loads(b)["type"] == "subscription.disabled"]
    told = aws.pump(heard, 90, "subscription.disabled at the watcher")
    assert fault.failed == 3, "the fan-out's send was failed"
    assert told[0][1]["data"]["subscription_id"] == gone["id"]
    if then == "back":
        assert aws.admin("GET", f"/v1/subscriptions/{gone['id']}")[1]["status"] == "disabled"
    else:
        # The event of the first disabling (an enabled one, disabled
        # again by the 410 of the delivery that came back, has another).
        assert told[0][0]["webhook-id"].endswith(f"_{disabled_at}"), told[0][0]


def test_an_enable_with_replay_whose_send_failed_is_resumed_by_the_same_request(aws, faults):
    """A disabled subscription missed three events; the admin enables it
    with replay and the replay's send fails (the enable itself was
    written): 5xx. The same request again goes on where the replay
    stopped — it used to answer 409 (already active) with the events never
    sent — and each missed event arrives, signed, under its own id."""
    status, sub = aws.admin("POST", "/v1/subscriptions", {"url": aws.receiver.base + "/subscriber-rp",
                                                           "event_types": ["rp.*"], "tenant": "e2e"})
    assert status == 201, sub
    SECRETS.append(sub["secret"].removeprefix("whsec_"))
    aws.pump(lambda: aws.admin("GET", f"/v1/subscriptions/{sub['id']}")[1]["status"] == "active", 60, "active")
    assert aws.admin("POST", f"/v1/subscriptions/{sub['id']}/disable")[0] == 200
    for i in range(3):
        out = aws.admin("POST", "/v1/events", {"type": "rp.x", "id": f"rp-{i}", "tenant": "e2e", "data": {"i": i}})[1]
        assert out["deliveries"] == 0, out
    fault = faults.fail(SEND, 3, matching=sub["id"].removeprefix("sub_"))
    status, out = aws.admin("POST", f"/v1/subscriptions/{sub['id']}/enable", {"replay": True})
    assert status >= 500, out
    assert fault.failed == 3
    status, out = aws.admin("POST", f"/v1/subscriptions/{sub['id']}/enable", {"replay": True})
    assert status == 200, out
    assert (out["missed"], out["replayed"], out["replay_pending"]) == (3, 3, False), out
    assert "replay" not in out["subscription"], out

    def events():
        with aws.receiver.lock:
            return [(h, b) for _, p, h, b in aws.receiver.arrivals if p == "/subscriber-rp"][1:]
    aws.pump(lambda: len(events()) >= 3, 60, "the missed events")
    for headers, raw in events():
        Webhook(sub["secret"]).verify(raw, headers)
    got = sorted(json.loads(raw)["data"]["i"] for _, raw in events())
    assert got == [0, 1, 2], got
    assert aws.admin("POST", f"/v1/subscriptions/{sub['id']}/enable", {"replay": True})[0] == 409, "nothing to resume"


def test_an_event_whose_publish_is_slower_than_the_settling_time_reaches_a_subscription_enabled_meanwhile(aws, faults):
    """The publish reads the subscriptions (this one disabled), then its
    write is held 8 s (a throttled table); meanwhile an admin enables the
    subscription with replay, whose reads, the last one included, find no
    event yet. After its write the publish reads the subscriptions again,
    sees the enable, and sends the event (it used to be never sent)."""
    status, sub = aws.admin("POST", "/v1/subscriptions", {"url": aws.receiver.base + "/subscriber-slow",
                                                           "event_types": ["slow.*"], "tenant": "e2e"})
    assert status == 201, sub
    SECRETS.append(sub["secret"].removeprefix("whsec_"))
    aws.pump(lambda: aws.admin("GET", f"/v1/subscriptions/{sub['id']}")[1]["status"] == "active", 60, "active")
    assert aws.admin("POST", f"/v1/subscriptions/{sub['id']}/disable")[0] == 200
    held = faults.fail(TRANSACT, 1, matching="slow-1", hold=8.0)
    published = {}
    publisher = threading.Thread(target=lambda: published.update(out=aws.admin(
        "POST", "/v1/events", {"type": "slow.x", "id": "slow-1", "tenant": "e2e", "data": {"n": 1}})))
    publisher.start()
    wait_for(lambda: held.failed == 1, 30, "the publish's write, held")
    # A second instance of the admin function (the emulator runs one
    # instance's invocations one at a time; Lambda runs them side by side).
    second = Watch(aws.watch_env, aws.tmp / "watch-admin.log")
    aws.logs.append(second.log_path)
    try:
        status, _, text = ApiGateway(second).request("POST", f"/v1/subscriptions/{sub['id']}/enable",
                                                     {"content-type": "application/json"}, '{"replay": true}')
    finally:
        second.stop()
    out = json.loads(text)
    assert status == 200, out
    assert out["replayed"] == 0, "the replay read its window before the event was written"
    publisher.join(60)
    status, out = published["out"]
    assert status == 202, out
    assert out["deliveries"] == 0, "its first read saw the subscription disabled"

    def arrived():
        with aws.receiver.lock:
            return [(h, b) for _, p, h, b in aws.receiver.arrivals if p == "/subscriber-slow"][1:]
    aws.pump(lambda: arrived(), 60, "the event, sent by the publish's second read")
    [(headers, raw)] = arrived()
    Webhook(sub["secret"]).verify(raw, headers)
    assert (json.loads(raw)["type"], json.loads(raw)["data"]) == ("slow.x", {"n": 1})


def test_a_body_too_large_for_the_table_is_413_never_503(aws):
    """700 KiB of JSON that does not compress (6-bit noise), under the
    flow's 1 MiB `max_body`: the run's item (the body compressed to ~540 KB,
    with the rest of the run) would pass DynamoDB's 400 KB, so the ingress
    answers 413 naming the limit (its retry would fail the same way), never
    503. A padding of one repeated letter compresses to nothing, and 6-bit
    noise under 512 KiB to less than 400 KB: both were answered 202 and
    never reached the 413."""
    alphabet = string.ascii_letters + string.digits + "-_"
    noise = "".join(random.Random(7).choices(alphabet, k=700 * 1024))
    body = json.dumps({"n": 1, "pad": noise})
    status, _, text = aws.api.request("POST", "/hooks/e2e/big", {"content-type": "application/json"}, body)
    assert status == 413, (status, text[:300])
    assert "409600-byte item limit" in text, text[:300]


def test_a_subscription_verifies_and_receives_signed_events_through_the_admin_function(aws):
    admin = aws.admin

    url = aws.receiver.base + "/subscriber"
    status, sub = admin("POST", "/v1/subscriptions", {"url": url, "event_types": ["contact.*"], "tenant": "e2e"})
    assert status == 201, sub
    SECRETS.append(sub["secret"].removeprefix("whsec_"))  # scanned for by the next test
    # The dispatcher sends the handshake; the echo makes it active.
    aws.pump(lambda: admin("GET", f"/v1/subscriptions/{sub['id']}")[1]["status"] == "active", 60, "active")
    [(_, _, headers, raw)] = [a for a in aws.receiver.arrivals if a[1] == "/subscriber"]
    Webhook(sub["secret"]).verify(raw, headers)
    assert json.loads(raw)["type"] == "webhook.verification"

    status, out = admin("POST", "/v1/events", {"type": "contact.created", "id": "e2e-1", "tenant": "e2e",
                                               "data": {"id": 5}})
    assert (status, out["deliveries"]) == (202, 1), out
    assert admin("POST", "/v1/events", {"type": "contact.created", "id": "e2e-1", "tenant": "e2e"})[1]["duplicate"]
    assert admin("POST", "/v1/events", {"type": "invoice.paid", "tenant": "e2e"})[1]["deliveries"] == 0
    aws.pump(lambda: len(aws.receiver.ids("/subscriber")) >= 2, 60, "the event")
    time.sleep(1)
    aws.pump(lambda: aws.queue_depth(aws.deliveries_url) == 0, 30, "the deliveries queue to drain")
    events = [(h, b) for _, p, h, b in aws.receiver.arrivals if p == "/subscriber"][1:]
    assert len(events) == 1, "the repeated id was delivered once"
    headers, raw = events[0]
    Webhook(sub["secret"]).verify(raw, headers)
    body = json.loads(raw)
    assert (body["type"], body["data"]) == ("contact.created", {"id": 5})
    # A filter, set by the admin function's PATCH and kept in the table:
    # the next publish is decided by it (filtered out: no message queued).
    # Headers too, a credential by its secret's name (resolved by the
    # dispatcher from Secrets Manager; the next test scans every item,
    # message and log line for its value).
    headers = {"X-Team": "crm", "Authorization": {"secret": "partner_token", "prefix": "Bearer "}}
    status, changed = admin("PATCH", f"/v1/subscriptions/{sub['id']}",
                            {"filter": {"data": {"id": {"$gt": 10}}}, "headers": headers})
    assert status == 200 and changed["filter"] == {"data": {"id": {"$gt": 10}}}, changed
    assert changed["headers"] == headers, changed
    out = admin("POST", "/v1/events", {"type": "contact.created", "tenant": "e2e", "data": {"id": 6}})[1]
    assert (out["deliveries"], out["filtered"]) == (0, 1), out
    out = admin("POST", "/v1/events", {"type": "contact.created", "tenant": "e2e", "data": {"id": 60}})[1]
    assert (out["deliveries"], out["filtered"]) == (1, 0), out
    aws.pump(lambda: len(aws.receiver.ids("/subscriber")) >= 3, 60, "the event the filter passes")
    time.sleep(1)
    aws.pump(lambda: aws.queue_depth(aws.deliveries_url) == 0, 30, "the deliveries queue to drain")
    sent = [(h, b) for _, p, h, b in aws.receiver.arrivals if p == "/subscriber"][1:]
    assert [json.loads(b)["data"] for _, b in sent] == [{"id": 5}, {"id": 60}], sent
    headers, raw = sent[-1]
    last = {k.lower(): v for k, v in headers.items()}
    assert (last["x-team"], last["authorization"]) == ("crm", f"Bearer {PARTNER_TOKEN}"), last
    Webhook(sub["secret"]).verify(raw, headers)
    # A transform, applied by the dispatcher at the first attempt: what it
    # signs is what it sends; a test event is dropped.
    transform = {"body": {"json": {"contact": "{{ data.id }}", "kind": "{{ type }}"}}, "drop": "{{ data.test | default(false) }}"}
    status, changed = admin("PATCH", f"/v1/subscriptions/{sub['id']}", {"transform": transform})
    assert status == 200 and changed["transform"] == transform, changed
    for data in ({"id": 70, "test": True}, {"id": 71}):
        assert admin("POST", "/v1/events", {"type": "contact.created", "tenant": "e2e", "data": data})[1]["deliveries"] == 1
    aws.pump(lambda: len(aws.receiver.ids("/subscriber")) >= 4, 60, "the transformed event")
    time.sleep(1)
    aws.pump(lambda: aws.queue_depth(aws.deliveries_url) == 0, 30, "the deliveries queue to drain")
    shaped = [(h, b) for _, p, h, b in aws.receiver.arrivals if p == "/subscriber"][3:]
    assert [json.loads(b) for _, b in shaped] == [{"contact": 71, "kind": "contact.created"}], shaped
    Webhook(sub["secret"]).verify(shaped[0][1], shaped[0][0])


def test_a_subscription_that_does_not_echo_the_token_stays_pending_and_then_fails(aws):
    status, sub = aws.admin("POST", "/v1/subscriptions", {"url": aws.receiver.base + "/silent",
                                                           "event_types": ["silent.*"], "tenant": "e2e"})
    assert status == 201, sub
    SECRETS.append(sub["secret"].removeprefix("whsec_"))

    def attempts():
        with aws.receiver.lock:
            return [json.loads(b) for _, p, _, b in aws.receiver.arrivals if p == "/silent"]

    # `/silent` answers 200 without the token: not a proof of control.
    aws.pump(lambda: len(attempts()) >= 1, 60, "the verification request")
    assert aws.admin("GET", f"/v1/subscriptions/{sub['id']}")[1]["status"] == "pending"
    aws.pump(lambda: aws.admin("GET", f"/v1/subscriptions/{sub['id']}")[1]["status"] == "failed", 60, "failed")
    assert [a["type"] for a in attempts()] == ["webhook.verification"] * 3, "tried 3 times (HOOKFLOW_VERIFICATION_RETRY)"
    assert aws.admin("POST", "/v1/events", {"type": "silent.x", "tenant": "e2e"})[1]["deliveries"] == 0


def test_rotation_ed25519_and_410_through_the_admin_function(aws):
    """Both signatures during rotation (standardwebhooks with each secret),
    an ed25519 subscription checked with PyPI `cryptography` against the
    served public key, and a 410 that disables a subscription and emits
    `subscription.disabled` to another."""
    import base64
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    admin = aws.admin

    def arrivals(path):
        with aws.receiver.lock:
            return [(h, b) for _, p, h, b in aws.receiver.arrivals if p == path]

    def subscribe(path, types, **extra):
        status, sub = admin("POST", "/v1/subscriptions", {"url": aws.receiver.base + path, "event_types": types,
                                                          "tenant": "e2e", **extra})
        assert status == 201, sub
        return sub

    rotated = subscribe("/subscriber-r", ["rot.*"])
    signed = subscribe("/subscriber-ed", ["ed.*"], signing="ed25519")
    gone = subscribe("/subscriber-gone", ["gone.*"])
    watcher = subscribe("/subscriber-w", ["subscription.disabled"])
    for s in (rotated, gone, watcher):
        SECRETS.append(s["secret"].removeprefix("whsec_"))
    subs = (rotated, signed, gone, watcher)
    aws.pump(lambda: all(admin("GET", f"/v1/subscriptions/{s['id']}")[1]["status"] == "active" for s in subs),
             90, "four active subscriptions")

    status, new = admin("POST", f"/v1/subscriptions/{rotated['id']}/rotate-secret")
    assert status == 200, new
    SECRETS.append(new["secret"].removeprefix("whsec_"))
    assert admin("POST", "/v1/events", {"type": "rot.x", "tenant": "e2e", "data": {}})[1]["deliveries"] == 1
    assert admin("POST", "/v1/events", {"type": "ed.x", "tenant": "e2e", "data": {"n": 1}})[1]["deliveries"] == 1
    assert admin("POST", "/v1/events", {"type": "gone.x", "tenant": "e2e", "data": {}})[1]["deliveries"] == 1
    aws.pump(lambda: len(arrivals("/subscriber-r")) >= 2 and len(arrivals("/subscriber-ed")) >= 2
             and len(arrivals("/subscriber-w")) >= 2, 90, "the events and subscription.disabled")

    headers, raw = arrivals("/subscriber-r")[-1]
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(rotated["secret"]).verify(raw, headers)
    Webhook(new["secret"]).verify(raw, headers)

    status, served = admin("GET", f"/v1/subscriptions/{signed['id']}/public-key")
    assert status == 200 and served["public_key"] == signed["public_key"]
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(served["public_key"].removeprefix("whpk_")))
    for headers, raw in arrivals("/subscriber-ed"):
        version, sig = headers["webhook-signature"].split(",")
        assert version == "v1a"
        key.verify(base64.b64decode(sig), f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw)

    assert admin("GET", f"/v1/subscriptions/{gone['id']}")[1]["status"] == "disabled"
    headers, raw = arrivals("/subscriber-w")[-1]
    Webhook(watcher["secret"]).verify(raw, headers)
    body = json.loads(raw)
    assert (body["type"], body["data"]["subscription_id"]) == ("subscription.disabled", gone["id"])


def test_a_subscription_to_an_allowed_sqs_queue_gets_signed_messages_through_the_functions(aws):
    """The admin function takes an ARN the stack allows (active at once) and
    refuses one it does not; the dispatcher puts each event on the queue,
    the `webhook-id` and signature as attributes, AWS's message id logged."""
    url = aws.sqs.create_queue(QueueName="e2e-dest-orders")["QueueUrl"]
    arn = "arn:aws:sqs:us-east-1:123456789012:e2e-dest-orders"
    status, out = aws.admin("POST", "/v1/subscriptions", {"url": "arn:aws:sqs:us-east-1:123456789012:other",
                                                          "event_types": ["dest.*"], "tenant": "e2e"})
    assert status == 422 and "AllowedDestinationArns" in json.dumps(out), out
    status, sub = aws.admin("POST", "/v1/subscriptions", {"url": arn, "event_types": ["dest.*"], "tenant": "e2e"})
    assert status == 201 and sub["status"] == "active", sub
    status, out = aws.admin("POST", "/v1/events", {"type": "dest.made", "tenant": "e2e", "data": {"n": 1}})
    assert status == 202 and out["deliveries"] == 1, out
    got = []

    def arrived():
        r = aws.sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=0)
        got.extend(r.get("Messages", []))
        return got
    [m] = aws.pump(arrived, 60, "the event on the queue")
    a = {k: v["StringValue"] for k, v in m["MessageAttributes"].items()}
    Webhook(sub["secret"]).verify(m["Body"], {k: a[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")})
    assert json.loads(m["Body"])["data"] == {"n": 1}

    def logged():
        status, logs = aws.admin("GET", f"/v1/logs?subscription_id={sub['id']}&tenant=e2e")
        return status == 200 and m["MessageId"] in json.dumps(logs)
    aws.pump(logged, 30, "the attempt logged with AWS's message id")


def test_per_key_ordering_holds_through_the_fifo_queue_under_a_receiver_failing_at_random(aws):
    """80 events over 8 keys to an `ordering: per_key` subscription whose
    endpoint fails a quarter of the attempts: for every key, each attempt
    is of the oldest event of that key not yet delivered (a retry, or the
    next one once the previous got its 2xx), and every event arrives.

    What it must prove, and the figure each needs: several message groups
    interleaved in the FIFO queue's batches (8 keys, one publisher per two),
    and a key held back by its failing head more than once (10 events a key
    at a 25% failure rate: ~27 failed attempts expected, more than 10
    required). 80 events, not the 1,000 of the `hookflow dev` run
    (tests/test_subscriptions.py): moto's TransactWriteItems deep-copies
    the whole table once per item of every transaction, so each write costs
    time in proportion to what the table holds."""
    keys, per_key = 8, 10

    admin = aws.admin

    status, sub = admin("POST", "/v1/subscriptions", {
        "url": aws.receiver.base + "/subscriber-ordered", "event_types": ["ord.*"], "tenant": "e2e",
        "ordering": "per_key", "key": "{{ data.key }}"})
    assert status == 201, sub
    SECRETS.append(sub["secret"].removeprefix("whsec_"))
    aws.pump(lambda: admin("GET", f"/v1/subscriptions/{sub['id']}")[1]["status"] == "active", 60, "active")

    def publish_keys(first):
        # Four publishers, two keys each: each key's events in order.
        for n in range(per_key):
            for k in range(first, keys, 4):
                status, out = admin("POST", "/v1/events", {"type": "ord.placed", "tenant": "e2e",
                                                          "data": {"key": f"k{k}", "n": n}})
                assert (status, out["deliveries"]) == (202, 1), out

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(publish_keys, first) for first in range(4)]:
            f.result()
    assert aws.queue_depth(aws.deliveries_url) == 0, "ordered deliveries go to the FIFO queue only"

    def delivered():
        with aws.receiver.lock:
            return len({(k, n) for k, n, status in aws.receiver.ordered if status < 300})

    deadline = time.monotonic() + 300
    while delivered() < keys * per_key:
        assert time.monotonic() < deadline, f"{delivered()} of {keys * per_key} delivered"
        if aws.ordered.poll_once(wait=0) == 0:
            time.sleep(0.05)
    # Everything arrived; a message whose attempt arrived but whose
    # invocation failed after it (at least once) is still queued: drain it
    # too, so its repeat is in the order checked below (CI saw one left).
    deadline = time.monotonic() + 60
    while aws.queue_depth(aws.ordered_url) != 0:
        assert time.monotonic() < deadline, "the ordered queue drained"
        if aws.ordered.poll_once(wait=0) == 0:
            time.sleep(0.2)

    with aws.receiver.lock:
        attempts = list(aws.receiver.ordered)
    by_key = collections.defaultdict(list)
    for k, n, status in attempts:
        by_key[k].append((n, status))
    assert len(by_key) == keys
    for k, seq in by_key.items():
        oldest = 0  # the oldest event of this key not yet delivered
        for n, status in seq:
            # The oldest undelivered one, or again the one just delivered
            # (at least once: a message redone after its attempt).
            assert n in (oldest, oldest - 1), f"{k}: event {n} was sent while {oldest} was not delivered: {seq}"
            if n == oldest and status < 300:
                oldest += 1
        assert oldest == per_key, f"{k}: {oldest} of {per_key} delivered"
    failed = sum(1 for *_, status in attempts if status >= 300)
    assert failed > 10, f"the receiver failed {failed} attempts: the retries were exercised"
    assert aws.queue_depth(aws.ordered_url) == 0
    print(f"per-key ordering on AWS: {len(attempts)} attempts, {failed} failed, for {keys * per_key} events")


@pytest.mark.parametrize("receive_limit", [3, 1000])
def test_a_key_stuck_past_the_ordered_queues_limits_ends_dead_and_listed_then_replays(aws, receive_limit):
    """One key's receiver fails every attempt while other keys succeed, on
    an ordered queue that keeps messages 60 s (SQS's least), with retries
    every 4 s (a ladder longer than the retention). Nothing may vanish
    with the queue. With a receive limit of 3, every attempt and every
    hand-back behind a failing head spends a receive: the key's messages
    reach the DLQ and are read back. With the template's 1,000, the head's
    retries end by the retention less a quarter, and the messages behind
    it, by then as old, get one attempt or none. Either way each of the
    stuck key's events is listed in `/v1/dead` and replays under its
    webhook-id, and the other keys arrive complete and in order."""
    sqs, admin = aws.sqs, aws.admin
    dlq_arn = sqs.get_queue_attributes(QueueUrl=aws.ordered_dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    tight = {"MessageRetentionPeriod": "60",
             "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(receive_limit)})}
    kept = sqs.get_queue_attributes(QueueUrl=aws.ordered_url, AttributeNames=["MessageRetentionPeriod",
                                                                              "RedrivePolicy"])["Attributes"]
    status, sub = admin("POST", "/v1/subscriptions", {
        "url": aws.receiver.base + "/subscriber-stuck", "event_types": [f"stuck{receive_limit}.*"], "tenant": "e2e",
        "ordering": "per_key", "key": "{{ data.key }}"})
    assert status == 201, sub
    SECRETS.append(sub["secret"].removeprefix("whsec_"))
    aws.pump(lambda: admin("GET", f"/v1/subscriptions/{sub['id']}")[1]["status"] == "active", 60, "active")
    sqs.set_queue_attributes(QueueUrl=aws.ordered_url, Attributes=tight)
    with aws.receiver.lock:
        aws.receiver.stuck_fails = True
        seen_before = len(aws.receiver.stuck)
    aws.restart_functions(HOOKFLOW_ORDERED_RETENTION="60s", HOOKFLOW_EVENT_RETRY=",".join(["4s"] * 30))
    try:
        events = {}  # (key, n) -> event id
        for n in range(4):
            for key in ("stuck", "ok-a", "ok-b"):
                status, out = admin("POST", "/v1/events", {"type": f"stuck{receive_limit}.placed", "tenant": "e2e",
                                                          "data": {"key": key, "n": n}})
                assert (status, out["deliveries"]) == (202, 1), out
                events[(key, n)] = out["id"]
        stuck_ids = {events[("stuck", n)] for n in range(4)}

        def dead_of_stuck():
            status, page = admin("GET", "/v1/dead?tenant=e2e")
            assert status == 200, page
            # An event's delivery: its run id is the event's id.
            return {d["run_id"]: d for d in page["dead"] if d["run_id"] in stuck_ids}

        aws.pump(lambda: len(dead_of_stuck()) == 4 and aws.queue_depth(aws.ordered_url) == 0
                 and aws.queue_depth(aws.ordered_dlq) == 0, 150, "every stuck event dead and listed")
        dead = dead_of_stuck()
        reasons = sorted(d["reason"] for d in dead.values())
        from_dlq = [r for r in reasons if "dead-letter queue" in r]
        with aws.receiver.lock:
            attempts = aws.receiver.stuck[seen_before:]
        if receive_limit == 3:
            assert len(from_dlq) == 4, reasons
        else:
            assert not from_dlq, reasons
            # The head: several attempts, its ladder cut by the retention
            # (its last failure either ends it, "gave up after N attempts",
            # or is retried after the cut, "given up unsent": which one is
            # a matter of milliseconds).
            head = [status for k, n, _, status in attempts if k == "stuck" and n == 0]
            assert len(head) >= 2 and all(s >= 500 for s in head), (head, reasons)
        for key in ("ok-a", "ok-b"):
            got = [n for k, n, _, status in attempts if k == key and status < 300]
            assert got == [0, 1, 2, 3], f"{key} arrived complete and in order beside the stuck key: {got}"
        assert {n for k, n, _, _ in attempts if k == "stuck"} <= {0, 1, 2, 3}
        assert [n for k, n, _, _ in attempts if k == "stuck"][0] == 0, "the key's head went first"
    finally:
        sqs.set_queue_attributes(QueueUrl=aws.ordered_url, Attributes=kept)
        aws.restart_functions()
        with aws.receiver.lock:
            aws.receiver.stuck_fails = False

    # Replayed once the receiver is fixed: each under its webhook-id.
    for event_id, d in dead.items():
        status, out = admin("POST", f"/v1/dead/{d['delivery_id']}/replay?tenant=e2e")
        assert status == 202, out

    ids = {d["delivery_id"] for d in dead.values()}

    def replayed():
        with aws.receiver.lock:
            return {wid for k, _, wid, status in aws.receiver.stuck if wid in ids and status < 300}

    aws.pump(lambda: replayed() == ids, 60, "the four replayed, each under its webhook-id")
    assert not dead_of_stuck(), "forgotten once replayed"


def readable(value):
    """A scanned item as JSON text, its compressed attributes (zlib, stored
    as binary) inflated, so that a scan sees what they hold."""
    if isinstance(value, dict):
        return {k: readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return zlib.decompress(bytes(value)).decode()
    return value


def test_no_secret_value_is_in_any_item_message_or_log_line(aws):
    # Every page of the scan (a table past 1 MB answers in pages).
    pages = list(aws.ddb.get_paginator("scan").paginate(TableName=aws.table))
    items = json.dumps(readable([item for page in pages for item in page["Items"]]))
    assert "signed" in items, "the scan sees the runs"
    queued = []

    def read_queues():
        # The AWS destinations' queues too (what subscriptions were sent).
        dests = aws.sqs.list_queues(QueueNamePrefix="e2e-dest-").get("QueueUrls", [])
        for url in (aws.runs_url, aws.deliveries_url, aws.deliveries_dlq, aws.ordered_url, aws.ordered_dlq, *dests):
            queued.extend(m["Body"] for m in aws.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", []))
        return queued

    # Not vacuous: the poisoned message an earlier test left in the DLQ is
    # read at least (visible again within the harness's 2 s).
    wait_for(read_queues, 10, "a queued message to read")
    logs = "".join(p.read_text(errors="replace") for p in aws.logs)
    assert "inbound accepted" in logs, "the functions' log lines are captured"
    for secret in SECRETS:
        assert secret not in items, f"a secret in DynamoDB: {secret[:4]}…"
        assert not any(secret in q for q in queued), f"a secret on SQS: {secret[:4]}…"
        assert secret not in logs, f"a secret in a log line: {secret[:4]}…"


def ingress_rss_kib():
    """The resident memory of the ingress process `cargo lambda watch`
    started (the newest, if a test restarted the emulator)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{d}/exe")
            status = open(f"/proc/{d}/status").read()
        except OSError:
            continue
        if exe.endswith("/debug/ingress"):
            rss = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
            found.append((os.stat(f"/proc/{d}").st_mtime, rss))
    assert found, "the ingress process is running"
    return max(found)[1]


def test_a_flood_of_unknown_trigger_paths_keeps_the_ingress_memory_bounded(aws):
    """10,000 requests to distinct unknown paths of 4 KiB (each a 404, each a
    flow-cache miss the ingress remembers): its RSS grows by less than 24 MiB.
    The flow cache holds at most 4 MiB (`FLOW_CACHE_BYTES`); the unbounded map
    it replaced kept every path, ~41 MiB here. Last in the file: its 10,000
    log items would fill the first page of the no-secret scan."""
    tail = "x" * 4000
    for i in range(200):  # warm up the allocator and the SDK's pools
        aws.api.request("POST", f"/hooks/flood/warm-{i}/{tail}")
    before = ingress_rss_kib()

    def one(i):
        return aws.api.request("POST", f"/hooks/flood/{i:05d}/{tail}", timeout=60)[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = collections.Counter(pool.map(one, range(10_000)))
    grown = ingress_rss_kib() - before
    print(f"\ningress RSS after 10,000 unknown 4 KiB paths: +{grown / 1024:.1f} MiB ({statuses})")
    assert statuses == {404: 10_000}, statuses
    assert grown < 24 * 1024, f"the ingress grew by {grown / 1024:.1f} MiB"
    # Each is counted, but only a sample is stored: at most 20 entries a
    # minute an instance (one item each would be 10,200).
    logged, page = 0, {}
    while True:
        page = aws.ddb.scan(TableName=aws.table, Select="COUNT", FilterExpression="begins_with(pk, :p)",
                            ExpressionAttributeValues={":p": {"S": "LOG#flood#"}},
                            **({"ExclusiveStartKey": page["LastEvaluatedKey"]} if "LastEvaluatedKey" in page else {}))
        logged += page["Count"]
        if "LastEvaluatedKey" not in page:
            break
    print(f"request-log items of the flood: {logged}")
    assert 0 < logged < 1_000, logged


def urllib_post(url):
    import urllib.request
    urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=10).read()


def test_an_idempotency_claim_whose_answer_was_lost_is_the_requests_own(aws, faults):
    """The ingress's conditional claim of an idempotency key is written,
    its answer lost: the SDK's retry finds the key claimed — by this very
    request (the claim carries its own mark), so the request goes on and is
    accepted, not answered 409 as if another were in progress (which it
    would be for the claim's 60 s)."""
    fault = faults.fail(PUT, 1, after=True, matching="claim-answer-lost")
    headers = {"content-type": "application/json", "idempotency-key": "claim-answer-lost"}
    status, _, body = aws.api.request("POST", "/hooks/e2e/keyed", headers, json.dumps({"n": 3}))
    assert fault.failed == 1, "the fault was injected"
    assert status == 202, body
    aws.pump(lambda: any(body_n(b) == 3 for _, p, _, b in list(aws.receiver.arrivals) if p == "/keyed"),
             60, "the delivery")


def kill_mid_batch(aws, esm, process, tries=5):
    """Hands the next batch of `esm` to its function and SIGKILLs the
    function's process while it works on it; starts the functions again.
    A kill that lands after the invocation answered (nothing was in
    flight) is made again on the next batch, up to `tries` times. Returns
    the batch the kill interrupted and when it died."""
    for _ in range(tries):
        messages = wait_for(lambda: esm.receive(wait=1), 60, f"a batch for the {process}")
        result = {}
        t = threading.Thread(target=lambda: result.update(r=esm.deliver(messages, timeout=15)))
        t.start()
        time.sleep(0.05)
        pids = subprocess.run(["pgrep", "-f", f"debug/{process}"], capture_output=True, text=True).stdout.split()
        assert pids, f"the {process} process"
        for pid in pids:
            os.kill(int(pid), signal.SIGKILL)
        killed_at = time.monotonic()
        # Still waiting a second after the kill: the process died holding
        # the batch. Starting the functions again ends that call at once
        # (rather than after its 15 s timeout).
        t.join(1)
        aws.restart_functions()
        t.join(30)
        if not result.get("r", (False, None))[0]:
            return messages, killed_at
    raise AssertionError(f"no kill of the {process} landed while its batch was in flight ({tries} tries)")


def test_chaos_random_faults_and_kills_on_the_aws_path_lose_no_accepted_event(aws):
    """150 events through the real functions with everything going wrong
    at once: the receiver fails 30% of attempts at random; the proxy fails
    5% of the functions' DynamoDB and SQS calls at random, half before moto
    does them and half after (the call took effect, its answer is lost);
    the dispatcher and the executor are each SIGKILLed in the middle of a
    batch. A caller retries a 503 or 409 with its idempotency key, as a
    partner would. Every accepted event is delivered at both of its steps,
    each step under one webhook-id however often it was sent, every run
    finishes, and the queues and dead-letter queues end empty.

    150 events: each makes about ten DynamoDB and SQS calls, so 5% fails
    ~75 of them, enough that both kinds (before and after moto did the
    call) land on the ingress, the executor and the dispatcher several
    times (asserted below: both kinds seen); each kill lands a third and
    two thirds of the way in, on a batch whose invocation had not answered
    (a kill that came after is made again on the next batch), and the work
    it interrupted is asserted done after it: every delivery of the
    dispatcher's batch sent again, the executor's unfinished runs finished."""
    n_events = 150
    time.sleep(1)
    aws.pump(lambda: aws.queue_depth(aws.runs_url) == 0 and aws.queue_depth(aws.deliveries_url) == 0, 120,
             "what earlier tests left to finish")
    dlqs = {name: aws.sqs.get_queue_url(QueueName=name)["QueueUrl"] for name in ("e2e-runs-dlq", "e2e-deliveries-dlq")}
    dead_before = {name: aws.queue_depth(url) for name, url in dlqs.items()}
    failed = aws.proxy.chaos(0.05, seed=7)
    accepted = {}
    retried = collections.Counter()
    kills = {}
    try:
        for n in range(n_events):
            headers = {"content-type": "application/json", "idempotency-key": f"chaos-{n}"}
            for _ in range(30):
                status, _, body = aws.api.request("POST", "/hooks/e2e/chaos", headers, json.dumps({"n": n}))
                if status == 202:
                    accepted[n] = json.loads(body)["event_id"]
                    break
                assert status in (409, 500, 502, 503), (n, status, body)
                retried[status] += 1
                time.sleep(0.1)
            if n % 20 == 19:
                for esm in (aws.runs, aws.deliveries):
                    esm.poll_once(wait=0)
            if n == n_events // 3:
                kills["dispatcher"] = kill_mid_batch(aws, aws.deliveries, "dispatcher")
            if n == 2 * n_events // 3:
                kills["executor"] = kill_mid_batch(aws, aws.runs, "executor")

        def delivered():
            with aws.receiver.lock:
                ok = {(p, n) for p, n, _, status in aws.receiver.chaos if status < 300}
            return sum(1 for n in accepted if ("/chaos-a", n) in ok and ("/chaos-b", n) in ok)
        aws.pump(lambda: delivered() == len(accepted), 900,
                 f"every accepted event delivered at both steps ({delivered()} so far)")
    finally:
        aws.proxy.clear()
    time.sleep(1)
    aws.pump(lambda: aws.queue_depth(aws.runs_url) == 0 and aws.queue_depth(aws.deliveries_url) == 0, 120,
             "the queues to drain")
    print(f"\nchaos: {len(accepted)} of {n_events} accepted; caller retries {dict(retried)}; "
          f"faults injected {dict(failed)}")
    assert len(accepted) == n_events, "a caller retrying with its key gets its event accepted"
    assert {v for (_, v) in failed} == {"before", "after"}, failed
    with aws.receiver.lock:
        attempts = list(aws.receiver.chaos)
    ids = collections.defaultdict(set)
    for path, n, webhook_id, _ in attempts:
        ids[(path, n)].add(webhook_id)
    forked = {k: v for k, v in ids.items() if len(v) != 1}
    assert not forked, f"a step sent under more than one webhook-id: {forked}"
    runs = []
    pages = aws.ddb.get_paginator("scan").paginate(
        TableName=aws.table, FilterExpression="flow_id = :f AND sk = :run",
        ExpressionAttributeValues={":f": {"S": "chaos"}, ":run": {"S": "RUN"}})
    for page in pages:
        runs += [item["status"]["S"] for item in page["Items"]]
    assert len(runs) == n_events, f"one run an event: {len(runs)}"
    assert collections.Counter(runs) == {"succeeded": n_events}, collections.Counter(runs)
    assert {name: aws.queue_depth(url) for name, url in dlqs.items()} == dead_before, "nothing dead-lettered"

    # Each kill interrupted accepted work not yet done, which was done
    # after it: the dispatcher's batch, every delivery sent again; the
    # executor's, the runs whose last step was not yet delivered then.
    with aws.receiver.lock:
        timed = list(aws.receiver.chaos_at)
        arrivals = [(at, h.get("webhook-id")) for at, p, h, _ in aws.receiver.arrivals if p.startswith("/chaos-")]
    messages, killed_at = kills["dispatcher"]
    batch = {json.loads(json.loads(m["Body"])["payload"])["delivery"]["id"] for m in messages}
    assert batch, "the dispatcher was killed with deliveries in hand"
    after = {w for at, w in arrivals if at > killed_at}
    assert batch <= after, f"deliveries of the killed batch not sent after the kill: {batch - after}"
    messages, killed_at = kills["executor"]
    n_of_run = {event.replace("evt_", "run_", 1): n for n, event in accepted.items()}
    runs = [n_of_run.get(json.loads(json.loads(m["Body"])["payload"]).get("run_id")) for m in messages]
    def finished(before):
        return {n for at, p, n, s in timed if p == "/chaos-b" and s < 300 and (at < killed_at) == before}
    pending = [n for n in runs if n is not None and n not in finished(True)]
    assert pending, f"the executor was killed with no run of its batch left to finish: {runs}"
    assert set(pending) <= finished(False), pending


def test_the_console_of_a_deployed_stack_shows_its_flows_log_and_dead_deliveries(aws):
    """`hookflow console --stack` on this machine, against the emulator the
    functions ran on (the stack's outputs name its table, queues and API):
    in a real browser (tests/test_console.py's), the same flows, request log
    and dead deliveries as the admin function answers; a flow checked, dead
    deliveries replayed with progress, a run replayed."""
    import re

    from test_console import _browser, _free_port, wait

    # A flow whose step halts on the receiver's 200: its delivery is dead.
    flow = (f"id: console-dead\ntenant: e2e\ntrigger: {{ type: webhook, path: console-dead }}\nsteps:\n"
            f"  - id: send\n    type: http\n    url: {aws.receiver.base}/console\n"
            "    status: { success: [201], halt: [200] }\n")
    status, _, body = aws.api.request("PUT", "/v1/flows/e2e/console-dead", {"content-type": "application/yaml"}, flow)
    assert status in (200, 201), body
    status, _, body = aws.api.request("POST", "/hooks/e2e/console-dead", {"content-type": "application/json"}, "{}")
    assert status == 202, body
    event_id = json.loads(body)["event_id"]

    def dead_ids():
        status, _, body = aws.api.request("GET", "/v1/dead")
        assert status == 200, body
        return sorted(d["delivery_id"] for d in json.loads(body)["dead"])

    aws.pump(lambda: any("console-dead" in json.dumps(d) for d in json.loads(aws.api.request("GET", "/v1/dead")[2])["dead"]),
             60, "the halted delivery dead")
    # The request log one row a request, from the admin function: the
    # caller answered 202, the run failed at its step, its delivery dead.
    def row():
        status, _, body = aws.api.request("GET", "/v1/requests?tenant=e2e&flow_id=console-dead&limit=5")
        assert status == 200, body
        return next((r for r in json.loads(body)["requests"] if r["event_id"] == event_id), None)

    aws.pump(lambda: (row() or {}).get("outcome") == "failed", 60, "the request's row: its run failed")
    mine = row()
    assert (mine["status"], mine["step"], mine["path"]) == (202, "send", "/hooks/e2e/console-dead"), mine
    assert mine["deliveries"] == {"delivered": 0, "pending": 0, "failed": 1, "attempts": 1}, mine
    request_key = mine["key"]
    status, _, body = aws.api.request("GET", "/v1/flows")
    assert status == 200, body
    flows = sorted(f"{f['tenant']}/{f['id']}" for f in json.loads(body)["flows"])
    assert "e2e/console-dead" in flows and "e2e/signed" in flows, flows

    # The stack as `sam deploy` leaves it, to `--stack`: template.yaml's
    # outputs and parameters, naming the emulator's table and queues.
    session = boto3.session.Session(aws_access_key_id="harness", aws_secret_access_key="harness",
                                    region_name="us-east-1")
    api_url = "https://e2e.execute-api.us-east-1.amazonaws.com"
    session.client("cloudformation", endpoint_url=aws.moto.url).create_stack(StackName="e2e-console", TemplateBody=json.dumps({
        "Parameters": {"SecretsPrefix": {"Type": "String", "Default": "hookflow/"},
                       "LogRetentionDays": {"Type": "Number", "Default": "14"}},
        "Resources": {"AlarmTopic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"TableName": {"Value": aws.table}, "RunsQueueUrl": {"Value": aws.runs_url},
                    "DeliveriesQueueUrl": {"Value": aws.deliveries_url},
                    "OrderedDeliveriesQueueUrl": {"Value": aws.ordered_url}, "ApiUrl": {"Value": api_url}}}))
    port = _free_port()
    env = {k: v for k, v in aws.env.items() if not k.startswith("HOOKFLOW_")}
    # `hookflow stack-env`: the same names, as a shell's exports.
    exported = subprocess.run([os.environ["HOOKFLOW_BIN"], "stack-env", "--stack", "e2e-console"], env=env,
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert exported.returncode == 0, exported.stderr
    shell = subprocess.run(["sh", "-c", exported.stdout + 'printf "%s|%s|%s" "$HOOKFLOW_TABLE" "$HOOKFLOW_API_URL" '
                            '"$HOOKFLOW_DELIVERIES_QUEUE_URL"'], capture_output=True, text=True, timeout=10)
    assert shell.stdout == f"{aws.table}|{api_url}|{aws.deliveries_url}", (exported.stdout, shell.stdout)
    # `hookflow subscriptions` on a deployment: the admin API in process,
    # with the caller's credentials (the emulator's here).
    def admin_cli(*args):
        out = subprocess.run([os.environ["HOOKFLOW_BIN"], *args, "--stack", "e2e-console"], env=env,
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        return out.stdout
    made = json.loads(admin_cli("subscriptions", "create", "--endpoint", "http://127.0.0.1:9/cli", "--types",
                                "cli.*", "--tenant", "e2e-cli"))
    assert made["status"] == "pending" and made["secret"].startswith("whsec_"), made
    assert admin_cli("subscriptions", "list", "--tenant", "e2e-cli").split()[:3] == [made["id"], "pending",
                                                                                      "http://127.0.0.1:9/cli"]
    admin_cli("subscriptions", "delete", made["id"])
    out = open(aws.tmp / "console.log", "w+")
    proc = subprocess.Popen([os.environ["HOOKFLOW_BIN"], "console", "--stack", "e2e-console", "--listen", f"127.0.0.1:{port}"],
                            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    browser = None
    try:
        def link():
            out.flush()
            m = re.search(r"^console: (http://\S+)$", (aws.tmp / "console.log").read_text(), re.M)
            return m and m.group(1)

        url = wait(link, 30, "the console's sign-in link")
        base = f"http://127.0.0.1:{port}"
        browser = _browser()
        # The emulator answers a request log of many runs slowly (a Query a
        # run); a bound, not the budget.
        browser.set_page_load_timeout(60)
        browser.get(url)
        wait(lambda: browser.find_element("tag name", "h1").text == "Overview", what="the overview")
        browser.get(f"{base}/console/flows")
        shown = sorted(f"{row.find_element('css selector', '.hint').text.split(' · ')[0]}/"
                       f"{row.find_element('tag name', 'strong').text}"
                       for row in browser.find_elements("css selector", "tbody tr"))
        assert shown == flows, (shown, flows)
        urls = [c.text for c in browser.find_elements("css selector", "code.url")]
        assert f"{api_url}/hooks/e2e/console-dead" in urls, urls
        # One row a request, its time a link to its run's page.
        browser.get(f"{base}/console/log?tenant=e2e&flow_id=console-dead")
        shown = browser.find_element("css selector", f"#log-rows tr[data-key='{request_key}']")
        assert "Failed at send" in shown.text and "202" in shown.text and "1 failed" in shown.text, shown.text
        assert shown.find_element("css selector", "a.open").get_attribute("href").endswith(f"/console/runs/{request_key}")
        browser.get(f"{base}/console/log?tenant=e2e&event_id={event_id}")
        assert event_id in browser.find_element("id", "log-rows").text
        # Without a tenant filter: every tenant's log is read.
        browser.get(f"{base}/console/log?event_id={event_id}")
        assert event_id in browser.find_element("id", "log-rows").text
        browser.get(f"{base}/console/dead")
        listed = sorted(b.get_attribute("value") for b in browser.find_elements("css selector", "input[name=id]"))
        assert listed == dead_ids() and listed, listed
        # The flow's page: its stored source, checked (a dry run of putFlow).
        browser.get(f"{base}/console/flows/e2e/console-dead")
        assert "id: console-dead" in browser.find_element("id", "flow-source").get_attribute("value")
        browser.find_element("css selector", "button[name=action][value=check]").click()
        wait(lambda: "Valid. Nothing was saved." in browser.page_source, what="the check's verdict")
        # Every dead delivery of the flow replayed, with progress: each is
        # found by its key (its tenant given), queued, and runs again.
        mine = [d for d in json.loads(aws.api.request("GET", "/v1/dead?flow_id=console-dead")[2])["dead"]]
        browser.get(f"{base}/console/dead?flow_id=console-dead")
        browser.find_element("css selector", "button[name=which][value=matching]").click()
        wait(lambda: f"{len(mine)} of {len(mine)} queued again — done." in
             browser.find_element("id", "replay-status").text, 60, "the replay's progress to its end")
        aws.pump(lambda: sorted(d["delivery_id"] for d in json.loads(
            aws.api.request("GET", "/v1/dead?flow_id=console-dead")[2])["dead"]) == sorted(d["delivery_id"] for d in mine),
            60, "the replayed deliveries dead again (the step halts on 200)")
        # A run replayed from its page: a new run, started on AWS as the
        # ingress starts one (its outbox kept), whose delivery dies too.
        run_id = mine[0]["run_id"]
        browser.get(f"{base}/console/runs/{run_id}")
        browser.find_element("css selector", "form[action$='/replay'] button").click()
        wait(lambda: f"A replay of {run_id}" in browser.page_source, 30, "the new run's page")
        new_run = browser.find_element("css selector", "h1 code").text
        assert new_run != run_id
        aws.pump(lambda: any(d["run_id"] == new_run for d in json.loads(
            aws.api.request("GET", "/v1/dead?flow_id=console-dead")[2])["dead"]), 60, "the replayed run's delivery dead")
        assert [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"] == []
    finally:
        if browser:
            browser.quit()
        proc.terminate()
        proc.wait(10)
        out.close()
