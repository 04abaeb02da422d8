"""End to end: AWS destinations (SQS, SNS, EventBridge) from the real
`hookflow dev` process, sent with the AWS SDK to moto's server on loopback
(`AWS_ENDPOINT_URL`), read back with boto3 (an independent client), the
signature checked with the `standardwebhooks` package.

A FaultProxy between `hookflow dev` and moto drops AWS's answer to a send
that took effect: the delivery is sent again under the same `webhook-id`.
"""

import json
import os
import subprocess

import boto3
import pytest
from standardwebhooks import Webhook

from aws_harness import FaultProxy, Moto
from test_dev import dev  # noqa: F401 (fixture)
from test_subscriptions import ADMIN, api, wait_for

ACCOUNT = "123456789012"  # moto's
FAST = ("--admin-token", ADMIN, "--event-retry", "50ms,50ms")


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    m = Moto(tmp_path_factory.mktemp("moto") / "recording.log")
    yield m
    m.stop()


@pytest.fixture
def aws(moto, monkeypatch):
    """boto3 clients on moto; `hookflow dev` started after this sends there
    too (through a FaultProxy, whose faults the test sets)."""
    proxy = FaultProxy(moto.port)
    for k, v in {"AWS_ENDPOINT_URL": proxy.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    kw = dict(endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="testing",
              aws_secret_access_key="testing")

    class Aws:
        sqs = boto3.client("sqs", **kw)
        sns = boto3.client("sns", **kw)
        events = boto3.client("events", **kw)
        faults = proxy

        def queue(self, name):
            attrs = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
            url = self.sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
            return url, f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"

        def messages(self, url, n, timeout=10):
            got = []

            def enough():
                out = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                               MessageAttributeNames=["All"], AttributeNames=["All"])
                got.extend(out.get("Messages", []))
                return len(got) >= n
            wait_for(enough, timeout, f"{n} message(s) in {url}")
            return got

    yield Aws()
    proxy.shutdown()


def attrs(m):
    return {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}


def test_a_subscription_to_each_service_gets_its_events_signed_with_aws_s_id_logged(dev, aws):
    q_url, q_arn = aws.queue("orders")
    fifo_url, fifo_arn = aws.queue("orders.fifo")
    from_topic, from_topic_arn = aws.queue("from-topic")
    topic = aws.sns.create_topic(Name="alerts")["TopicArn"]
    aws.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=from_topic_arn,
                      Attributes={"RawMessageDelivery": "true"})
    from_bus, from_bus_arn = aws.queue("from-bus")
    aws.events.create_event_bus(Name="hooks")
    aws.events.put_rule(Name="all", EventBusName="hooks", EventPattern=json.dumps({"source": ["hookflow"]}))
    aws.events.put_targets(Rule="all", EventBusName="hooks", Targets=[{"Id": "q", "Arn": from_bus_arn}])
    bus = f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/hooks"

    d = dev({}, *FAST, "--destinations", f"arn:aws:sqs:us-east-1:{ACCOUNT}:orders*,arn:aws:sns:*,{bus}")
    # Not among the allowed: refused, naming the field and the setting.
    status, out = api(d, "POST", "/v1/subscriptions", {"url": from_bus_arn, "event_types": ["order.*"]})
    assert status == 422 and "url" in json.dumps(out) and "AllowedDestinationArns" in json.dumps(out), out
    # Not an ARN of a destination: refused, saying what one is.
    status, out = api(d, "POST", "/v1/subscriptions", {"url": "arn:aws:lambda:us-east-1:1:function:f",
                                                       "event_types": ["order.*"]})
    assert status == 422 and "EventBridge bus" in json.dumps(out), out

    subs = {}
    for name, arn in (("queue", q_arn), ("fifo", fifo_arn), ("topic", topic), ("bus", bus)):
        status, sub = api(d, "POST", "/v1/subscriptions",
                          {"url": arn, "event_types": ["order.*"], "headers": {"X-Team": "crm"}})
        assert status == 201, sub
        assert sub["status"] == "active", "no verification request to a queue: active at once"
        subs[name] = sub
    status, out = api(d, "POST", "/v1/events", {"type": "order.paid", "data": {"n": 1}})
    assert status == 202 and out["deliveries"] == 4, out

    [m] = aws.messages(q_url, 1)
    body = m["Body"]
    assert json.loads(body)["data"] == {"n": 1}
    a = attrs(m)
    assert a["x-team"] == "crm" and a["content-type"] == "application/json"
    Webhook(subs["queue"]["secret"]).verify(body, {k: a[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")})

    [f] = aws.messages(fifo_url, 1)
    assert f["Attributes"]["MessageGroupId"] == subs["fifo"]["id"]
    assert f["Attributes"]["MessageDeduplicationId"] == attrs(f)["webhook-id"]

    [t] = aws.messages(from_topic, 1)
    assert json.loads(t["Body"])["data"] == {"n": 1}
    assert attrs(t)["x-team"] == "crm"

    [b] = aws.messages(from_bus, 1)
    event = json.loads(b["Body"])
    assert (event["source"], event["detail-type"]) == ("hookflow", "order.paid")
    assert event["detail"]["body"]["data"] == {"n": 1} and event["detail"]["headers"]["x-team"] == "crm"
    assert event["detail"]["webhook-id"].startswith("msg_")

    # The attempt's log entry keeps the id AWS gave the message.
    def logged():
        _, logs = api(d, "GET", f"/v1/logs?subscription_id={subs['queue']['id']}")
        return [e for e in logs["entries"] if m["MessageId"] in json.dumps(e)]
    wait_for(logged, what="the attempt logged with the message id")


def test_a_missing_queue_ends_dead_with_aws_s_reason_and_its_replay_arrives_once_it_exists(dev, aws):
    d = dev({}, *FAST)
    arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:later"
    # Made with the CLI, as an endpoint is.
    out = subprocess.run([os.environ["HOOKFLOW_BIN"], "subscriptions", "create", "--endpoint", arn, "--types", "order.*",
                          "--url", f"127.0.0.1:{d.port}"], capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, HOOKFLOW_ADMIN_TOKEN=ADMIN))
    assert out.returncode == 0, out.stderr
    sub = json.loads(out.stdout)
    assert (sub["url"], sub["status"]) == (arn, "active"), sub
    _, event = api(d, "POST", "/v1/events", {"type": "order.paid", "data": {"n": 2}})

    def dead():
        _, page = api(d, "GET", "/v1/dead")
        return [x for x in page["dead"] if x["run_id"] == event["id"]]
    [x] = wait_for(dead, what="the delivery dead after its three attempts")
    assert "last status 400 (AWS.SimpleQueueService.NonExistentQueue: The specified queue does not exist.)" in x["reason"], x
    url, _ = aws.queue("later")
    status, out = api(d, "POST", f"/v1/dead/{x['delivery_id']}/replay")
    assert status == 202, out
    [m] = aws.messages(url, 1)
    assert attrs(m)["webhook-id"] == x["delivery_id"] and json.loads(m["Body"])["data"] == {"n": 2}


def test_a_send_whose_answer_is_lost_is_sent_again_with_the_same_webhook_id(dev, aws):
    url, arn = aws.queue("twice")
    d = dev({}, *FAST)
    status, sub = api(d, "POST", "/v1/subscriptions", {"url": arn, "event_types": ["order.*"]})
    assert status == 201, sub
    # moto takes the first SendMessage; its answer never comes back.
    fault = aws.faults.fail("AmazonSQS.SendMessage", 1, after=True)
    api(d, "POST", "/v1/events", {"type": "order.paid", "data": {"n": 3}})
    got = aws.messages(url, 2)
    assert fault.failed == 1
    assert len({attrs(m)["webhook-id"] for m in got}) == 1, "at least once, under one webhook-id"
    assert all(json.loads(m["Body"])["data"] == {"n": 3} for m in got)


FLOW = f"""
id: to-aws
tenant: acme
trigger:
  type: webhook
  path: orders
  respond: {{ mode: sync, timeout: 5s }}
steps:
  - id: queue
    type: sqs
    arn: arn:aws:sqs:us-east-1:{ACCOUNT}:steps.fifo
    group: "{{{{ trigger.body.customer }}}}"
    attributes: {{ order: "{{{{ trigger.body.id }}}}" }}
    body: {{ json: {{ id: "{{{{ trigger.body.id }}}}" }} }}
  - id: bus
    type: eventbridge
    arn: arn:aws:events:us-east-1:{ACCOUNT}:event-bus/steps
    detail_type: order.received
    source: acme.shop
    body: {{ json: {{ id: "{{{{ trigger.body.id }}}}", queued: "{{{{ steps.queue.response.body.message_id }}}}" }} }}
  - id: answer
    type: respond
    status: 200
    body: {{ json: {{ message_id: "{{{{ steps.queue.response.body.message_id }}}}", event_id: "{{{{ steps.bus.response.body.message_id }}}}" }} }}
"""


def test_flow_steps_send_to_a_queue_and_a_bus_and_feed_aws_s_ids_to_the_next_steps(dev, aws, hookflow):
    url, _ = aws.queue("steps.fifo")
    from_bus, from_bus_arn = aws.queue("from-steps-bus")
    aws.events.create_event_bus(Name="steps")
    aws.events.put_rule(Name="all", EventBusName="steps", EventPattern=json.dumps({"source": ["acme.shop"]}))
    aws.events.put_targets(Rule="all", EventBusName="steps", Targets=[{"Id": "q", "Arn": from_bus_arn}])
    d = dev({"to-aws.yaml": FLOW})
    status, _, out = d.call("/hooks/acme/orders", {"id": "o-7", "customer": "c-1"})
    assert status == 200, out
    answer = json.loads(out)
    [m] = aws.messages(url, 1)
    assert answer["message_id"] == m["MessageId"]
    assert json.loads(m["Body"]) == {"id": "o-7"} and attrs(m)["order"] == "o-7"
    assert m["Attributes"]["MessageGroupId"] == "c-1"
    [b] = aws.messages(from_bus, 1)
    event = json.loads(b["Body"])
    assert event["id"] == answer["event_id"] and event["detail-type"] == "order.received"
    assert event["detail"]["body"] == {"id": "o-7", "queued": m["MessageId"]}


def test_a_step_to_a_destination_not_allowed_fails_naming_the_setting(dev, aws, hookflow):
    aws.queue("steps.fifo")
    d = dev({"to-aws.yaml": FLOW}, "--destinations", "arn:aws:sns:*")
    status, _, out = d.call("/hooks/acme/orders", {"id": "o-8", "customer": "c-1"})
    assert status >= 500, out
    d.wait_log(lambda line: "AllowedDestinationArns" in json.dumps(line))


def test_aws_steps_are_checked_when_loaded(hookflow, tmp_path):
    bad = FLOW.replace("event-bus/steps", "event-bus/steps\n    group: g").replace(
        "arn:aws:sqs:us-east-1:123456789012:steps.fifo", "arn:aws:sns:us-east-1:123456789012:t")
    (tmp_path / "bad.yaml").write_text(bad)
    out = hookflow("validate", str(tmp_path / "bad.yaml"))
    assert out.returncode != 0
    text = (out.stdout + out.stderr).decode()
    assert "steps[0].arn" in text and "SNS destination" in text, text
    assert "steps[1].group" in text, text


def test_a_dry_run_of_aws_steps_assumes_a_message_id(hookflow, tmp_path):
    (tmp_path / "to-aws.yaml").write_text(FLOW)
    (tmp_path / "req.json").write_text(json.dumps({"method": "POST", "path": "/hooks/acme/orders",
                                                   "headers": {"content-type": "application/json"},
                                                   "body": {"id": "o-1", "customer": "c"}}))
    out = hookflow("test", str(tmp_path / "to-aws.yaml"), "--request", str(tmp_path / "req.json"))
    text = out.stdout.decode()
    assert out.returncode == 0, text + out.stderr.decode()
    [reply] = [json.loads(line)["reply"] for line in text.splitlines() if '"decision":"reply"' in line]
    assert json.loads(reply["body"])["message_id"] == "00000000-0000-0000-0000-000000000000", text


def test_without_aws_credentials_a_delivery_is_retried_not_dead_at_once(dev, moto, monkeypatch, tmp_path):
    """No credentials yet (they may be configured while the schedule runs):
    each attempt is retried, naming why, and dead only when it runs out."""
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in {"AWS_ENDPOINT_URL": moto.url, "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                 "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(k, v)
    d = dev({}, *FAST)
    status, sub = api(d, "POST", "/v1/subscriptions", {"url": f"arn:aws:sqs:us-east-1:{ACCOUNT}:nocreds",
                                                       "event_types": ["order.*"]})
    assert status == 201, sub

    def attempts():
        _, logs = api(d, "GET", f"/v1/logs?subscription_id={sub['id']}")
        return [e for e in logs["entries"] if e["kind"] == "attempt"]
    api(d, "POST", "/v1/events", {"type": "order.paid", "data": {"n": 9}})
    got = wait_for(lambda: len(attempts()) >= 3 and attempts(), 30, "three attempts")
    first = min(got, key=lambda e: e["detail"]["attempt"])
    assert first["outcome"] == "retry", first
    assert "credential" in json.dumps(first).lower(), first
