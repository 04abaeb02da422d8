"""The console in a real browser: Debian's headless Chromium, driven by
Selenium from PyPI through Debian's chromedriver (nothing downloads a
browser or a driver: `SE_OFFLINE`), against one `hookflow dev` with
loopback receivers, shared by the tests of this module.

Each page is also checked for browser console errors and scanned with
axe-core (no critical violation), and a screenshot of it is saved in
`$HOOKFLOW_ARTIFACTS/console/` (default `target-artifacts/console/`;
`scripts/screenshots` refreshes the README's from it).
"""

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from standardwebhooks import Webhook

from test_dev import AUTH, Dev, Receiver, async_flow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ADMIN = "admin-token-for-console-tests"
ARTIFACTS = pathlib.Path(os.environ.get("HOOKFLOW_ARTIFACTS", "target-artifacts")) / "console"



def echo(req, n):
    """A subscriber endpoint: answers the verification with its token."""
    body = json.loads(req["body"] or b"{}")
    if body.get("type") == "webhook.verification":
        return 200, {}, json.dumps({"token": body["token"]}).encode(), 0
    return 200, {}, b"{}", 0


class World:
    """One `hookflow dev` with its console, its receivers, and a browser."""

    def __init__(self, tmp):
        self.ok = Receiver()
        self.failing = Receiver(((400, {}, b'{"error": "not yet"}', 0), (200, {}, b"{}", 0)))
        self.subscriber = Receiver(handler=echo)
        self.dry = Receiver()
        sampled = f"""
id: sampled
tenant: acme
trigger:
  type: webhook
  path: sampled
  auth: {{ type: api_key, header: X-Api-Key, secret: inbound_key }}
  expect:
    body:
      sample: {{ id: 42 }}
steps:
  - id: send
    type: http
    url: {self.dry.url()}
    headers: {{ Authorization: "Bearer {{{{ secrets.token }}}}" }}
    body: {{ json: {{ order: "{{{{ trigger.body.id }}}}" }} }}
"""
        failing = async_flow(self.failing.url()).replace("id: push", "id: failing").replace("path: orders", "path: failing")
        self.console_port = _free_port()
        # The shipped examples too: the README's screenshots show them.
        examples = {p.name: p.read_text() for p in (pathlib.Path(__file__).parent.parent / "examples").glob("*.yaml")}
        self.dev = Dev(
            os.environ["HOOKFLOW_BIN"], tmp,
            {**examples, "push.yaml": async_flow(self.ok.url()), "failing.yaml": failing, "sampled.yaml": sampled},
            ("--admin-token", ADMIN, "--console", f"127.0.0.1:{self.console_port}",
             "--verification-retry", "100ms,100ms"),
        )
        self.base = f"http://127.0.0.1:{self.console_port}"
        self.link = self._printed_link()
        self.browser = _browser()

    def _printed_link(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = re.search(r"^console: (http://\S+/console/login\?code=[0-9a-f]+)$", self.dev.stdout(), re.M)
            if m:
                return m.group(1)
            time.sleep(0.05)
        raise AssertionError("no `console:` line in:\n" + self.dev.stdout()[-2000:])

    def sign_in(self):
        """A session for the browser, through the sign-in page's token form."""
        b = self.browser
        b.get(f"{self.base}/console/login")
        b.find_element("id", "token").send_keys(ADMIN)
        b.find_element("css selector", "form button[type=submit]").click()
        wait(lambda: b.current_url.endswith("/console"), what="the overview after sign-in")
        b.get_log("browser")  # what earlier tests did on purpose (the 401s) is theirs

    def close(self):
        self.browser.quit()
        self.dev.close()
        for r in (self.ok, self.failing, self.subscriber, self.dry):
            r.close()


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser():
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: no downloads
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
                "--disable-sync", "--no-first-run", "--disable-features=Translate,OptimizationHints,MediaRouter",
                "--window-size=1280,900"):
        o.add_argument(arg)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    b = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    b.set_page_load_timeout(15)
    b.set_script_timeout(10)
    return b


def wait(pred, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = pred()
        except Exception:  # an element not there yet, a page still loading
            got = None
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), (
        "the console tests need Debian's chromium and chromium-driver: scripts/test installs them "
        "(apt-get install chromium chromium-driver)")
    w = World(tmp_path_factory.mktemp("console"))
    yield w
    w.close()


def console_errors(b):
    return [e for e in b.get_log("browser") if e.get("level") == "SEVERE"]


def test_the_printed_link_signs_in_once_and_a_used_or_wrong_code_is_refused(world):
    b = world.browser
    b.delete_all_cookies()
    b.get(world.link)
    wait(lambda: b.find_element("tag name", "h1").text == "Overview", what="the overview")
    assert b.current_url == f"{world.base}/console", "the code is not left in the address bar"
    cookie = b.get_cookie("hookflow_console")
    assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", cookie
    # Spent: the same link again, in a browser signed out, is refused.
    b.delete_all_cookies()
    b.get(world.link)
    assert "used already or has expired" in b.find_element("css selector", "[role=alert]").text
    assert b.find_element("tag name", "h1").text == "Sign in"
    b.get(f"{world.base}/console/login?code={'0' * 64}")
    assert "used already or has expired" in b.find_element("css selector", "[role=alert]").text
    # Not signed in: a page sends to the sign-in page; a change is refused.
    b.get(f"{world.base}/console/dead")
    assert b.current_url.endswith("/console/login")
    status = urllib.request.Request(f"{world.base}/console/dead/replay", data=b"which=all", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(status, timeout=5)
    assert e.value.code == 403


def test_a_request_for_another_host_is_refused(world):
    """DNS rebinding: a page of another site whose name was made to resolve
    to 127.0.0.1 is same-origin with the console for the browser; the
    console answers only its own address."""
    def status(host):
        req = urllib.request.Request(f"{world.base}/console/login", headers={"Host": host})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    assert status(f"evil.example:{world.console_port}") == 421
    assert status(f"localhost:{world.console_port}") == 200
    assert status(f"127.0.0.1:{world.console_port}") == 200
    # Two Host headers (the console's own first): refused, not read as the first.
    with socket.create_connection(("127.0.0.1", world.console_port), timeout=5) as s:
        s.sendall(f"GET /console/login HTTP/1.1\r\nHost: 127.0.0.1:{world.console_port}\r\n"
                  f"Host: evil.example\r\nConnection: close\r\n\r\n".encode())
        head = s.recv(200).decode(errors="replace")
    assert head.startswith("HTTP/1.1 400"), head


def test_a_sign_in_posted_from_another_site_is_refused_and_wrong_links_lock_no_one_out(world):
    """A page of another site cannot post the sign-in form (it would spend
    the tries, or sign the browser in as someone else): refused by its
    `Origin` or `Sec-Fetch-Site`. Wrong or spent one-time links are not
    counted: 25 of them and the admin still signs in."""
    def post(headers):
        req = urllib.request.Request(f"{world.base}/console/login", data=f"token={ADMIN}".encode(), method="POST",
                                     headers={"content-type": "application/x-www-form-urlencoded", **headers})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    assert post({"Origin": "http://evil.example"}) == 403
    assert post({"Sec-Fetch-Site": "cross-site"}) == 403
    assert post({"Origin": f"http://127.0.0.1:{world.console_port}", "Sec-Fetch-Site": "same-origin"}) == 200
    for _ in range(25):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{world.base}/console/login?code=wrong", timeout=5)
        assert e.value.code == 401 and b"used already or has expired" in e.value.read()
    world.sign_in()


def test_a_change_without_the_session_s_csrf_token_is_refused(world):
    world.sign_in()
    cookie = world.browser.get_cookie("hookflow_console")["value"]
    req = urllib.request.Request(
        f"{world.base}/console/dead/replay", data=b"which=all&csrf=forged", method="POST",
        headers={"cookie": f"hookflow_console={cookie}", "content-type": "application/x-www-form-urlencoded"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 403 and b"CSRF" in e.value.read()


def test_the_flows_page_shows_each_trigger_url_and_copy_puts_exactly_it_on_the_clipboard(world):
    world.sign_in()
    b = world.browser
    b.get(f"{world.base}/console/flows")
    urls = [c.text for c in b.find_elements("css selector", "code.url")]
    want = sorted(f"http://127.0.0.1:{world.dev.port}/hooks/{p}" for p in (
        "acme/failing", "acme/orders", "acme/sampled",  # the tests' flows
        "acme/github/push", "acme/orders/created", "acme/quotes", "demo/hello"))  # examples/
    assert sorted(urls) == want, urls
    b.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": world.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    button = b.find_element("css selector", "button.copy[aria-label='Copy the URL of push']")
    button.click()
    wait(lambda: button.text == "Copied", what="the copy button to say so")
    pasted = b.execute_async_script("navigator.clipboard.readText().then(arguments[0], e => arguments[0]('ERR ' + e))")
    assert pasted == f"http://127.0.0.1:{world.dev.port}/hooks/acme/orders"


def test_test_with_sample_data_shows_the_rendered_request_with_secrets_hidden_and_sends_nothing(world):
    from test_dev import TOKEN

    world.sign_in()
    b = world.browser
    b.get(f"{world.base}/console/flows")
    b.find_element("css selector", "button[aria-label='Test sampled with sample data']").click()
    wait(lambda: b.find_element("tag name", "h1").text == "Dry run of sampled", what="the dry run's page")
    shown = b.find_element("css selector", "ol.dry-run").text
    assert '"decision": "send"' in shown and world.dry.url() in shown, shown
    assert "Bearer ***" in shown and TOKEN not in b.page_source, shown
    assert "order" in shown and "42" in shown, "the body rendered from the sample"
    time.sleep(0.3)
    assert world.dry.requests == [], "a dry run sends nothing"


def _watch_rows(b):
    """Stamps each row the page adds (the browser's clock is this
    machine's): the latency measured is the page's, not WebDriver's."""
    b.execute_script("""
        window.arrivals = [];
        new MutationObserver(records => {
            for (const r of records) for (const n of r.addedNodes)
                window.arrivals.push({text: n.textContent || '', key: n.dataset ? n.dataset.key : null,
                                      at: Date.now()});
        }).observe(document.getElementById('log-rows'), {childList: true});""")


def _curl_order(world, order):
    out = subprocess.run(
        ["curl", "-s", "-X", "POST", f"http://127.0.0.1:{world.dev.port}/hooks/acme/orders",
         "-H", "content-type: application/json", "-H", f"X-Api-Key: {AUTH['X-Api-Key']}", "-d", json.dumps({"id": order})],
        capture_output=True, timeout=10, check=True)
    return time.time() * 1000, json.loads(out.stdout)["event_id"]


def test_a_request_sent_with_curl_appears_in_the_live_tail_and_its_row_follows_its_run(world):
    """One row a request, shown without a reload and redrawn in its place
    as its run goes on (waiting on its delivery, then succeeded), its time
    a link to the run's page. How soon is `scripts/bench tail`'s to
    measure (a wall-clock limit flakes on a loaded CI); the wait here is
    bounded."""
    world.sign_in()
    b = world.browser
    b.get(f"{world.base}/console/log")
    wait(lambda: b.execute_script("return document.getElementById('log').dataset.stream"), what="the tail")
    time.sleep(0.3)  # the page's EventSource connected
    _watch_rows(b)
    # The receiver takes a second: the run waits on it meanwhile.
    world.ok.handler = lambda req, n: (200, {}, b"{}", 1.5)
    try:
        answered_ms, event_id = _curl_order(world, 7)
        run_id = "run_" + event_id.removeprefix("evt_")
        arrived = wait(lambda: [a["at"] for a in b.execute_script("return window.arrivals") if a["key"] == run_id],
                       timeout=5, what=f"{run_id} in the live tail")
        print(f"shown {arrived[0] - answered_ms:.0f} ms after curl's answer")
        row = lambda: b.find_element("css selector", f"#log-rows tr[data-key='{run_id}']")  # noqa: E731
        first = row().text
        assert "POST /hooks/acme/orders" in first and "acme/push" in first and "202" in first, first
        assert "Waiting on send" in first or "Running" in first, first
        done = wait(lambda: "Succeeded" in row().text and row().text, timeout=10, what="the row redrawn: succeeded")
    finally:
        world.ok.handler = None
    assert "1 delivered (1 attempt)" in done, done
    assert len(b.find_elements("css selector", f"#log-rows tr[data-key='{run_id}']")) == 1, "redrawn in its place"
    row().find_element("css selector", "a.open").click()
    wait(lambda: b.find_element("tag name", "h1").text.startswith("Run "), what="the run page")
    assert run_id in b.find_element("tag name", "h1").text
    assert [e["message"] for e in console_errors(b)] == []


def test_every_entry_of_a_request_is_in_the_entries_view_s_live_tail(world):
    """The log's other view: each entry, its detail opening to the request,
    its run a link to the run's page."""
    world.sign_in()
    b = world.browser
    b.get(f"{world.base}/console/log?view=entries")
    wait(lambda: b.execute_script("return document.getElementById('log').dataset.stream"), what="the tail")
    time.sleep(0.3)
    _watch_rows(b)
    _, event_id = _curl_order(world, 8)
    wait(lambda: [a for a in b.execute_script("return window.arrivals") if event_id in a["text"]],
         timeout=5, what=f"{event_id} in the live tail")
    row = next(r for r in b.find_elements("css selector", "#log-rows tr") if event_id in r.text and "accepted" in r.text)
    row.find_element("tag name", "summary").click()
    assert '"method": "POST"' in row.find_element("tag name", "pre").text
    row.find_element("css selector", "a[href^='/console/runs/']").click()
    wait(lambda: b.find_element("tag name", "h1").text.startswith("Run "), what="the run page")
    assert event_id in b.page_source
    assert [e["message"] for e in console_errors(b)] == []


def test_a_dead_delivery_replayed_from_the_page_arrives_with_its_original_webhook_id(world):
    world.sign_in()
    status, _, body = world.dev.call("/hooks/acme/failing", {"id": 9}, AUTH)
    assert status == 202
    first = world.failing.wait(1)[0]
    b = world.browser
    box = wait(lambda: _dead_box(b, world, first["headers"]["webhook-id"]), what="the dead delivery listed")
    box.click()
    b.find_element("css selector", "button[name=which][value=selected]").click()
    wait(lambda: "1 dead deliveries queued again." in b.page_source, what="the replay's notice")
    again = world.failing.wait(2)[1]
    assert again["headers"]["webhook-id"] == first["headers"]["webhook-id"]
    assert json.loads(again["body"]) == json.loads(first["body"])


def test_a_run_s_page_says_what_happened_to_its_request(world):
    """The header answers at a glance (failed at which step, after how many
    attempts, why; or succeeded), and the timeline lists each step's
    attempts by number, not the run's ids on every row."""
    world.sign_in()
    world.failing.script = [(400, {}, b'{"error": "no such order"}', 0)]
    b = world.browser
    for path, order, title, detail in (
        ("/hooks/acme/failing", 11, "Failed at step send", "after 1 attempt: "),
        ("/hooks/acme/orders", 12, "Succeeded", "1 step(s) run"),
    ):
        status, _, body = world.dev.call(path, {"id": order}, AUTH)
        assert status == 202
        run_id = json.loads(body)["event_id"].replace("evt_", "run_", 1)

        def shown():
            b.get(f"{world.base}/console/runs/{run_id}")
            return b.find_element("id", "run-state").text == title

        wait(shown, what=f"`{title}` in {run_id}'s header")
        assert b.find_element("id", "run-detail").text.startswith(detail), b.find_element("id", "run-detail").text
        rows = [r.text for r in b.find_elements("css selector", "#timeline tbody tr")]
        assert any(" send " in f" {r} " and "attempt 1: " in r for r in rows), rows
        assert not any(run_id in r for r in rows), "the run's id is in the header, not on every row"
        assert b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), \
            "the run page fits 1280 px"
    assert [e["message"] for e in console_errors(b)] == []


def _dead_box(b, world, delivery_id):
    b.get(f"{world.base}/console/dead")
    return b.find_element("css selector", f"input[name=id][value='{delivery_id}']")


def test_a_subscription_created_from_the_page_becomes_active_and_its_test_event_arrives_signed(world):
    world.sign_in()
    b = world.browser
    b.get(f"{world.base}/console/subscriptions")
    b.find_element("id", "sub-url").send_keys(world.subscriber.url("/events"))
    b.find_element("id", "sub-types").send_keys("order.*")
    b.find_element("css selector", "form[action='/console/subscriptions'] button[type=submit]").click()
    secret = wait(lambda: b.find_element("css selector", "code.secret").text, what="the new secret, shown once")
    assert secret.startswith("whsec_")

    def active():
        b.get(f"{world.base}/console/subscriptions")
        return "active" in [c.text for c in b.find_elements("css selector", "td.status")]

    wait(active, what="the subscription active after its handshake")
    assert "whsec_" not in b.page_source, "the secret is not shown again"
    b.find_element("id", "ev-type").send_keys("order.paid")
    data = b.find_element("id", "ev-data")
    data.clear()
    data.send_keys('{"total": 12}')
    b.find_element("css selector", "form[action='/console/events'] button[type=submit]").click()
    wait(lambda: "Done: published" in b.page_source, what="the publish notice")
    events = wait(lambda: [q for q in world.subscriber.requests
                           if json.loads(q["body"]).get("type") == "order.paid"], what="the event at the endpoint")
    req = events[0]
    payload = Webhook(secret).verify(req["body"], {k: req["headers"][k] for k in
                                                   ("webhook-id", "webhook-timestamp", "webhook-signature")})
    assert payload["data"] == {"total": 12}


def test_a_subscription_s_page_lists_its_attempts_and_recovers_since_a_time(world):
    """After the subscription test above: its page shows its deliveries'
    attempts, and a recovery sends again what was published since the
    time given, with the same `webhook-id`s."""
    world.sign_in()
    b = world.browser
    b.get(f"{world.base}/console/subscriptions")
    b.find_element("css selector", "a[href^='/console/subscriptions/sub_']").click()
    wait(lambda: b.find_element("tag name", "h1").text.startswith("Subscription "), what="the subscription's page")
    rows = [r.text for r in b.find_elements("css selector", "tbody tr.entry")]
    assert any("attempt" in r and "success" in r for r in rows), rows
    sent = [q for q in world.subscriber.requests if json.loads(q["body"]).get("type") == "order.paid"]
    assert sent, "the subscription test above published one"
    since = b.find_element("id", "since")
    since.clear()
    since.send_keys("2000-01-01T00:00:00Z")
    b.find_element("css selector", "form[action$='/recover-since'] button").click()
    wait(lambda: "Recovering:" in b.find_element("css selector", "[role=status]").text, what="the recovery's notice")
    again = wait(lambda: [q for q in world.subscriber.requests if json.loads(q["body"]).get("type") == "order.paid"
                          and q is not sent[0]], what="the event sent again")
    assert again[0]["headers"]["webhook-id"] == sent[0]["headers"]["webhook-id"]


def _first_subscription_page(world):
    """Signed in, on the first subscription's page: the browser and its id."""
    world.sign_in()
    b = world.browser
    b.get(f"{world.base}/console/subscriptions")
    b.find_element("css selector", "a[href^='/console/subscriptions/sub_']").click()
    wait(lambda: b.find_element("tag name", "h1").text.startswith("Subscription "), what="the subscription's page")
    return b, b.find_element("css selector", "h1 code").text


def test_a_subscription_s_filter_and_headers_are_checked_and_saved_from_its_page(world):
    """A refused filter names its path and operator and stays in the form
    to fix; a saved one is the subscription's, and decides the next
    publish. Headers the same way: a credential in clear is refused."""
    b, sub_id = _first_subscription_page(world)
    box = b.find_element("id", "sub-filter")
    box.clear()
    box.send_keys('{"data": {"amount": {"$gte": [1]}}}')
    b.find_element("css selector", "form[action$='/filter'] button").click()
    alert = wait(lambda: b.find_element("css selector", "[role=alert]").text, what="the refusal")
    assert "filter.data.amount.$gte" in alert and "takes a number or a string" in alert, alert
    assert b.find_element("id", "sub-filter").get_attribute("value") == '{"data": {"amount": {"$gte": [1]}}}'
    # A refusal is the answer to its form, never text a link can carry.
    b.get(f"{world.base}/console/subscriptions/{sub_id}?refused=filter&why=Call+support+at+555-0100")
    assert "555-0100" not in b.find_element("tag name", "main").text
    box = b.find_element("id", "sub-filter")
    box.clear()
    box.send_keys('{"data": {"amount": {"$gte": 100}}}')
    b.find_element("css selector", "form[action$='/filter'] button").click()
    wait(lambda: "Filter saved" in b.find_element("css selector", "[role=status]").text, what="the filter saved")
    status, _, body = world.dev.call(f"/v1/subscriptions/{sub_id}", b"", {"authorization": f"Bearer {ADMIN}"},
                                     method="GET")
    assert json.loads(body)["filter"] == {"data": {"amount": {"$gte": 100}}}
    status, _, body = world.dev.call("/v1/events", {"type": "order.paid", "data": {"amount": 5}},
                                     {"authorization": f"Bearer {ADMIN}"})
    assert json.loads(body)["filtered"] >= 1, body
    # Removed again: the other tests' events all reach it.
    box = b.find_element("id", "sub-filter")
    box.clear()
    b.find_element("css selector", "form[action$='/filter'] button").click()
    wait(lambda: "Filter saved" in b.find_element("css selector", "[role=status]").text, what="the filter removed")
    assert b.find_element("id", "sub-filter").get_attribute("value") == ""
    box = b.find_element("id", "sub-headers")
    box.send_keys('{"Authorization": "Bearer abc"}')
    b.find_element("css selector", "form[action$='/headers'] button").click()
    alert = wait(lambda: b.find_element("css selector", "[role=alert]").text, what="the refusal")
    assert "headers.Authorization" in alert and "name a secret instead" in alert, alert
    box = b.find_element("id", "sub-headers")
    box.clear()
    box.send_keys('{"X-Team": "crm", "Authorization": {"secret": "token", "prefix": "Bearer "}}')
    b.find_element("css selector", "form[action$='/headers'] button").click()
    wait(lambda: "Headers saved" in b.find_element("css selector", "[role=status]").text, what="the headers saved")
    assert '"secret": "token"' in b.find_element("id", "sub-headers").get_attribute("value")
    box = b.find_element("id", "sub-headers")
    box.clear()
    b.find_element("css selector", "form[action$='/headers'] button").click()
    wait(lambda: "Headers saved" in b.find_element("css selector", "[role=status]").text, what="the headers removed")
    # A transform previewed on a recent event, side by side, then saved.
    box = b.find_element("id", "sub-transform")
    box.send_keys('{"body": {"json": {"total": "{{ data.total | default(0) }}", "kind": "{{ type }}"}}}')
    b.find_element("css selector", "button[formaction$='/preview']").click()
    after = wait(lambda: b.find_element("id", "preview-after").text, what="the preview")
    before = b.find_element("id", "preview-before").text
    assert '"kind": "order.paid"' in after and '"type": "order.paid"' in before, (before, after)
    assert b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), "fits 1280 px"
    b.find_element("css selector", "form[action$='/transform'] button:not([formaction])").click()
    wait(lambda: "Transform saved" in b.find_element("css selector", "[role=status]").text, what="the transform saved")
    box = b.find_element("id", "sub-transform")
    box.clear()
    b.find_element("css selector", "form[action$='/transform'] button:not([formaction])").click()
    wait(lambda: "Transform saved" in b.find_element("css selector", "[role=status]").text, what="the transform removed")


def test_a_subscription_s_limits_are_checked_saved_and_shown_with_their_backlog(world):
    """Limits (#27 item 4) from the subscription's page: a refused value
    names its field and stays in the form; saved ones are the
    subscription's, and the page shows what waits on them."""
    b, sub_id = _first_subscription_page(world)

    def fill(per_second, burst, max_in_flight):
        for name, value in (("per-second", per_second), ("burst", burst), ("max-in-flight", max_in_flight)):
            box = b.find_element("id", name)
            box.clear()
            box.send_keys(value)
        b.find_element("css selector", "form[action$='/limits'] button").click()

    fill("50", "0", "4")
    alert = wait(lambda: b.find_element("css selector", "[role=alert]").text, what="the refusal")
    assert "rate_limit.burst" in alert, alert
    assert b.find_element("id", "burst").get_attribute("value") == "0", "what was tried stays to fix"
    fill("50", "5", "4")
    wait(lambda: "Limits saved" in b.find_element("css selector", "[role=status]").text, what="the limits saved")
    _, _, body = world.dev.call(f"/v1/subscriptions/{sub_id}", b"", {"authorization": f"Bearer {ADMIN}"}, method="GET")
    shown = json.loads(body)
    assert (shown["rate_limit"], shown["max_in_flight"]) == ({"per_second": 50.0, "burst": 5}, 4), shown
    assert "waiting for a slot" in b.find_element("id", "backlog").text
    assert b.find_element("id", "per-second").get_attribute("value") == "50"
    # Removed again: the other tests' events are not paced.
    fill("", "", "")
    wait(lambda: "Limits saved" in b.find_element("css selector", "[role=status]").text, what="the limits removed")
    _, _, body = world.dev.call(f"/v1/subscriptions/{sub_id}", b"", {"authorization": f"Bearer {ADMIN}"}, method="GET")
    assert "rate_limit" not in json.loads(body) and not b.find_elements("id", "backlog")


def test_the_overview_draws_its_charts_with_the_vendored_library(world):
    world.sign_in()
    assert world.dev.call("/hooks/acme/orders", {"id": 5}, AUTH)[0] == 202
    b = world.browser
    b.get(f"{world.base}/console")
    # Two windows of three charts, each a uPlot canvas (the script is the
    # console's own copy: the CSP allows no other).
    wait(lambda: len(b.find_elements("css selector", ".plot canvas")) == 6, what="six charts drawn")
    assert b.execute_script("return typeof uPlot") == "function"
    legends = [e.text for e in b.find_elements("css selector", ".plot .u-legend")]
    assert "accepted" in legends[0] and "p99" in legends[2], legends
    # Colours by meaning, as drawn: each legend marker's colour by its label.
    drawn = b.execute_script("""
        const out = {};
        for (const row of document.querySelectorAll('.plot .u-legend tr.u-series')) {
            const label = row.querySelector('.u-label')?.textContent, mark = row.querySelector('.u-marker');
            if (label && mark) out[label] = getComputedStyle(mark).borderColor;
        }
        return out;""")
    green, red = "rgb(22, 163, 74)", "rgb(220, 38, 38)"
    reds = {red, "rgb(159, 18, 57)", "rgb(234, 88, 12)", "rgb(127, 29, 29)"}
    assert drawn.get("accepted") == green and drawn.get("success") == green, drawn
    bad = {k: v for k, v in drawn.items() if k.startswith("rejected") or k in ("halt", "dead", "failed")}
    assert bad and all(v in reds for v in bad.values()), drawn
    bars = dict(b.execute_script("""
        return [...document.querySelectorAll('.card tr')].filter(r => r.querySelector('progress'))
            .map(r => [r.querySelector('th').textContent, getComputedStyle(r.querySelector('progress')).accentColor]);"""))
    assert bars.get("accepted") == green and bars.get("success") == green, bars
    assert all(bars[k] == red for k in bars if k.startswith("rejected") or k in ("halt", "dead")), bars
    # Shares add up to 100 in each table; a failing endpoint is named by
    # its URL's host and path, not by its flow.
    for table in b.find_elements("css selector", ".card table"):
        shares = [int(td.text.rstrip("%")) for td in table.find_elements("css selector", "td.num:nth-of-type(2)")]
        assert shares and sum(shares) == 100, shares
    failing = world.failing.url().split("://", 1)[1].split("?")[0]
    assert failing in b.find_element("css selector", ".cards").text, "the failing receiver named by host and path"
    assert [e["message"] for e in console_errors(b)] == []


def test_a_flow_s_source_is_checked_inline_and_saved_from_its_page(world):
    world.sign_in()
    b = world.browser
    b.get(f"{world.base}/console/flows")
    b.find_element("link text", "sampled").click()
    wait(lambda: b.find_element("tag name", "h1").text == "Flow sampled", what="the flow's page")
    source = b.find_element("id", "flow-source")
    stored = source.get_attribute("value")
    assert "id: sampled" in stored

    def submit(text, action):
        box = b.find_element("id", "flow-source")
        b.execute_script("arguments[0].value = arguments[1]", box, text)
        b.find_element("css selector", f"button[name=action][value={action}]").click()

    # An invalid edit: each problem under its line, nothing saved.
    broken = stored.replace(f"url: {world.dry.url()}", "url: nope")
    submit(broken, "check")
    wait(lambda: "Invalid" in b.find_element("css selector", "[role=alert]").text, what="the check's verdict")
    line = next(li for li in b.find_elements("css selector", "ol.source li") if "url: nope" in li.text)
    assert "Error: steps[0].url" in line.find_element("css selector", ".note.error").text, line.text
    assert b.find_element("id", "flow-source").get_attribute("value") == broken, "the edit is kept to fix"
    assert (world.dev.dir / "sampled.yaml").read_text() == stored, "a check saves nothing"
    # A warning (a secret sent to a host taken from the request) is shown
    # at its line too.
    warned = stored.replace(f"url: {world.dry.url()}", 'url: "http://{{ trigger.body.host }}/x"')
    submit(warned, "check")
    wait(lambda: "Valid, with warnings" in b.page_source, what="the warning's notice")
    assert b.find_elements("css selector", "ol.source .note.warning")
    # Saved: the file holds the edit, and the flow still runs.
    edited = stored + "# edited in the console\n"
    submit(edited, "save")
    wait(lambda: "Saved" in b.find_element("css selector", "[role=status]").text, what="the save's notice")
    assert (world.dev.dir / "sampled.yaml").read_text() == edited


def test_send_a_test_request_runs_the_flow_and_shows_its_answer(world):
    world.sign_in()
    b = world.browser
    before = len(world.ok.requests)
    b.get(f"{world.base}/console/flows/acme/push")
    # The form names the credential the trigger checks, its value to fill.
    assert "X-Api-Key: <the value of secret inbound_key>" in b.find_element("name", "headers").get_attribute("value")
    assert "with the secret inbound_key" in b.find_element("id", "credential-hint").text

    def send(headers, body):
        from selenium.webdriver.support.expected_conditions import staleness_of

        b.execute_script("arguments[0].value = arguments[1]", b.find_element("name", "headers"), headers)
        b.execute_script("arguments[0].value = arguments[1]", b.find_element("name", "body"), body)
        page = b.find_element("tag name", "html")
        b.find_element("css selector", "form.send button[type=submit]").click()
        # The answer of this request, not the one the page showed before.
        wait(lambda: staleness_of(page)(b), what="the page the form answers with")
        return wait(lambda: b.find_element("css selector", "#answer .status").text, what="the answer")

    # Without the trigger's key: refused, and shown.
    assert send("Content-Type: application/json", '{"id": 76}') == "401"
    assert world.ok.requests[before:] == []
    # With it: accepted, the flow runs, its step arrives.
    key = AUTH["X-Api-Key"]
    assert send(f"Content-Type: application/json\nX-Api-Key: {key}", '{"id": 77}') == "202"
    assert '"event_id"' in b.find_element("id", "answer").text
    sent = world.ok.wait(before + 1)[before:]
    assert json.loads(sent[0]["body"]) == {"order": 77}
    # The form keeps what was sent, to send again.
    assert '"id": 77' in b.find_element("name", "body").get_attribute("value")


def test_the_request_log_is_one_row_a_request_newest_first_and_fits_the_screen(world):
    """Each request once, with its outcome, the status it was answered
    with, how long its run took, its flow and its deliveries; a rejected
    one says why; newest first; no horizontal scroll at 1280 px."""
    world.sign_in()
    script, world.failing.script = world.failing.script, [(400, {}, b'{"error": "no such order"}', 0)]
    before = len(world.failing.requests)
    try:
        assert world.dev.call("/hooks/acme/failing", {"id": 5}, AUTH)[0] == 202
        world.failing.wait(before + 1)
    finally:
        world.failing.script = script
    assert world.dev.call("/hooks/acme/orders", {"id": 6}, {"X-Api-Key": "wrong"})[0] == 401
    b = world.browser

    def rows():
        b.get(f"{world.base}/console/log?flow_id=failing")
        return [r.text for r in b.find_elements("css selector", "#log-rows tr.request")]

    failed = wait(lambda: [r for r in rows() if "Failed at send" in r], what="the failed run's row")[0]
    assert "POST /hooks/acme/failing" in failed and "202" in failed and "1 failed (1 attempt)" in failed, failed
    assert "400" in failed, "the reason names the receiver's status: " + failed
    b.get(f"{world.base}/console/log?outcome=rejected")
    shown = b.find_elements("css selector", "#log-rows tr.request")
    assert shown and all("Rejected" in r.text and "401" in r.text for r in shown), [r.text for r in shown]
    assert b.find_element("css selector", "#log-rows tr.request a.open").get_attribute("href").endswith(
        "view=entries&event_id=" + shown[0].get_attribute("data-key"))
    b.get(f"{world.base}/console/log")
    times = [t.get_attribute("datetime") for t in b.find_elements("css selector", "#log-rows tr.request time")]
    assert times and times == sorted(times, reverse=True), "newest first"
    keys = [r.get_attribute("data-key") for r in b.find_elements("css selector", "#log-rows tr.request")]
    assert len(keys) == len(set(keys)), "one row a request"
    assert b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), \
        "the request log fits 1280 px"


def test_the_log_page_filters_by_outcome_and_time_range(world):
    world.sign_in()
    status, _, _ = world.dev.call("/hooks/acme/orders", {"id": 1}, {"X-Api-Key": "wrong"})
    assert status == 401
    b = world.browser
    b.get(f"{world.base}/console/log?view=entries&outcome=rejected")
    outcomes = [r.find_element("css selector", ".outcome").text for r in b.find_elements("css selector", "#log-rows tr")]
    assert b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), \
        "the request log fits 1280 px"
    assert outcomes and all(o.startswith("rejected_") for o in outcomes), outcomes
    # A range that ends in the past has no entries of now, and no live tail.
    b.get(f"{world.base}/console/log?view=entries&from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z")
    assert b.find_element("css selector", "#log-rows tr").text == "No entries."
    assert b.find_element("id", "log").get_attribute("data-stream") is None
    b.get(f"{world.base}/console/log?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z")
    assert b.find_element("css selector", "#log-rows tr").text == "No requests."
    assert b.find_element("id", "log").get_attribute("data-stream") is None
    b.get(f"{world.base}/console/log?from=yesterday")
    assert "from: `yesterday` is not a time" in b.find_element("css selector", "[role=alert]").text


def test_a_run_replayed_from_its_page_is_a_new_run_of_the_same_request(world):
    world.sign_in()
    before = len(world.ok.requests)
    status, _, body = world.dev.call("/hooks/acme/orders", {"id": 88}, AUTH)
    assert status == 202
    world.ok.wait(before + 1)
    event_id = json.loads(body)["event_id"]
    b = world.browser
    b.get(f"{world.base}/console/log?event_id={event_id}")
    b.find_element("css selector", "#log-rows a[href^='/console/runs/']").click()
    wait(lambda: b.find_element("tag name", "h1").text.startswith("Run "), what="the run page")
    first = b.find_element("css selector", "h1 code").text
    b.find_element("css selector", "form[action$='/replay'] button").click()
    wait(lambda: "A replay of " + first in b.page_source, what="the new run's page")
    second = b.find_element("css selector", "h1 code").text
    assert second != first and second.startswith("run_")
    again = world.ok.wait(before + 2)[before + 1]
    assert json.loads(again["body"]) == {"order": 88}, "the same request, by the flow as it is now"


def test_replaying_everything_matching_the_filter_shows_its_progress(world):
    world.sign_in()
    world.failing.script = [(400, {}, b'{"error": "down"}', 0)]
    before = len(world.failing.requests)
    for i in range(3):
        assert world.dev.call("/hooks/acme/failing", {"id": 100 + i}, AUTH)[0] == 202
    first = world.failing.wait(before + 3)[before:]
    ids = {r["headers"]["webhook-id"] for r in first}
    b = world.browser

    def listed():
        b.get(f"{world.base}/console/dead?flow_id=failing")
        shown = {e.get_attribute("value") for e in b.find_elements("css selector", "input[name=id]")}
        return ids <= shown and shown

    dead = wait(listed, what="the three dead deliveries listed")
    world.failing.script = [(200, {}, b"{}", 0)]
    b.find_element("css selector", "button[name=which][value=matching]").click()
    wait(lambda: "of %d queued again — done." % len(dead) in b.find_element("id", "replay-status").text,
         what="the replay's progress to its end")
    assert b.find_element("id", "replay-progress").get_attribute("value") == str(len(dead))
    again = world.failing.wait(before + 3 + len(dead))[before + 3:]
    assert ids <= {r["headers"]["webhook-id"] for r in again}, "each replayed with its webhook-id"
    assert [e["message"] for e in console_errors(b)] == []


PAGES = ["/console", "/console/flows", "/console/flows/acme/sampled", "/console/flows/acme/quote", "/console/log",
         "/console/dead", "/console/subscriptions"]


def test_every_page_has_no_console_error_and_no_critical_accessibility_violation(world):
    import axe_selenium_python

    axe_js = (pathlib.Path(axe_selenium_python.__file__).parent / "node_modules" / "axe-core" / "axe.min.js").read_text()
    world.sign_in()
    b = world.browser
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    # What the screenshots show: a dead delivery listed, and an example's
    # run (`hello`) the newest in the log.
    world.failing.script = [(400, {}, b'{"error": "no such order"}', 0)]
    assert world.dev.call("/hooks/acme/failing", {"id": 404}, AUTH)[0] == 202
    b.get(f"{world.base}/console/dead")
    wait(lambda: (b.refresh() or True) and b.find_elements("css selector", "input[name=id]"), what="a dead delivery")
    assert world.dev.call("/hooks/demo/hello", {"name": "Ada"}, {})[0] == 200
    b.get(f"{world.base}/console/log")
    links = b.find_elements("css selector", "a[href^='/console/runs/']")
    assert links, "the log lists a run (earlier tests made some): its page is checked too"
    run_link = links[0].get_attribute("href")
    problems = {}
    for path in PAGES + ([run_link.removeprefix(world.base)] if run_link else []) + ["/console/login"]:
        b.get(world.base + path)
        wait(lambda: b.execute_script("return document.readyState") == "complete", what=f"{path} loaded")
        b.execute_script(axe_js)
        result = b.execute_async_script(
            "axe.run(document, {resultTypes: ['violations']}).then(r => arguments[0](r.violations))")
        critical = [f"{v['id']}: {v['help']}" for v in result if v.get("impact") == "critical"]
        errors = [e["message"] for e in console_errors(b)]
        name = "console_run" if "/runs/" in path else path.strip("/").replace("/", "_")
        b.execute_script("window.scrollTo(0, 0)")
        b.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        if critical or errors:
            problems[path] = {"axe": critical, "console": errors}
    assert problems == {}, problems
    assert (ARTIFACTS / "console_flows.png").stat().st_size > 1000
    b.get(f"{world.base}/console/flows")
    assert "/tmp/" not in b.find_element("tag name", "main").text, "no path of the serving machine"
