"""End to end: subscriptions, events and the admin API of the real
`hookflow dev` process, against real HTTP receivers on 127.0.0.1.

Signatures are checked with the `standardwebhooks` package (v1, HMAC) and
with PyPI `cryptography` (v1a, ed25519): independent implementations.
"""

import base64
import http.client
import json
import os
import random
import subprocess
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from test_dev import TOKEN, Receiver, dev, in_flight_counter, receiver  # noqa: F401 (fixtures)

ADMIN = "admin-token-for-tests"
AUTH = {"authorization": f"Bearer {ADMIN}"}

# A flow started by the operational event: it forwards it to a receiver.
def watcher_flow(url):
    return f"""
id: on-disabled
tenant: default
trigger: {{ type: event, events: [subscription.disabled] }}
steps:
  - id: tell
    type: http
    url: {url}
    body: {{ json: {{ disabled: "{{{{ trigger.body.data.subscription_id }}}}" }} }}
"""


PLACEHOLDER = """
id: placeholder
tenant: default
trigger: { type: webhook, path: nothing }
steps:
  - { id: note, type: set, vars: { seen: true } }
"""

FAST = ("--admin-token", ADMIN, "--event-retry", "50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms",
        "--verification-retry", "100ms,100ms")


def api(d, method, path, body=None, auth=True):
    status, _, out = d.call(path, body if body is not None else b"", AUTH if auth else {}, method=method)
    return status, (json.loads(out) if out else None)


def echo(req, n):
    """An endpoint that proves control: echoes the verification token."""
    body = json.loads(req["body"] or b"{}")
    if body.get("type") == "webhook.verification":
        return 200, {}, json.dumps({"token": body["token"]}).encode(), 0
    return 200, {}, b"{}", 0


def after_verifying(status):
    """An endpoint that verifies, then answers every event with `status`."""
    def handler(req, n):
        if json.loads(req["body"]).get("type") == "webhook.verification":
            return echo(req, n)
        return status, {}, b"{}", 0
    return handler


def events_of(r):
    """The non-verification requests a receiver got, parsed."""
    return [(q, json.loads(q["body"])) for q in r.requests if json.loads(q["body"]).get("type") != "webhook.verification"]


def wait_for(pred, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.03)
    raise AssertionError(f"timed out waiting for {what}")


def subscribe(d, url, types, **extra):
    status, sub = api(d, "POST", "/v1/subscriptions", {"url": url, "event_types": types, **extra})
    assert status == 201, sub
    return sub


def status_of(d, sub_id):
    return api(d, "GET", f"/v1/subscriptions/{sub_id}")[1]["status"]


def verify_v1(secret, req):
    Webhook(secret).verify(req["body"], {k: req["headers"][k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")})


def test_echo_activates_silence_fails_and_verify_resends(dev, receiver):
    good = receiver()
    good.handler = echo
    silent = receiver((200, {}, b"ok", 0))
    d = dev({"p.yaml": PLACEHOLDER}, *FAST)
    a = subscribe(d, good.url(), ["contact.*"])
    b = subscribe(d, silent.url(), ["contact.*"])
    assert a["status"] == b["status"] == "pending"
    assert a["secret"].startswith("whsec_") and "secret" not in api(d, "GET", f"/v1/subscriptions/{a['id']}")[1]

    wait_for(lambda: status_of(d, a["id"]) == "active", what="the echoing endpoint to be active")
    [hello] = good.requests
    body = json.loads(hello["body"])
    assert body["type"] == "webhook.verification" and len(body["token"]) == 32
    verify_v1(a["secret"], hello)

    # Three attempts that do not echo, then failed.
    wait_for(lambda: status_of(d, b["id"]) == "failed", what="the silent endpoint to fail")
    assert len(silent.requests) == 3
    assert api(d, "POST", f"/v1/subscriptions/{a['id']}/verify")[0] == 409
    status, again = api(d, "POST", f"/v1/subscriptions/{b['id']}/verify")
    assert (status, again["status"]) == (202, "pending")
    silent.wait(4)
    tokens = {json.loads(q["body"])["token"] for q in silent.requests}
    assert len(tokens) == 2, "a new token for the new round"

    # Only active subscriptions receive events.
    status, out = api(d, "POST", "/v1/events", {"type": "contact.created", "data": {"id": 1}})
    assert (status, out["deliveries"]) == (202, 1)
    good.wait(2)


def test_fan_out_follows_patterns_signs_and_publishes_an_id_once(dev, receiver):
    rs = [receiver() for _ in range(3)]
    for r in rs:
        r.handler = echo
    d = dev({"p.yaml": PLACEHOLDER}, *FAST)
    subs = [subscribe(d, rs[0].url(), ["contact.*"]), subscribe(d, rs[1].url(), ["payment.received"]),
            subscribe(d, rs[2].url(), ["contact.**"])]
    for s in subs:
        wait_for(lambda: status_of(d, s["id"]) == "active", what="active")

    published = [("contact.created", {"id": 1}), ("contact.address.changed", {"id": 2}),
                 ("payment.received", {"amount": 5}), ("invoice.paid", {})]
    counts = [api(d, "POST", "/v1/events", {"type": t, "data": data, "id": f"e{i}"})[1]["deliveries"]
              for i, (t, data) in enumerate(published)]
    assert counts == [2, 1, 1, 0]
    status, dup = api(d, "POST", "/v1/events", {"type": "contact.created", "data": {"id": 1}, "id": "e0"})
    assert (status, dup["duplicate"], dup["deliveries"]) == (200, True, 0)

    wait_for(lambda: len(events_of(rs[0])) == 1 and len(events_of(rs[1])) == 1 and len(events_of(rs[2])) == 2)
    time.sleep(0.3)
    got = [[b["type"] for _, b in events_of(r)] for r in rs]
    assert got[0] == ["contact.created"], "the repeated id was delivered once"
    assert got[1] == ["payment.received"]
    assert sorted(got[2]) == ["contact.address.changed", "contact.created"]
    for r, s in zip(rs, subs):
        for req, body in events_of(r):
            verify_v1(s["secret"], req)
            assert set(body) == {"type", "timestamp", "data"}
            assert body["timestamp"].endswith("Z")
    status, listed = api(d, "GET", "/v1/events?limit=10")
    assert [e["id"] for e in listed["events"]] == ["e0", "e1", "e2", "e3"]


def test_rotation_sends_both_signatures_until_the_old_key_expires(dev, receiver):
    r = receiver()
    r.handler = echo
    d = dev({"p.yaml": PLACEHOLDER}, *FAST, "--rotation-grace", "2s")
    s = subscribe(d, r.url(), ["a.b"])
    wait_for(lambda: status_of(d, s["id"]) == "active")
    old = s["secret"]
    status, rotated = api(d, "POST", f"/v1/subscriptions/{s['id']}/rotate-secret")
    assert status == 200 and rotated["secret"] != old
    new = rotated["secret"]

    api(d, "POST", "/v1/events", {"type": "a.b", "data": {"n": 1}})
    wait_for(lambda: len(events_of(r)) == 1)
    req = events_of(r)[0][0]
    assert len(req["headers"]["webhook-signature"].split(" ")) == 2
    verify_v1(old, req)
    verify_v1(new, req)

    time.sleep(3.1)  # past the expiry at the signature timestamp's whole-second precision
    api(d, "POST", "/v1/events", {"type": "a.b", "data": {"n": 2}})
    wait_for(lambda: len(events_of(r)) == 2)
    req = events_of(r)[1][0]
    assert len(req["headers"]["webhook-signature"].split(" ")) == 1
    verify_v1(new, req)
    with pytest.raises(WebhookVerificationError):
        verify_v1(old, req)


def test_ed25519_signatures_verify_with_the_served_public_key(dev, receiver):
    r = receiver()
    r.handler = echo
    d = dev({"p.yaml": PLACEHOLDER}, *FAST)
    s = subscribe(d, r.url(), ["a.*"], signing="ed25519")
    assert "secret" not in s and s["public_key"].startswith("whpk_")
    status, served = api(d, "GET", f"/v1/subscriptions/{s['id']}/public-key")
    assert status == 200 and served["public_key"] == s["public_key"]
    wait_for(lambda: status_of(d, s["id"]) == "active")
    api(d, "POST", "/v1/events", {"type": "a.x", "data": {"n": 1}})
    wait_for(lambda: len(events_of(r)) == 1)
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(served["public_key"].removeprefix("whpk_")))
    for req in r.requests:  # the verification request and the event
        h = req["headers"]
        signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + req["body"]
        [entry] = h["webhook-signature"].split(" ")
        version, sig = entry.split(",")
        assert version == "v1a"
        key.verify(base64.b64decode(sig), signed)  # raises if wrong
    # An HMAC subscription has no public key.
    h = subscribe(d, r.url(), ["a.*"])
    assert api(d, "GET", f"/v1/subscriptions/{h['id']}/public-key")[0] == 404


def test_410_disables_emits_subscription_disabled_and_enable_offers_replay(dev, receiver):
    gone = receiver()
    gone.handler = after_verifying(410)
    watcher = receiver()
    watcher.handler = echo
    flow_target = receiver()
    d = dev({"p.yaml": PLACEHOLDER, "w.yaml": watcher_flow(flow_target.url())}, *FAST)
    g = subscribe(d, gone.url(), ["order.*"])
    w = subscribe(d, watcher.url(), ["subscription.disabled"])
    for s in (g, w):
        wait_for(lambda: status_of(d, s["id"]) == "active")

    api(d, "POST", "/v1/events", {"type": "order.created", "data": {"n": 1}})
    wait_for(lambda: status_of(d, g["id"]) == "disabled", what="410 to disable")
    _, sub = api(d, "GET", f"/v1/subscriptions/{g['id']}")
    assert "410" in sub["disabled_reason"]
    assert len(events_of(gone)) == 1, "410 is not retried"

    wait_for(lambda: events_of(watcher), what="subscription.disabled")
    [(req, body)] = events_of(watcher)
    assert body["type"] == "subscription.disabled" and body["data"]["subscription_id"] == g["id"]
    verify_v1(w["secret"], req)
    [tell] = flow_target.wait(1)
    assert json.loads(tell["body"]) == {"disabled": g["id"]}, "an event-triggered flow ran"

    # Missed while disabled, then enabled with replay.
    for n in range(3):
        assert api(d, "POST", "/v1/events", {"type": "order.paid", "data": {"n": n}})[1]["deliveries"] == 0
    gone.handler = echo
    status, enabled = api(d, "POST", f"/v1/subscriptions/{g['id']}/enable", {"replay": True})
    assert status == 200, enabled
    assert (enabled["subscription"]["status"], enabled["missed"], enabled["replayed"]) == ("active", 3, 3)
    wait_for(lambda: len(events_of(gone)) == 4, what="the replayed events")
    assert sorted(b["data"]["n"] for _, b in events_of(gone)[1:]) == [0, 1, 2]


def test_failing_longer_than_the_window_disables(dev, receiver):
    r = receiver()
    r.handler = after_verifying(503)
    d = dev({"p.yaml": PLACEHOLDER}, *FAST, "--disable-after", "300ms")
    s = subscribe(d, r.url(), ["a.b"])
    wait_for(lambda: status_of(d, s["id"]) == "active")
    api(d, "POST", "/v1/events", {"type": "a.b", "data": {}})
    wait_for(lambda: status_of(d, s["id"]) == "disabled", what="the window to disable it")
    _, sub = api(d, "GET", f"/v1/subscriptions/{s['id']}")
    assert "failed for longer" in sub["disabled_reason"]
    n = len(events_of(r))
    assert n >= 2
    time.sleep(0.4)
    assert len(events_of(r)) == n, "a disabled subscription gets no more attempts"
    dead = wait_for(lambda: api(d, "GET", "/v1/dead")[1]["dead"], what="the pending retry dead")
    assert [x["reason"] for x in dead] == ["its subscription is disabled"], "the pending retry is replayable"


def test_per_key_ordering_holds_under_random_failures(dev, receiver):
    """1,000 events across 20 keys; the receiver fails 25% of attempts at
    random. For every key, deliveries arrive in publish order: no attempt of
    event n+1 before event n was delivered."""
    rng = random.Random(7)
    lock = threading.Lock()
    attempts = []  # (customer, seq, delivered), in arrival order

    def flaky(req, n):
        body = json.loads(req["body"])
        if body.get("type") == "webhook.verification":
            return echo(req, n)
        with lock:
            ok = rng.random() >= 0.25
            attempts.append((body["data"]["customer"], body["data"]["seq"], ok))
        return (200 if ok else 500), {}, b"{}", 0

    r = receiver()
    r.handler = flaky
    d = dev({"p.yaml": PLACEHOLDER}, *FAST)
    s = subscribe(d, r.url(), ["order.*"], ordering="per_key", key="{{ data.customer }}")
    wait_for(lambda: status_of(d, s["id"]) == "active")
    for i in range(1000):
        status, _ = api(d, "POST", "/v1/events", {"type": "order.updated", "data": {"customer": f"c{i % 20}", "seq": i}})
        assert status == 202

    def delivered():
        with lock:
            return sum(ok for _, _, ok in attempts) >= 1000
    wait_for(delivered, timeout=120, what="all 1,000 events delivered")
    # For each key, every attempt is of the oldest event not yet delivered.
    expected = {f"c{k}": k for k in range(20)}
    with lock:
        seen = list(attempts)
    for customer, seq, ok in seen:
        assert seq == expected[customer], f"{customer}: got event {seq} while {expected[customer]} was not delivered"
        if ok:
            expected[customer] += 20
    assert all(v >= 1000 for v in expected.values())
    assert sum(not ok for _, _, ok in seen) > 100, "the receiver did fail at random"
    _, dead = api(d, "GET", "/v1/dead")
    assert dead["dead"] == []


def test_admin_api_auth_errors_and_flows(dev, receiver):
    r = receiver()
    d = dev({"p.yaml": PLACEHOLDER}, *FAST)
    status, err = api(d, "GET", "/v1/flows", auth=False)
    assert status == 401 and err["error"]["code"] == "unauthorized"
    assert api(d, "GET", "/v1/nope")[1]["error"]["code"] == "not_found"

    status, err = api(d, "POST", "/v1/subscriptions", {"url": "ftp://x", "event_types": ["ok.one", "Bad"]})
    assert status == 422
    assert err["error"]["field"] == "url"
    assert [p["field"] for p in err["error"]["problems"]] == ["url", "event_types[1]"]
    status, err = api(d, "POST", "/v1/subscriptions", {"url": "http://x", "event_types": "a.b"})
    assert (status, err["error"]["field"]) == (422, "event_types")
    status, err = api(d, "POST", "/v1/events", b"{not json")
    assert (status, err["error"]["code"]) == (400, "bad_json")

    bad = "id: new\ntenant: default\ntrigger: { type: webhook, path: new }\nsteps:\n  - { id: s, type: http, url: 'nope' }\n"
    status, err = api(d, "PUT", "/v1/flows/default/new", bad.encode())
    assert status == 422 and err["error"]["field"] == "steps[0].url", err
    assert "line 5" in err["error"]["message"]
    assert err["error"]["problems"][0]["line"] == 5 and err["error"]["problems"][0]["col"] >= 1
    good = bad.replace("'nope'", r.url())
    # A dry run validates and stores nothing; its warnings are in the answer.
    status, checked = api(d, "PUT", "/v1/flows/default/new?dry_run=true", good.encode())
    assert (status, checked["dry_run"], checked["warnings"]) == (200, True, []), checked
    assert api(d, "GET", "/v1/flows/default/new")[0] == 404, "a dry run stores nothing"
    warned = good.replace(r.url(), "'http://{{ trigger.body.host }}/x', headers: { A: 'Bearer {{ secrets.t }}' }")
    status, checked = api(d, "PUT", "/v1/flows/default/new?dry_run=true", warned.encode())
    assert status == 200 and [(w["field"], w["line"]) for w in checked["warnings"]] == [("steps[0].url", 5)], checked
    assert api(d, "PUT", "/v1/flows/default/new?dry_run=maybe", good.encode())[1]["error"]["field"] == "dry_run"
    assert api(d, "PUT", "/v1/flows/default/new", good.encode())[0] == 201
    assert api(d, "PUT", "/v1/flows/default/new", good.encode())[0] == 200
    status, _, _ = d.call("/hooks/default/new", {"x": 1})
    assert status == 202, "the new flow is live at once"
    r.wait(1)
    # `until` bounds the log's time range from above (exclusive).
    _, logs = api(d, "GET", "/v1/logs?flow_id=new")
    first = min(e["at"] for e in logs["entries"])
    assert api(d, "GET", f"/v1/logs?flow_id=new&until={first}")[1]["entries"] == []
    _, upto = api(d, "GET", f"/v1/logs?flow_id=new&until={first + 1}")
    assert upto["entries"] and all(e["at"] == first for e in upto["entries"])
    # Entries carry their place in the store's order: a tail after one is
    # told how many came after it, a page before one gets the older ones.
    # (Once the run ended: its entries are all there.)
    logs = wait_for(lambda: (lambda got: got if any(e["kind"] == "run" for e in got["entries"]) else None)(
        api(d, "GET", "/v1/logs?flow_id=new")[1]), what="the run's end in the log")
    seqs = [e["seq"] for e in logs["entries"]]
    assert seqs == sorted(seqs), seqs
    _, tail = api(d, "GET", f"/v1/logs?flow_id=new&since=0&after_seq={seqs[0]}&limit=1")
    assert (tail["count"], [e["seq"] for e in tail["entries"]]) == (len(seqs) - 1, [seqs[-1]]), tail
    _, older = api(d, "GET", f"/v1/logs?flow_id=new&before_seq={seqs[-1]}")
    assert [e["seq"] for e in older["entries"]] == seqs[:-1]
    # A run replayed: a new run of the same request; the same key again
    # (a retry after a failure) is that run, not a third.
    run_id = next(e["run_id"] for e in logs["entries"] if e["kind"] == "inbound")
    status, one = api(d, "POST", f"/v1/runs/{run_id}/replay", {"key": "k1"})
    assert (status, one["new"], one["replay_of"]) == (202, True, run_id), one
    status, two = api(d, "POST", f"/v1/runs/{run_id}/replay", {"key": "k1"})
    assert (status, two["new"], two["run_id"]) == (202, False, one["run_id"]), two
    r.wait(2)
    time.sleep(0.3)
    assert len(r.requests) == 2, "the replay ran once"
    _, replayed = api(d, "GET", f"/v1/logs?run_id={one['run_id']}")
    assert any(e["detail"].get("replay_of") == run_id for e in replayed["entries"]), replayed
    assert api(d, "POST", f"/v1/runs/{run_id}/replay", {"key": "not ok!"})[1]["error"]["field"] == "key"
    assert api(d, "POST", "/v1/runs/run_nope/replay")[0] == 404
    assert api(d, "PUT", "/v1/flows/other/new", good.encode())[1]["error"]["field"] == "tenant"
    clash = good.replace("id: new", "id: clash").replace("path: new", "path: nothing")
    assert api(d, "PUT", "/v1/flows/default/clash", clash.encode())[0] == 409
    assert [f["id"] for f in api(d, "GET", "/v1/flows")[1]["flows"]] == ["new", "placeholder"]
    assert api(d, "DELETE", "/v1/flows/default/new")[0] == 204
    assert d.call("/hooks/default/new", {"x": 1})[0] == 404
    assert api(d, "GET", "/v1/flows/default/new")[0] == 404


def test_subscriptions_are_listed_a_page_at_a_time(dev, receiver):
    r = receiver()
    d = dev({"p.yaml": PLACEHOLDER}, *FAST)
    made = sorted(subscribe(d, r.url(f"/s{i}"), ["a.b"])["id"] for i in range(3))
    _, first = api(d, "GET", "/v1/subscriptions?limit=2")
    assert [s["id"] for s in first["subscriptions"]] == made[:2] and first["next"] == made[1], first
    _, second = api(d, "GET", f"/v1/subscriptions?limit=2&after={first['next']}")
    assert [s["id"] for s in second["subscriptions"]] == made[2:] and second["next"] is None, second
    _, everything = api(d, "GET", "/v1/subscriptions")
    assert [s["id"] for s in everything["subscriptions"]] == made and "next" not in everything
    assert api(d, "GET", "/v1/subscriptions?limit=0")[1]["error"]["field"] == "limit"


def test_a_keyring_sealed_under_another_key_is_dead_at_once_and_a_rotation_recovers_it(dev, receiver):
    """`keyring.key` lost: the start is refused while keyrings are sealed
    with it, naming the file, and no key is made. Replaced by another key:
    the subscription's deliveries are dead at once (no retry would open the
    keyring; the default schedule would retry for hours), `rotate-secret`
    starts a new keyring, and the dead delivery replayed arrives signed
    with the new secret."""
    import os
    import subprocess

    r = receiver()
    r.handler = echo
    d = dev({"p.yaml": PLACEHOLDER}, "--admin-token", ADMIN, "--verification-retry", "100ms,100ms")
    s = subscribe(d, r.url(), ["a.b"])
    wait_for(lambda: status_of(d, s["id"]) == "active", what="the subscription active")
    d.proc.terminate()
    d.proc.wait(10)
    key = d.data / "keyring.key"
    key.unlink()
    refused = subprocess.run(d.proc.args, capture_output=True, timeout=30)
    said = (refused.stdout + refused.stderr).decode()
    assert refused.returncode != 0 and "keyring.key" in said and "put the file back" in said, said
    assert not key.exists(), "no new key made over sealed keyrings"

    key.write_text(base64.b64encode(os.urandom(32)).decode())
    key.chmod(0o600)
    d.proc = subprocess.Popen(d.proc.args, stdout=d.out, stderr=subprocess.STDOUT)
    import socket

    def listening():
        try:
            socket.create_connection(("127.0.0.1", d.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    wait_for(listening, what="hookflow dev back")
    api(d, "POST", "/v1/events", {"type": "a.b", "data": {"n": 1}})
    dead = wait_for(lambda: api(d, "GET", "/v1/dead")[1]["dead"], what="the delivery dead")
    assert len(dead) == 1 and "keyring" in dead[0]["reason"], dead
    assert events_of(r) == []

    status, rotated = api(d, "POST", f"/v1/subscriptions/{s['id']}/rotate-secret")
    assert status == 200 and rotated["secret"] != s["secret"], rotated
    assert api(d, "POST", f"/v1/dead/{dead[0]['delivery_id']}/replay")[0] == 202
    wait_for(lambda: len(events_of(r)) == 1, what="the replayed event")
    req = events_of(r)[0][0]
    assert req["headers"]["webhook-id"] == dead[0]["delivery_id"]
    verify_v1(rotated["secret"], req)
    with pytest.raises(WebhookVerificationError):
        verify_v1(s["secret"], req)


def test_a_flood_of_large_rejected_requests_grows_the_summary_counts_not_its_size(dev, receiver):
    """The overview's summary (`GET /v1/stats`) is counted by the store:
    300 unauthenticated requests of 16 KiB control bytes each (they were
    ~97 KiB of log JSON apiece in the overview's read) add 300 to a count
    and nothing to the answer's size; the run's own delivery is timed."""
    r = receiver()
    d = dev({"push.yaml": f"""
id: push
tenant: default
trigger: {{ type: webhook, path: push, auth: {{ type: api_key, header: X-Api-Key, secret: inbound_key }} }}
steps:
  - {{ id: send, type: http, url: "{r.url()}" }}
"""}, *FAST)
    assert d.call("/hooks/default/push", {"x": 1}, {"X-Api-Key": "inbound-key-0815"})[0] == 202
    noise = bytes(i % 31 + 1 for i in range(16 * 1024))
    for _ in range(300):
        assert d.call("/hooks/default/push", noise, {"X-Api-Key": "wrong"})[0] == 401
    r.wait(1)

    def summary():
        status, out = api(d, "GET", "/v1/stats?since=0&bucket=86400000000")
        assert status == 200, out
        return out

    # Rejections are logged detached from their answers: wait for all.
    s = wait_for(lambda: (lambda s: s if s["latency"]["delivered"] == 1 and s["entries"] >= 302 else None)(summary()),
                 what="the delivery and every rejection in the log")
    assert s["inbound"] == {"accepted": 1, "rejected_401": 300}, s["inbound"]
    assert s["attempts"] == {"success": 1} and s["flows"] == {"default/push": 301}, s
    assert s["capped"] is False and len(json.dumps(s)) < 4096, len(json.dumps(s))
    # A bad window is named, not answered with a guess.
    status, out = api(d, "GET", "/v1/stats?since=0&until=86400000000&bucket=1000")
    assert (status, out["error"]["field"]) == (400, "bucket"), out


def test_wrong_admin_tokens_are_limited_per_address_and_short_tokens_refused(dev, receiver, tmp_path):
    """20 wrong bearer tokens from one address in a minute: its wrong ones
    are answered 429 with Retry-After, while the right token still passes
    (no lock-out behind a tunnel, where every caller is one address) and
    another address (127.0.0.2, loopback too) is counted apart. A token
    under 16 characters is refused at start, naming the flag."""
    d = dev({"p.yaml": PLACEHOLDER}, *FAST)

    def get(token, source="127.0.0.1"):
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5, source_address=(source, 0))
        c.request("GET", "/v1/flows", headers={"authorization": f"Bearer {token}"})
        r = c.getresponse()
        r.read()
        c.close()
        return r.status, r.getheader("retry-after")

    for _ in range(20):
        assert get("wrong-token-0123456789")[0] == 401
    assert get("wrong-token-0123456789") == (429, "60"), "past its share"
    assert get(ADMIN)[0] == 200, "the right token is never locked out"
    assert get("wrong-token-0123456789", source="127.0.0.2")[0] == 401, "another address is counted apart"
    empty = tmp_path / "empty"
    empty.mkdir()
    short = subprocess.run([os.environ["HOOKFLOW_BIN"], "dev", "--flows", str(empty), "--data", str(tmp_path / "d"),
                            "--admin-token", "short"], capture_output=True, text=True, timeout=30)
    assert short.returncode != 0 and "--admin-token" in short.stderr and "at least 16" in short.stderr, short.stderr


def test_the_cli_manages_subscriptions_and_publishes_events_through_the_admin_api(dev, receiver):
    """`hookflow subscriptions …` and `hookflow events …` against a running
    `hookflow dev`: the same routes, checks and errors as the API's."""
    r = receiver()
    r.handler = echo
    d = dev({"p.yaml": PLACEHOLDER}, *FAST)
    binary = os.environ["HOOKFLOW_BIN"]

    def cli(*args, token=ADMIN):
        env = dict(os.environ, HOOKFLOW_ADMIN_TOKEN=token)
        out = subprocess.run([binary, *args, "--url", f"127.0.0.1:{d.port}"], capture_output=True, text=True,
                             timeout=30, env=env)
        return out.returncode, out.stdout, out.stderr

    code, out, err = cli("subscriptions", "create", "--endpoint", r.url(), "--types", "contact.*,payment.received",
                         "--description", "CRM sync")
    assert code == 0, err
    created = json.loads(out)
    assert created["status"] == "pending" and created["secret"].startswith("whsec_"), created
    sub = created["id"]
    wait_for(lambda: cli("subscriptions", "show", sub)[1] and json.loads(cli("subscriptions", "show", sub)[1])["status"]
             == "active", what="the subscription verified")
    code, out, _ = cli("subscriptions", "list")
    assert out.split() == [sub, "active", r.url(), "contact.*,payment.received"], out

    code, out, err = cli("events", "publish", "--type", "contact.created", "--data", '{"id": 42}', "--id", "evt-cli")
    assert code == 0 and json.loads(out)["deliveries"] == 1, (out, err)
    got = wait_for(lambda: events_of(r), what="the event delivered")
    assert got[0][1]["data"] == {"id": 42} and got[0][0]["headers"]["webhook-id"]
    assert json.loads(cli("events", "publish", "--type", "contact.created", "--id", "evt-cli")[1])["duplicate"]
    code, out, _ = cli("events", "list")
    assert out.split()[:2] == ["evt-cli", "contact.created"], out

    # Errors are the API's, with each refused field, and exit 1.
    code, _, err = cli("subscriptions", "create", "--endpoint", "notaurl", "--types", "Bad Type")
    assert code == 1 and err.startswith("422: ") and "  url: `notaurl` must start with http://" in err, err
    code, _, err = cli("subscriptions", "show", "sub_nosuch")
    assert code == 1 and "404" in err, err
    # A filter on create, changed and removed by `update`.
    code, out, err = cli("subscriptions", "create", "--endpoint", r.url(), "--types", "order.*",
                         "--filter", '{"data": {"amount": {"$gte": 100}}}')
    assert code == 0 and json.loads(out)["filter"] == {"data": {"amount": {"$gte": 100}}}, (out, err)
    filtered = json.loads(out)["id"]
    code, _, err = cli("subscriptions", "update", filtered, "--filter", '{"data": {"amount": {"$gte": "x", "$nope": 1}}}')
    assert code == 1 and "filter.data.amount.$nope" in err, err
    code, _, err = cli("subscriptions", "update", filtered, "--filter", "{not json")
    assert code != 0 and "--filter is not JSON" in err, err
    code, out, err = cli("subscriptions", "update", filtered, "--no-filter", "--description", "all orders")
    assert code == 0 and "filter" not in json.loads(out) and json.loads(out)["description"] == "all orders", (out, err)
    code, out, err = cli("subscriptions", "preview", filtered, "--transform", '{"body": {"json": {"n": "{{ data.n }}"}}}',
                         "--event", '{"type": "order.paid", "data": {"n": 5}}')
    assert code == 0 and json.loads(json.loads(out)["after"]["body"]) == {"n": 5}, (out, err)
    assert cli("subscriptions", "delete", filtered)[0] == 0
    code, _, err = cli("subscriptions", "list", token="wrong-token-of-16-chars")
    assert code == 1 and err.startswith("401"), err
    code, _, err = cli("events", "publish", "--type", "a.b", "--data", "{nope")
    assert code == 2 and "--data is not JSON" in err, err

    for step, state in (("disable", "disabled"), ("enable", "active")):
        code, out, err = cli("subscriptions", step, sub)
        assert code == 0, err
        assert json.loads(cli("subscriptions", "show", sub)[1])["status"] == state
    code, out, _ = cli("subscriptions", "rotate", sub)
    assert code == 0 and json.loads(out)["secret"] != created["secret"], out
    assert cli("subscriptions", "delete", sub)[0] == 0
    assert cli("subscriptions", "list")[1].strip() == ""


def test_the_request_log_by_request_pages_newest_first_and_reads_on_for_failures(dev, receiver):
    """`GET /v1/requests`: one row a request with what became of it, pages
    that meet without a gap or a repeat, and `failed` reading on past
    pages of requests that went well (at most five reads, then where to go
    on)."""
    r = receiver()
    sender = (f"id: send\ntenant: default\ntrigger: {{ type: webhook, path: send }}\n"
              f"steps:\n  - {{ id: call, type: http, url: {r.url()} }}\n")
    d = dev({"send.yaml": sender}, *FAST)
    assert d.call("/hooks/default/nothing-here", {})[0] == 404
    for i in range(5):
        assert d.call("/hooks/default/send", {"i": i})[0] == 202
    r.wait(5)

    def page(query):
        status, body = api(d, "GET", "/v1/requests?" + query)
        assert status == 200, body
        return body

    wait_for(lambda: all(x["outcome"] == "succeeded" for x in page("limit=5")["requests"]) or None,
             what="the five runs' ends")
    rows, query = [], "limit=2"
    while True:
        got = page(query)
        rows += got["requests"]
        if got["next"] is None:
            break
        query = f"limit=2&before_seq={got['next']['before_seq']}"
    assert len(rows) == 6 and len({x["key"] for x in rows}) == 6, rows
    assert [x["at"] for x in rows] == sorted((x["at"] for x in rows), reverse=True), "newest first"
    sent, rejected = rows[0], rows[-1]
    assert (sent["outcome"], sent["status"], sent["path"], sent["flow_id"]) == ("succeeded", 202, "/hooks/default/send",
                                                                               "send"), sent
    assert sent["deliveries"] == {"delivered": 1, "pending": 0, "failed": 0, "attempts": 1}, sent
    assert sent["duration_ms"] is not None and sent["duration_ms"] >= 0
    assert (rejected["outcome"], rejected["status"], rejected["run_id"]) == ("rejected_404", 404, None), rejected
    # Failures only: found past five requests that went well.
    found = page("limit=2&failed=true")
    assert [x["key"] for x in found["requests"]] == [rejected["key"]] and found["next"] is None, found
    # Reads of one request each: five reads end short of it, and say
    # where to go on.
    short = page("limit=1&failed=true")
    assert short["requests"] == [] and short["next"] is not None, short
    assert [x["key"] for x in page(f"limit=1&failed=true&before_seq={short['next']['before_seq']}")["requests"]] == \
        [rejected["key"]]
    status, err = api(d, "GET", "/v1/requests?limit=0")
    assert (status, err["error"]["field"]) == (400, "limit"), err


def test_a_filter_decides_which_events_a_subscription_gets_and_a_change_applies_to_the_next(dev, receiver):
    """Filters (#27 item 1): checked on create and change (422 naming the
    path and operator), decided at the fan-out (a filtered-out event is
    no delivery, counted in the publish's answer and its log row), and
    changed with `PATCH`: what was queued goes out as decided; the next
    publish and a recovery use the filter as it is then."""
    r = receiver()
    state = {"down": False}

    def handler(req, n):
        if json.loads(req["body"]).get("type") == "webhook.verification":
            return echo(req, n)
        return (503, {}, b"{}", 0) if state["down"] else (200, {}, b"{}", 0)

    r.handler = handler
    d = dev({"p.yaml": PLACEHOLDER}, *FAST)
    status, err = api(d, "POST", "/v1/subscriptions", {"url": r.url(), "event_types": ["order.*"],
                                                       "filter": {"data": {"amount": {"$gte": [100]}, "x": {"$betwen": 1}}}})
    assert status == 422, err
    fields = {p["field"]: p["message"] for p in err["error"]["problems"]}
    assert "takes a number or a string" in fields["filter.data.amount.$gte"], fields
    assert "is not an operator" in fields["filter.data.x.$betwen"], fields
    big = subscribe(d, r.url(), ["order.*"], filter={"data": {"amount": {"$gte": 100}, "currency": {"$in": ["EUR", "GBP"]}}})
    assert big["filter"] == {"data": {"amount": {"$gte": 100}, "currency": {"$in": ["EUR", "GBP"]}}}
    wait_for(lambda: status_of(d, big["id"]) == "active", what="verified")

    def publish(amount, currency="EUR"):
        status, out = api(d, "POST", "/v1/events", {"type": "order.paid", "data": {"amount": amount, "currency": currency}})
        assert status == 202, out
        return out

    assert (publish(150)["deliveries"], publish(50)["filtered"], publish(500, "USD")["filtered"]) == (1, 1, 1)
    got = wait_for(lambda: events_of(r), what="the one that passes")
    time.sleep(0.3)
    assert [b["data"]["amount"] for _, b in events_of(r)] == [150], "only the event the filter passes"
    rows = api(d, "GET", "/v1/requests?limit=3")[1]["requests"]
    assert [x["deliveries"].get("filtered", 0) for x in rows] == [1, 1, 0], rows

    # Queued under the old filter, sent under the new one: the endpoint is
    # down, the filter changes to leave that event out, the endpoint comes
    # back — the queued delivery still arrives (decided at publish).
    state["down"] = True
    publish(200)
    wait_for(lambda: any(json.loads(q["body"]).get("data", {}).get("amount") == 200 for q in r.requests),
             what="the first attempt, refused")
    status, changed = api(d, "PATCH", f"/v1/subscriptions/{big['id']}", {"filter": {"data": {"amount": {"$gte": 1000}}}})
    assert status == 200 and changed["filter"] == {"data": {"amount": {"$gte": 1000}}}, changed
    state["down"] = False
    wait_for(lambda: [b for _, b in events_of(r) if b["data"]["amount"] == 200 and len(
        [q for q in r.requests if json.loads(q["body"]).get("data", {}).get("amount") == 200]) >= 2],
        what="the queued delivery, retried and delivered")
    assert publish(300)["filtered"] == 1, "the next publish uses the new filter"
    status, err = api(d, "PATCH", f"/v1/subscriptions/{big['id']}", {"filter": {"$or": {"type": "x"}}})
    assert (status, err["error"]["problems"][0]["field"]) == (422, "filter.$or"), err
    status, err = api(d, "PATCH", f"/v1/subscriptions/{big['id']}", {"url": "http://elsewhere"})
    assert status == 422 and "unknown field `url`" in json.dumps(err), err

    # A recovery sends what the filter passes as it is at the recovery.
    before = len(events_of(r))
    status, out = api(d, "POST", f"/v1/subscriptions/{big['id']}/enable", {"replay": True, "since": 0})
    assert status == 200 and out["replayed"] == 0, "no event so far has an amount of 1000 or more"
    status, changed = api(d, "PATCH", f"/v1/subscriptions/{big['id']}", {"filter": None})
    assert status == 200 and "filter" not in changed, changed
    status, out = api(d, "POST", f"/v1/subscriptions/{big['id']}/enable", {"replay": True, "since": 0})
    assert status == 200 and out["replayed"] == 5, out
    wait_for(lambda: len(events_of(r)) >= before + 5, what="every event sent again, unfiltered")


def test_a_subscription_s_headers_go_with_each_delivery_and_a_credential_only_by_its_secret_s_name(dev, receiver):
    """Headers (#27 item 2): text, or a secret by name resolved when sent;
    the Standard Webhooks and hop-by-hop headers cannot be set; a
    credential's value is never taken, kept, logged or shown; a secret
    that is not set sends nothing (the attempt names it) until it is."""
    r = receiver()
    r.handler = echo
    d = dev({"p.yaml": PLACEHOLDER}, *FAST)
    status, err = api(d, "POST", "/v1/subscriptions", {"url": r.url(), "event_types": ["order.*"], "headers": {
        "Authorization": "Bearer abc", "Webhook-Id": "mine", "Connection": "close", "X-Line": "a\nb"}})
    assert status == 422, err
    fields = {p["field"]: p["message"] for p in err["error"]["problems"]}
    assert set(fields) == {"headers.Authorization", "headers.Webhook-Id", "headers.Connection", "headers.X-Line"}, fields
    assert "name a secret instead" in fields["headers.Authorization"]
    sub = subscribe(d, r.url(), ["order.*"], headers={
        "X-Team": "crm", "Authorization": {"secret": "token", "prefix": "Bearer "}})
    assert sub["headers"] == {"X-Team": "crm", "Authorization": {"secret": "token", "prefix": "Bearer "}}, sub
    wait_for(lambda: status_of(d, sub["id"]) == "active", what="verified")
    assert r.requests[0]["headers"]["x-team"] == "crm", "the verification request carries them too"
    assert api(d, "POST", "/v1/events", {"type": "order.paid", "data": {"n": 1}})[1]["deliveries"] == 1
    [(req, body)] = wait_for(lambda: events_of(r), what="the event")
    assert req["headers"]["x-team"] == "crm" and req["headers"]["authorization"] == f"Bearer {TOKEN}", req["headers"]
    verify_v1(sub["secret"], req)
    shown = json.dumps([api(d, "GET", f"/v1/subscriptions/{sub['id']}")[1],
                        api(d, "GET", f"/v1/logs?subscription_id={sub['id']}")[1]])
    assert TOKEN not in shown, "kept and logged by name only"
    assert '"secret": "token"' in shown and '"Authorization": "[redacted]"' in shown, shown

    # A secret that is not set: nothing is sent; the attempt names it.
    status, changed = api(d, "PATCH", f"/v1/subscriptions/{sub['id']}",
                          {"headers": {"X-Key": {"secret": "not_set_anywhere"}}})
    assert status == 200 and changed["headers"] == {"X-Key": {"secret": "not_set_anywhere"}}, changed
    api(d, "POST", "/v1/events", {"type": "order.paid", "data": {"n": 2}})
    failed = wait_for(lambda: [e for e in api(d, "GET", f"/v1/logs?subscription_id={sub['id']}&failed=true")[1]["entries"]
                               if "not_set_anywhere" in json.dumps(e)], what="the attempt naming the secret")
    assert failed[0]["outcome"] == "retry", failed
    assert len(events_of(r)) == 1, "sent without its header: never"
    # Removed: the next deliveries carry none of them.
    status, changed = api(d, "PATCH", f"/v1/subscriptions/{sub['id']}", {"headers": None})
    assert status == 200 and "headers" not in changed, changed
    api(d, "POST", "/v1/events", {"type": "order.paid", "data": {"n": 3}})
    got = wait_for(lambda: [q for q, b in events_of(r) if b["data"]["n"] == 3], what="the next event")
    assert "x-team" not in got[0]["headers"] and "x-key" not in got[0]["headers"]


def test_a_transform_reshapes_each_event_signs_what_it_sends_drops_or_dies_alone(dev, receiver):
    """Transformations (#27 item 3): checked when saved (and on the newest
    event it would take), previewed without sending, applied at a
    delivery's first attempt — what is signed is what is sent — dropping
    what is not for the endpoint; one that fails makes that delivery dead,
    named, and a replay after a fix sends it."""
    r = receiver()
    r.handler = echo
    d = dev({"p.yaml": PLACEHOLDER}, *FAST)
    status, err = api(d, "POST", "/v1/subscriptions", {"url": r.url(), "event_types": ["order.*"], "transform": {
        "body": {"json": {"x": "{{ data.id | nosuchfilter }}"}}, "headers": {"Webhook-Id": "x"}, "drop": "{{ data. }}"}})
    assert status == 422, err
    assert {p["field"] for p in err["error"]["problems"]} == {
        "transform.body.json", "transform.headers.Webhook-Id", "transform.drop"}, err
    transform = {
        "body": {"json": {"text": "Order {{ data.id }} paid: {{ data.amount | default(0) }}", "id": "{{ data.id }}",
                          "first": "{{ data.items[0] if data.items is defined else none }}"}},
        "method": "PUT", "headers": {"X-Kind": "{{ type }}"}, "drop": "{{ data.test | default(false) }}"}
    sub = subscribe(d, r.url(), ["order.*"], transform=transform)
    wait_for(lambda: status_of(d, sub["id"]) == "active", what="verified (its handshake is not transformed)")
    status, pv = api(d, "POST", f"/v1/subscriptions/{sub['id']}/preview",
                     {"event": {"type": "order.paid", "data": {"id": 7, "amount": 120}}})
    assert status == 200 and pv["source"] == "given" and pv["error"] is None, pv
    assert json.loads(pv["before"]["body"])["data"] == {"id": 7, "amount": 120}
    assert pv["after"]["method"] == "PUT" and pv["after"]["headers"]["X-Kind"] == "order.paid", pv
    assert json.loads(pv["after"]["body"]) == {"text": "Order 7 paid: 120", "id": 7, "first": None}
    assert events_of(r) == [], "a preview sends nothing"

    for data in ({"id": 1, "amount": 5}, {"id": 2, "test": True}, {"id": 3, "items": 5}, {"id": 4, "items": ["a"]}):
        assert api(d, "POST", "/v1/events", {"type": "order.paid", "data": data})[1]["deliveries"] == 1
    sent = wait_for(lambda: len(r.requests) >= 3 and [q for q in r.requests if q["method"] == "PUT"], what="two sent")
    time.sleep(0.5)
    sent = [q for q in r.requests if q["method"] == "PUT"]
    bodies = sorted((json.loads(q["body"]) for q in sent), key=lambda b: b["id"])
    assert bodies == [{"text": "Order 1 paid: 5", "id": 1, "first": None},
                      {"text": "Order 4 paid: 0", "id": 4, "first": "a"}], bodies
    for q in sent:
        verify_v1(sub["secret"], q)  # what is signed is what is sent
        assert q["headers"]["x-kind"] == "order.paid"
    # The test event was dropped (no failure); the one it cannot shape is
    # dead, with the error named.
    dead = wait_for(lambda: api(d, "GET", "/v1/dead")[1]["dead"], what="the delivery it could not shape")
    assert len(dead) == 1 and "its transform failed" in dead[0]["reason"], dead
    rows = api(d, "GET", "/v1/requests?limit=4")[1]["requests"]
    by_data = {x["key"]: x["deliveries"] for x in rows}
    assert sorted(json.dumps(v, sort_keys=True) for v in by_data.values()) == sorted(json.dumps(v, sort_keys=True) for v in [
        {"delivered": 1, "pending": 0, "failed": 0, "attempts": 1},
        {"delivered": 0, "pending": 0, "failed": 0, "attempts": 0, "filtered": 1},
        {"delivered": 0, "pending": 0, "failed": 1, "attempts": 0},
        {"delivered": 1, "pending": 0, "failed": 0, "attempts": 1}]), rows

    # A change that fails on the newest event it takes is refused; a fix
    # is saved, and the dead delivery replayed is shaped by it.
    status, err = api(d, "PATCH", f"/v1/subscriptions/{sub['id']}",
                      {"transform": {"body": {"json": {"x": "{{ data.amount.x }}"}}}})
    assert status == 422 and "fails on event" in err["error"]["message"], err
    fixed = {"body": {"json": {"id": "{{ data.id }}", "items": "{{ data.items }}"}}}
    assert api(d, "PATCH", f"/v1/subscriptions/{sub['id']}", {"transform": fixed})[0] == 200
    assert api(d, "POST", f"/v1/dead/{dead[0]['delivery_id']}/replay")[0] in (200, 202)
    again = wait_for(lambda: [q for q in r.requests if q["method"] == "POST" and json.loads(q["body"]).get("id") == 3],
                     what="the replay, shaped by the fixed transform")
    assert json.loads(again[0]["body"]) == {"id": 3, "items": 5}
    verify_v1(sub["secret"], again[0])


def _up(d):
    try:
        import socket
        socket.create_connection(("127.0.0.1", d.port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_rate_and_in_flight_limits_hold_spend_no_attempt_and_a_backlog_survives_a_kill(dev, receiver):
    """Limits (#27 item 4): a subscription's `rate_limit` spaces its
    deliveries (what is over waits in the queue, spending no attempt) and
    its `max_in_flight` bounds its requests at once, while another
    subscription on the same server is not held back. A backlog killed
    with SIGKILL is all sent after the restart, at the same pace."""
    import signal

    paced, bounded = receiver(), receiver()
    paced.handler = echo
    verifying = lambda req, n: echo(req, n) if json.loads(req["body"]).get("type") == "webhook.verification" else None
    state, bounded.handler = in_flight_counter(0.2, verifying)
    d = dev({"p.yaml": PLACEHOLDER}, *FAST)
    status, err = api(d, "POST", "/v1/subscriptions", {"url": paced.url(), "event_types": ["order.*"],
                                                       "rate_limit": {"per_second": 0, "burst": 5000}, "max_in_flight": 0})
    assert status == 422, err
    fields = sorted(p["field"] for p in err["error"]["problems"])
    assert fields == ["max_in_flight", "rate_limit.burst", "rate_limit.per_second"], err
    a = subscribe(d, paced.url(), ["order.*"], rate_limit={"per_second": 20})
    b = subscribe(d, bounded.url(), ["stock.*"], max_in_flight=2)
    assert (a["rate_limit"], b["max_in_flight"]) == ({"per_second": 20.0}, 2)
    wait_for(lambda: status_of(d, a["id"]) == "active" and status_of(d, b["id"]) == "active", what="verified")

    for n in range(40):
        assert api(d, "POST", "/v1/events", {"type": "order.paid", "data": {"n": n}})[0] == 202
    backlog = api(d, "GET", f"/v1/subscriptions/{a['id']}")[1]["backlog"]
    assert backlog["waiting"] >= 10, backlog
    # Killed with most of the backlog waiting; started again on its store.
    time.sleep(0.6)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(5)
    before = len(events_of(paced))
    assert before < 30, f"{before} sent before the kill: the backlog should still be waiting"
    d.proc = subprocess.Popen(d.proc.args, stdout=d.out, stderr=subprocess.STDOUT)
    # (Published after the restart: requests a killed process had in
    # flight are still at their receiver, which the new one cannot know.)
    wait_for(lambda: d.call("/v1/subscriptions", b"", AUTH, method="GET")[0] == 200 if _up(d) else None,
             what="the restarted server")
    for n in range(8):
        assert api(d, "POST", "/v1/events", {"type": "stock.low", "data": {"n": n}})[0] == 202
    got = wait_for(lambda: (lambda e: e if len({x["data"]["n"] for _, x in e}) == 40 else None)(events_of(paced)),
                   timeout=20, what="all 40 paced events")
    times = sorted(q["at"] for q, _ in got)
    for i in range(len(times)):
        in_a_second = sum(1 for t in times[i:] if t - times[i] < 1.0)
        assert in_a_second <= 21, f"{in_a_second} within a second of one another: {times}"
    assert times[-1] - times[0] >= 39 / 20 * 0.9, "spaced, not sent at once"
    wait_for(lambda: len(events_of(bounded)) >= 8, timeout=20, what="the bounded subscription's events")
    assert state["most"] == 2, f"at most 2 in flight, and both places used: {state['most']}"
    # No attempt spent waiting: each delivered event's row shows one.
    rows = [x for x in api(d, "GET", "/v1/requests?limit=48")[1]["requests"] if x["kind"] == "event"]
    attempts = {x["deliveries"]["attempts"] for x in rows if x["deliveries"]["delivered"]}
    assert attempts == {1}, rows
    status, changed = api(d, "PATCH", f"/v1/subscriptions/{a['id']}", {"rate_limit": None, "max_in_flight": 3})
    assert status == 200 and "rate_limit" not in changed and changed["max_in_flight"] == 3, changed
    # The same through the CLI.
    def cli(*args):
        out = subprocess.run([os.environ["HOOKFLOW_BIN"], "subscriptions", *args, "--url", f"127.0.0.1:{d.port}"],
                             capture_output=True, text=True, timeout=30, env=dict(os.environ, HOOKFLOW_ADMIN_TOKEN=ADMIN))
        return out.returncode, out.stdout, out.stderr

    code, out, err = cli("update", a["id"], "--rate-limit", "0.5", "--burst", "3", "--no-max-in-flight")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["rate_limit"] == {"per_second": 0.5, "burst": 3} and "max_in_flight" not in shown, shown
    code, _, err = cli("update", a["id"], "--burst", "3")
    assert code != 0 and "--rate-limit" in err, err
    code, _, err = cli("update", a["id"], "--rate-limit", "20000")
    assert code != 0 and "rate_limit.per_second" in err, err
