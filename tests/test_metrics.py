"""`hookflow dev --metrics`: Prometheus's text, parsed by Prometheus's own
client library (`prometheus_client.parser`), counting what really
happened to requests and deliveries against a real receiver."""

import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from test_dev import INBOUND_KEY, async_flow, dev, receiver  # noqa: F401 (fixtures)
from test_subscriptions import wait_for


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families, family, sample, **labels):
    """The value of `sample` of `family` whose labels include `labels` (0 when none)."""
    f = families.get(family)
    for s in (f.samples if f else []):
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0


def test_metrics_count_requests_attempts_latency_and_the_queue(dev, receiver):
    r = receiver((500, {}, b"", 0), (200, {}, b"{}", 0))
    port = free_port()
    extra = "    retry: { schedule: [50ms] }\n"
    d = dev({"push.yaml": async_flow(r.url(), extra)}, "--metrics", f"127.0.0.1:{port}")
    for _ in range(2):
        status, _, _ = d.call("/hooks/acme/orders", {"id": 1}, {"x-api-key": INBOUND_KEY})
        assert status == 202
    assert d.call("/hooks/acme/orders", {"id": 2}, {"x-api-key": "wrong"})[0] == 401
    assert d.call("/hooks/acme/nowhere", {"id": 3})[0] == 404

    def settled():
        m = scrape(port)
        delivered = value(m, "hookflow_delivery_attempts", "hookflow_delivery_attempts_total", outcome="delivered")
        finished = value(m, "hookflow_runs", "hookflow_runs_total", outcome="succeeded")
        return m if delivered == 2 and finished == 2 else None
    m = wait_for(settled, 15, "both deliveries delivered, both runs finished")
    inbound = "hookflow_inbound_requests"
    assert value(m, inbound, inbound + "_total", tenant="acme", flow="push", verdict="accepted") == 2
    assert value(m, inbound, inbound + "_total", tenant="acme", flow="push", verdict="rejected") == 1
    assert value(m, inbound, inbound + "_total", tenant="", flow="", verdict="rejected") == 1
    attempts = "hookflow_delivery_attempts"
    # The receiver answers 500 first: one retry, then two deliveries.
    assert value(m, attempts, attempts + "_total", outcome="retried", status_class="5xx") == 1
    assert value(m, attempts, attempts + "_total", tenant="acme", flow="push", outcome="delivered",
                 status_class="2xx") == 2
    latency = "hookflow_delivery_latency_seconds"
    assert m[latency].type == "histogram"
    assert value(m, latency, latency + "_count", tenant="acme", flow="push") == 2
    assert value(m, latency, latency + "_bucket", tenant="acme", flow="push", le="+Inf") == 2
    assert value(m, "hookflow_dead_deliveries", "hookflow_dead_deliveries") == 0
    runs = "hookflow_runs"
    assert value(m, runs, runs + "_total", tenant="acme", flow="push", outcome="succeeded") == 2
    assert m["hookflow_queue_jobs"].type == "gauge"


def test_a_dead_delivery_and_a_waiting_retry_show_in_the_gauges(dev, receiver):
    r = receiver((503, {}, b"", 0))
    r.handler = lambda req, n: (503, {}, b"", 0)
    port = free_port()
    # One attempt then dead; the other flow's retry waits an hour.
    d = dev({"push.yaml": async_flow(r.url(), "    retry: { max_attempts: 1 }\n"),
             "later.yaml": async_flow(r.url(), "    retry: { schedule: [1h] }\n").replace("id: push", "id: later")
             .replace("path: orders", "path: later")}, "--metrics", f"127.0.0.1:{port}")
    assert d.call("/hooks/acme/orders", {"id": 1}, {"x-api-key": INBOUND_KEY})[0] == 202
    assert d.call("/hooks/acme/later", {"id": 2}, {"x-api-key": INBOUND_KEY})[0] == 202

    def gauges():
        m = scrape(port)
        dead = value(m, "hookflow_dead_deliveries", "hookflow_dead_deliveries")
        waiting = value(m, "hookflow_queue_jobs", "hookflow_queue_jobs", kind="delivery", state="scheduled")
        failed = value(m, "hookflow_runs", "hookflow_runs_total", outcome="failed")
        return m if dead == 1 and waiting == 1 and failed == 1 else None
    m = wait_for(gauges, 15, "one dead (its run failed), one retry scheduled")
    attempts = "hookflow_delivery_attempts"
    assert value(m, attempts, attempts + "_total", flow="push", outcome="dead", status_class="5xx") == 1
    assert value(m, attempts, attempts + "_total", flow="later", outcome="retried", status_class="5xx") == 1
    # The dead step fails its run; the one waiting on its retry goes on.
    runs = "hookflow_runs"
    assert value(m, runs, runs + "_total", flow="push", outcome="failed") == 1
    assert value(m, runs, runs + "_total", flow="later") == 0
