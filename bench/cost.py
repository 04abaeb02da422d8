"""`scripts/bench cost`: dollars per million events on AWS, from what the
real functions actually sent.

The four Lambda binaries run under `cargo lambda watch` against moto's
server, with the harness of tests/test_lambda.py playing API Gateway and
the SQS event source mappings (tests/aws_harness.py). For each scenario
the bench records every AWS request the functions and the event source
mappings made (moto's request recorder; the harness's own bookkeeping calls
are signed with another key and left out), and prices:

- DynamoDB (on-demand): write units per item by DynamoDB's size rules (1 KB
  a unit, doubled in a transaction; an update or delete by the size of the
  item it changes, as last written), read units for consistent reads (4 KB
  a unit; a `Query` as one unit — the bench's queries return little);
- SQS: requests, each send counted in 64 KiB chunks; the event source
  mappings' receives that returned messages and their deletes (their empty
  long polls are a fixed cost per queue, not per event: see
  docs/PERFORMANCE.md);
- Lambda: invocations, and each invocation's measured time at the
  template's memory and arm64 price (the emulator runs debug builds: an
  upper bound);
- API Gateway (HTTP API): requests in 512 KiB chunks;
- CloudWatch Logs: the bytes the functions wrote, plus the platform's
  START/END/REPORT lines per invocation;
- Secrets Manager: API calls.

Prices are in bench/prices-us-east-1.json, with their date. Scenarios:

  A  one-step async flow, 2 KiB JSON body forwarded, receiver answers 200
  B  the same with a 20 KiB body
  C  a sync request-response flow (examples/hello.yaml)
  D  one event fanned out to 10 subscriptions (per million deliveries)
  E  A with a receiver failing 30% of attempts at random
  F  events published to 10 subscriptions whose filter passes 1 event in
     10 (per million events published: the nine in ten filtered out cost
     no queue message and no delivery)
  U  one event to one subscription (per million deliveries)
  R  U's subscription paced at 5 a second: R − U is what a limit costs
  Q  U's event to a subscription whose destination is an SQS queue (its
     SendMessage priced as the account's SQS request it is)
  L  not a cost: accept→arrival latency of A's events sent one at a time
     (the 202's arrival to the delivery's), p50/p99 in ms, on this
     emulator (the harness plays the event source mappings, polling every
     0.2 s: compare runs of this bench, not with AWS)

Events go in groups of BATCH (default 10) before the queues are drained,
so the event source mappings hand the functions batches as under moderate
traffic; BATCH=1 gives the one-message-per-invocation worst case. The run
ends with one JSON line per scenario:
`{"scenario": "A", "usd_per_million": …, "by_service": {…}}`.
"""

import base64
import collections
import json
import math
import os
import pathlib
import random
import re
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import test_lambda as tl  # noqa: E402  (the shared AWS world of the e2e tests)
from aws_harness import api_gateway_event  # noqa: E402

PRICES = json.loads((ROOT / "bench" / "prices-us-east-1.json").read_text())
MEMORY_GB = int(re.search(r"MemorySize:\s*(\d+)", (ROOT / "template.yaml").read_text()).group(1)) / 1024
BATCH = int(os.environ.get("BATCH", "10"))
N = int(os.environ.get("N", "30"))


# --- DynamoDB's size rules ---------------------------------------------------

def value_size(v):
    (kind, x), = v.items()
    if kind == "S":
        return len(x.encode())
    if kind == "N":
        return (len(x.lstrip("-").replace(".", "")) + 1) // 2 + 1
    if kind == "B":
        return len(base64.b64decode(x))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(e) for k, e in x.items())
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in x)
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: e}) for e in x)
    raise ValueError(kind)


def item_size(item):
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def key_of(item):
    return (item.get("pk", {}).get("S"), item.get("sk", {}).get("S"))


def kind_of(key):
    """A key's kind, for the breakdown: `RUN#…/LOG#…` → `RUN/LOG`."""
    pk, sk = key
    sk = (sk or "?").split("#")[0]
    return f"{(pk or '?').split('#')[0]}/{'at' if sk.isdigit() else sk}"


def kb(size, unit):
    return max(1, math.ceil(size / unit))


def entries(text):
    """The recorder's entries: JSON objects one after another (not always a
    line each when requests were recorded concurrently)."""
    decoder, i = json.JSONDecoder(), 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return
        entry, i = decoder.raw_decode(text, i)
        yield entry


class Ledger:
    """What the recorded requests cost, in each service's billing units."""

    def __init__(self):
        self.sizes = {}  # (pk, sk) -> size as last written
        self.wru = self.rru = 0
        self.sqs = 0
        self.secrets = 0
        self.ops = collections.Counter()
        self.by_item = collections.Counter()  # (operation, kind of item) -> write units

    def charge(self, op, key, units):
        self.wru += units
        self.by_item[(op, kind_of(key))] += units

    def dynamodb(self, op, body):
        self.ops[op] += 1
        if op == "TransactWriteItems":
            for w in body["TransactItems"]:
                (kind, spec), = w.items()
                if kind == "Put":
                    size = item_size(spec["Item"])
                    self.sizes[key_of(spec["Item"])] = size
                else:
                    size = self.sizes.get(key_of(spec.get("Key", {})), 1)
                self.charge(op, key_of(spec.get("Item") or spec.get("Key", {})), 2 * kb(size, 1024))
        elif op == "PutItem":
            size = item_size(body["Item"])
            self.sizes[key_of(body["Item"])] = size
            self.charge(op, key_of(body["Item"]), kb(size, 1024))
        elif op in ("UpdateItem", "DeleteItem"):
            self.charge(op, key_of(body["Key"]), kb(self.sizes.get(key_of(body["Key"]), 1), 1024))
        elif op == "BatchWriteItem":
            for writes in body["RequestItems"].values():
                for w in writes:
                    item = w.get("PutRequest", {}).get("Item")
                    k = key_of(item or w.get("DeleteRequest", {}).get("Key", {}))
                    self.charge(op, k, kb(item_size(item) if item else 1, 1024))
        elif op == "GetItem":
            size = self.sizes.get(key_of(body["Key"]), 1)
            self.rru += kb(size, 4096) * (1 if body.get("ConsistentRead") else 0.5)
        elif op in ("Query", "Scan"):
            self.rru += 1

    def sqs_call(self, op, body, raw_len):
        self.ops[op] += 1
        if op in ("SendMessageBatch", "SendMessage"):
            self.sqs += kb(raw_len, PRICES["sqs"]["chunk_bytes"])
        else:
            self.sqs += 1

    def read(self, recording):
        for entry in entries(recording.read_text()):
            h = entry["headers"]
            if "Credential=functions/" not in h.get("Authorization", ""):
                continue
            raw = base64.b64decode(entry["body"]) if entry.get("body_encoded") else (entry.get("body") or "").encode()
            target = h.get("X-Amz-Target", "")
            service, _, op = target.partition(".")
            body = json.loads(raw) if raw else {}
            if service.startswith("DynamoDB"):
                self.dynamodb(op, body)
            elif service == "AmazonSQS":
                self.sqs_call(op, body, len(raw))
            elif service == "secretsmanager":
                self.ops[op] += 1
                self.secrets += 1


# --- the world ---------------------------------------------------------------

class Meter:
    """Counts Lambda invocations (and their time), API Gateway requests,
    the event source mappings' useful SQS requests and the log bytes."""

    def __init__(self, aws):
        self.aws = aws
        self.reset()
        invoke = aws.watch.invoke

        def counted(function, payload, timeout=120):
            start = time.monotonic()
            out = invoke(function, payload, timeout)
            self.invocations[function] += 1
            self.seconds += time.monotonic() - start
            if function in ("ingress", "admin") and "requestContext" in payload:
                self.api += kb(len(json.dumps(payload)), PRICES["api_gateway"]["chunk_bytes"])
            return out
        aws.watch.invoke = counted
        for esm in (aws.runs, aws.deliveries, aws.ordered):
            self._wrap(esm)

    def _wrap(self, esm):
        receive, sqs = esm.receive, esm.sqs

        def receiving(wait=1):
            got = receive(wait)
            if got:
                self.esm_sqs += 1  # the receive that returned them
            return got
        esm.receive = receiving

        class Deletes:
            def __getattr__(_, name):
                return getattr(sqs, name)

            def delete_message_batch(_, **kw):
                self.esm_sqs += 1
                return sqs.delete_message_batch(**kw)
        esm.sqs = Deletes()

    def reset(self):
        self.invocations = collections.Counter()
        self.seconds = 0.0
        self.api = 0
        self.esm_sqs = 0
        self.log_start = sum(p.stat().st_size for p in self.aws.logs)

    def log_bytes(self):
        total = 0
        for p in self.aws.logs:
            total += p.stat().st_size
        return total - self.log_start


def drained(aws):
    return all(aws.queue_depth(u) == 0 for u in (aws.runs_url, aws.deliveries_url, aws.ordered_url))


def measure(aws, meter, name, events, send, units):
    """Runs `send(i)` for `events` events in groups of BATCH, draining the
    queues after each group; returns the scenario's JSON line."""
    send(-1)  # warms the containers' caches (flows, secrets), as steady traffic has them
    time.sleep(1)
    aws.pump(lambda: drained(aws), 120, "the queues to drain before the scenario")
    aws.moto.api("recorder/reset-recording")
    post(aws.moto.url + "/moto-api/recorder/start-recording")
    meter.reset()
    for first in range(0, events, BATCH):
        for i in range(first, min(events, first + BATCH)):
            send(i)
        time.sleep(0.2)
        aws.pump(lambda: drained(aws), 300, f"scenario {name} to drain")
    post(aws.moto.url + "/moto-api/recorder/stop-recording")
    ledger = Ledger()
    ledger.read(aws.moto.recording)
    if os.environ.get("RECORDINGS"):  # a directory to keep each scenario's requests in
        keep = pathlib.Path(os.environ["RECORDINGS"]) / f"{name}.jsonl"
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_text(aws.moto.recording.read_text())
    invocations = sum(meter.invocations.values())
    p = PRICES
    usd = {
        "dynamodb": ledger.wru * p["dynamodb"]["on_demand_write_unit_per_million"] / 1e6
        + ledger.rru * p["dynamodb"]["on_demand_read_unit_per_million"] / 1e6,
        "sqs": (ledger.sqs + meter.esm_sqs) * p["sqs"]["standard_request_per_million"] / 1e6,
        "lambda": invocations * p["lambda"]["request_per_million"] / 1e6
        + meter.seconds * MEMORY_GB * p["lambda"]["arm64_gb_second"],
        "api_gateway": meter.api * p["api_gateway"]["http_api_request_per_million"] / 1e6,
        "cloudwatch_logs": (meter.log_bytes() + invocations * p["cloudwatch_logs"]["lambda_platform_bytes_per_invocation"])
        / 2**30 * p["cloudwatch_logs"]["ingest_per_gb"],
        "secrets_manager": ledger.secrets * p["secrets_manager"]["api_call_per_10k"] / 1e4,
    }
    per = 1e6 / units
    by_service = {k: round(v * per, 3) for k, v in usd.items()}
    return {
        "scenario": name,
        "usd_per_million": round(sum(by_service.values()), 2),
        "per": "delivery" if name in "DRUQ" else "event",
        "by_service": by_service,
        "units": {"dynamodb_wru": round(ledger.wru / units, 2), "dynamodb_rru": round(ledger.rru / units, 2),
                  "sqs_requests": round((ledger.sqs + meter.esm_sqs) / units, 2),
                  "lambda_invocations": round(invocations / units, 2),
                  "aws_requests": {k: round(v / units, 2) for k, v in sorted(ledger.ops.items())},
                  "wru_by_item": {f"{op} {kind}": round(v / units, 2) for (op, kind), v in sorted(ledger.by_item.items())}},
        "events": events, "batch": BATCH,
    }


def latency(aws, n):
    """Accept→arrival of `n` events of scenario A's flow, one at a time."""
    took = []
    for i in range(-1, n):  # the first warms the caches
        marker = 1_000_000 + i
        status, _, text = aws.post("cost-a", body_of(2048, marker))
        accepted = time.monotonic()
        assert status == 202, text

        def arrived():
            with aws.receiver.lock:
                return [t for t, p, _, b in aws.receiver.arrivals if p == "/ok" and json.loads(b).get("id") == marker]
        got = aws.pump(arrived, 60, f"event {i}")
        if i >= 0:
            took.append((got[0] - accepted) * 1000)
    took.sort()

    def pct(q):
        return round(took[min(len(took) - 1, round(q * (len(took) - 1)))], 1)
    return {"scenario": "L", "accept_to_arrival_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": round(took[-1], 1),
                                                      "events": n}}


def post(url):
    urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=10).read()


COST_FLOWS = """
id: cost-a
tenant: e2e
trigger:
  type: webhook
  path: cost-a
  auth: { type: api_key, header: X-Api-Key, secret: inbound_key }
sign: { secret: signing_key }
steps:
  - id: forward
    type: http
    url: RECEIVER/ok
    headers: { Authorization: "Bearer {{ secrets.partner_token }}" }
    body: { json: "{{ trigger.body }}" }
---
id: cost-e
tenant: e2e
trigger:
  type: webhook
  path: cost-e
  auth: { type: api_key, header: X-Api-Key, secret: inbound_key }
sign: { secret: signing_key }
steps:
  - id: forward
    type: http
    url: RECEIVER/coin30
    headers: { Authorization: "Bearer {{ secrets.partner_token }}" }
    body: { json: "{{ trigger.body }}" }
    retry: { max_attempts: 10, initial: 1s, max_delay: 2s }
"""


WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def body_of(size, i):
    """A JSON order of about `size` bytes, with values as varied as real ones
    (random ids, prices, words), so that compression is not flattered."""
    rng = random.Random(i)
    doc = {"id": i, "type": "order.created", "customer": {"id": f"cus_{rng.getrandbits(64):016x}",
                                                          "email": f"{rng.choice(WORDS)}{i}@example.com"},
           "items": []}
    while len(json.dumps(doc)) < size:
        doc["items"].append({
            "sku": f"SKU-{rng.getrandbits(32):08X}", "qty": rng.randint(1, 9),
            "price": f"{rng.uniform(1, 500):.2f}", "title": " ".join(rng.choice(WORDS) for _ in range(4)),
            "ref": f"{rng.getrandbits(96):024x}",
        })
    return doc


def main():
    coin = random.Random(30)
    handle = tl.Handler.do_POST

    def do_post(self):
        if self.path == "/coin30":
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(500 if coin.random() < 0.3 else 200)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        handle(self)
    tl.Handler.do_POST = do_post

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="hookflow-cost-"))
    aws = tl.Aws(tmp)
    try:
        flows = tmp / "cost-flows"
        flows.mkdir()
        for i, doc in enumerate(COST_FLOWS.split("---")):
            (flows / f"cost-{i}.yaml").write_text(doc.replace("RECEIVER", aws.receiver.base))
        aws.hookflow("apply", "--flows", str(flows), "--table", aws.table)
        for function in ("ingress", "executor", "dispatcher", "admin"):  # built and warm
            aws.watch.invoke(function, {"Records": []} if function in ("executor", "dispatcher") else
                             api_gateway_event("GET", "/hooks/e2e/nope", {}, ""), 600)
        only = os.environ.get("SCENARIOS", "ABCDEFURQL")
        meter = Meter(aws) if set(only) - {"L"} else None
        lines = []

        def post_body(path, size):
            def send(i):
                status, _, text = aws.post(path, body_of(size, i))
                assert status == 202, text
            return send
        only = os.environ.get("SCENARIOS", "ABCDEFURQL")
        if "A" in only:
            lines.append(measure(aws, meter, "A", N, post_body("cost-a", 2048), N))
        if "B" in only:
            lines.append(measure(aws, meter, "B", N, post_body("cost-a", 20 * 1024), N))

        def sync(i):
            status, _, text = aws.api.request("POST", "/hooks/demo/hello", {"content-type": "application/json"},
                                              json.dumps({"name": f"n{i}"}))
            assert status == 200, text
        if "C" in only:
            lines.append(measure(aws, meter, "C", N, sync, N))

        if "D" in only:
            subs = []
            for k in range(10):
                status, sub = aws.admin("POST", "/v1/subscriptions", {"url": aws.receiver.base + f"/subscriber-cost{k}",
                                                                       "event_types": ["cost.*"], "tenant": "e2e"})
                assert status == 201, sub
                subs.append(sub["id"])
            aws.pump(lambda: all(aws.admin("GET", f"/v1/subscriptions/{s}")[1]["status"] == "active" for s in subs),
                     120, "ten active subscriptions")
            events = max(1, N // 5)

            def publish(i):
                status, out = aws.admin("POST", "/v1/events", {"type": "cost.happened", "tenant": "e2e",
                                                              "data": body_of(2048, i)})
                assert (status, out["deliveries"]) == (202, 10), out
            lines.append(measure(aws, meter, "D", events, publish, events * 10))
        if "E" in only:
            lines.append(measure(aws, meter, "E", N, post_body("cost-e", 2048), N))
        if "F" in only:
            subs = []
            for k in range(10):
                status, sub = aws.admin("POST", "/v1/subscriptions", {
                    "url": aws.receiver.base + f"/subscriber-filtered{k}", "event_types": ["filtered.*"],
                    "tenant": "e2e", "filter": {"data": {"bucket": 0}}})
                assert status == 201, sub
                subs.append(sub["id"])
            aws.pump(lambda: all(aws.admin("GET", f"/v1/subscriptions/{s}")[1]["status"] == "active" for s in subs),
                     120, "ten active filtered subscriptions")

            def publish_filtered(i):
                data = {**body_of(2048, i), "bucket": i % 10}
                status, out = aws.admin("POST", "/v1/events", {"type": "filtered.happened", "tenant": "e2e", "data": data})
                assert status == 202 and out["deliveries"] == (10 if i % 10 == 0 else 0), out
            lines.append(measure(aws, meter, "F", N, publish_filtered, N))
        # U and R: one subscription, one delivery an event; R's is paced at
        # 5 a second, so each group of BATCH events overruns it and all but
        # the first of a group wait in the queue for their slots. R − U is
        # what the limit costs a delivery.
        # Q: the same one delivery an event, to an SQS queue (an AWS
        # destination the functions' environment allows).
        dest = aws.sqs.create_queue(QueueName="e2e-dest-cost")["QueueUrl"] if "Q" in only else None
        for name, extra in (("U", {}), ("R", {"rate_limit": {"per_second": 5}}),
                            ("Q", {"url": "arn:aws:sqs:us-east-1:123456789012:e2e-dest-cost"})):
            if name not in only:
                continue
            status, sub = aws.admin("POST", "/v1/subscriptions", {
                "url": aws.receiver.base + f"/subscriber-{name}", "event_types": [f"one{name.lower()}.*"], "tenant": "e2e",
                **extra})
            assert status == 201, sub
            aws.pump(lambda: aws.admin("GET", f"/v1/subscriptions/{sub['id']}")[1]["status"] == "active",
                     120, f"scenario {name}'s subscription active")

            def publish_one(i, kind=f"one{name.lower()}.happened"):
                status, out = aws.admin("POST", "/v1/events", {"type": kind, "tenant": "e2e", "data": body_of(2048, i)})
                assert (status, out["deliveries"]) == (202, 1), out
            lines.append(measure(aws, meter, name, N, publish_one, N))
        if dest:
            aws.sqs.purge_queue(QueueUrl=dest)
        if "L" in only:
            lines.append(latency(aws, N))
    finally:
        aws.close()
    print()
    print("| scenario | $ per million | DynamoDB | SQS | Lambda | API Gateway | CloudWatch Logs | Secrets Manager "
          "| WRU | SQS req | invocations |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for line in (x for x in lines if "by_service" in x):
        s, u = line["by_service"], line["units"]
        print(f"| {line['scenario']} (per {line['per']}) | {line['usd_per_million']:.2f} | {s['dynamodb']:.2f} | "
              f"{s['sqs']:.2f} | {s['lambda']:.2f} | {s['api_gateway']:.2f} | {s['cloudwatch_logs']:.2f} | "
              f"{s['secrets_manager']:.2f} | "
              f"{u['dynamodb_wru']} | {u['sqs_requests']} | {u['lambda_invocations']} |")
    print()
    for line in lines:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
