"""Cross-checks Hookflow's signatures with independent implementations.

Signatures made by `hookflow sign` must verify with the `standardwebhooks`
PyPI package, and signatures made by the library must verify with `hookflow
verify`, for several bodies, ids and both directions of a secret rotation.
Inbound Stripe, Shopify and GitHub (generic HMAC) signatures made by Stripe's
own library and by Python's `hmac` from the providers' documentation are
accepted by `hookflow dev`, and forged or tampered ones refused.
"""

import base64
import hashlib
import hmac
import json
import os
from datetime import datetime, timezone

import pytest
import stripe
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from test_dev import dev  # noqa: F401 (fixture)

# The reference library parses what it verifies as JSON, so bodies are JSON.
BODIES = [
    b"{}",
    b'{"test": 2432232314}',
    '{"name": "héllo wörld ✓"}'.encode(),
    ('{"blob": "%s"}' % os.urandom(64).hex()).encode(),
    b'{\n  "line": "breaks"\r\n}\n',
    b"[1, 2.5, null, true]",
]


def new_secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.mark.parametrize("body", BODIES)
def test_hookflow_sign_verifies_with_standardwebhooks(hookflow, tmp_path, body):
    secret = new_secret()
    ts = int(datetime.now(timezone.utc).timestamp())
    f = tmp_path / "body"
    f.write_bytes(body)
    out = hookflow("sign", "--secret", secret, "--id", "msg_interop_1", "--timestamp", str(ts), "--file", str(f))
    assert out.returncode == 0, out.stderr
    signature = out.stdout.decode().strip()
    headers = {"webhook-id": "msg_interop_1", "webhook-timestamp": str(ts), "webhook-signature": signature}
    Webhook(secret).verify(body, headers)
    # And a tampered body does not.
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b"x", headers)


@pytest.mark.parametrize("body", BODIES)
def test_standardwebhooks_sign_verifies_with_hookflow(hookflow, body):
    secret = new_secret()
    now = datetime.now(timezone.utc)
    # The library signs text; use bodies that are valid UTF-8.
    text = body.decode("utf-8", errors="replace")
    signature = Webhook(secret).sign("msg_interop_2", now, text)
    out = hookflow(
        "verify", "--secret", secret, "--id", "msg_interop_2", "--timestamp", str(int(now.timestamp())),
        "--signature", signature, "--file", "-", input=text.encode(),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.decode().strip() == "valid"
    bad = hookflow(
        "verify", "--secret", new_secret(), "--id", "msg_interop_2", "--timestamp", str(int(now.timestamp())),
        "--signature", signature, "--file", "-", input=text.encode(),
    )
    assert bad.returncode == 1
    assert "no signature matches" in bad.stdout.decode()


def test_rotation_signatures_verify_with_either_secret(hookflow):
    old, new = new_secret(), new_secret()
    ts = int(datetime.now(timezone.utc).timestamp())
    out = hookflow("sign", "--secret", f"{new} {old}", "--id", "msg_rot", "--timestamp", str(ts), "--file", "-", input=b"{}")
    signature = out.stdout.decode().strip()
    assert len(signature.split(" ")) == 2
    headers = {"webhook-id": "msg_rot", "webhook-timestamp": str(ts), "webhook-signature": signature}
    Webhook(old).verify(b"{}", headers)
    Webhook(new).verify(b"{}", headers)


def test_spec_vector_with_both_implementations(hookflow):
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    ts = datetime.fromtimestamp(1614265330, tz=timezone.utc)
    assert Webhook(secret).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body.decode()) == expected
    out = hookflow("sign", "--secret", secret, "--id", "msg_p5jXN8AQM9LWM0D4loKWxJek", "--timestamp", "1614265330", "--file", "-", input=body)
    assert out.stdout.decode().strip() == expected


def test_stale_timestamps_are_rejected_by_both(hookflow):
    secret = new_secret()
    old = int(datetime.now(timezone.utc).timestamp()) - 3600
    out = hookflow("sign", "--secret", secret, "--id", "m", "--timestamp", str(old), "--file", "-", input=b"{}")
    signature = out.stdout.decode().strip()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b"{}", {"webhook-id": "m", "webhook-timestamp": str(old), "webhook-signature": signature})
    res = hookflow("verify", "--secret", secret, "--id", "m", "--timestamp", str(old), "--signature", signature, "--file", "-", input=b"{}")
    assert res.returncode == 1
    assert "tolerance" in res.stdout.decode()


def test_ed25519_v1a_signatures_verify_with_an_independent_implementation(hookflow, tmp_path):
    """`hookflow sign` with a `whsk_` key gives `v1a,<base64>` over
    `{id}.{timestamp}.{body}`; PyPI `cryptography` verifies it with the
    public key alone, and a signature it makes verifies with `hookflow verify`
    and the `whpk_` key."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    whsk = "whsk_" + base64.b64encode(seed + public).decode()
    whpk = "whpk_" + base64.b64encode(public).decode()
    body = b'{"type": "payment.received", "data": {"amount": 42}}'
    f = tmp_path / "body.json"
    f.write_bytes(body)

    out = hookflow("sign", "--secret", whsk, "--id", "msg_ed", "--timestamp", "1795478400", "--file", str(f))
    assert out.returncode == 0, out.stderr
    header = out.stdout.decode().strip()
    assert header.startswith("v1a,")
    signature = base64.b64decode(header.removeprefix("v1a,"))
    private.public_key().verify(signature, b"msg_ed.1795478400." + body)  # raises if wrong

    theirs = "v1a," + base64.b64encode(private.sign(b"msg_ed.1795478400." + body)).decode()
    verify = ["verify", "--secret", whpk, "--id", "msg_ed", "--timestamp", "1795478400", "--now", "1795478400",
              "--file", str(f)]
    assert hookflow(*verify, "--signature", theirs).returncode == 0
    tampered = "v1a," + base64.b64encode(private.sign(b"msg_ed.1795478400.{}")).decode()
    out = hookflow(*verify, "--signature", tampered)
    assert out.returncode == 1 and b"invalid" in out.stdout


# Inbound signatures of the presets Hookflow verifies, made by independent
# implementations: Stripe's own library, Python's `hmac` from Shopify's and
# GitHub's documentation (GitHub's documented example checks the oracle).
PRESET_FLOWS = {
    f"{name}.yaml": f"""
id: {name}-in
tenant: acme
trigger: {{ type: webhook, path: {name}, system: {system}, auth: {{ secret: inbound_key }} }}
steps:
  - {{ id: s, type: set, vars: {{ x: 1 }} }}
"""
    for name, system in [("stripe", "stripe"), ("shopify", "shopify"), ("github", "github")]
}


def test_github_s_documented_example_checks_the_hmac_oracle():
    # docs.github.com, "Validating webhook deliveries": this secret and
    # payload give this signature.
    digest = hmac.new(b"It's a Secret to Everybody", b"Hello, World!", hashlib.sha256).hexdigest()
    assert digest == "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_preset_signatures_from_independent_signers_are_accepted_and_forgeries_refused(dev):
    from test_dev import INBOUND_KEY

    d = dev(PRESET_FLOWS)
    body = json.dumps({"id": "evt_interop", "amount": 4200, "note": "héllo ✓"}).encode()
    other = b"not-the-secret-0123"

    def stripe_header(secret):
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret.decode())
        # Stripe's own verifier agrees with its signer (the oracle is Stripe's).
        assert stripe.WebhookSignature.verify_header(body, header, secret.decode(), tolerance=300)
        return {"Stripe-Signature": header}

    def shopify_header(secret):
        mac = hmac.new(secret, body, hashlib.sha256).digest()
        return {"X-Shopify-Hmac-Sha256": base64.b64encode(mac).decode()}

    def github_header(secret):
        return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()}

    for path, sign in [("stripe", stripe_header), ("shopify", shopify_header), ("github", github_header)]:
        good = d.call(f"/hooks/acme/{path}", body, sign(INBOUND_KEY.encode()))
        assert good[0] == 202, (path, good)
        forged = d.call(f"/hooks/acme/{path}", body, sign(other))
        assert forged[0] == 401, (path, forged)
        tampered = d.call(f"/hooks/acme/{path}", body.replace(b"4200", b"4201"), sign(INBOUND_KEY.encode()))
        assert tampered[0] == 401, (path, tampered)
