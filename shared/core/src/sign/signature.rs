//! Webhook signatures: Standard Webhooks, generic HMAC schemes and the
//! presets of well-known senders. Used to sign outbound requests and to verify
//! inbound ones. Every comparison is constant-time.
//!
//! Standard Webhooks (<https://www.standardwebhooks.com>) signs
//! `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 under the
//! base64-decoded part of a `whsec_` secret and sends
//! `webhook-signature: v1,<base64>`; several signatures may be sent,
//! space-separated, while a secret is being rotated.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::headers::Headers;

/// How far a signed timestamp may be from now before it counts as a replay.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// The longest `trigger.auth.tolerance` a flow may set.
pub const MAX_TOLERANCE: Duration = Duration::from_secs(60 * 60);

/// Why a signature did not verify. Messages are safe to log and to return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing header `{0}`")]
    MissingHeader(String),
    #[error("malformed header `{0}`")]
    MalformedHeader(String),
    #[error("timestamp outside the {0}-second tolerance")]
    Timestamp(u64),
    #[error("no signature matches")]
    Mismatch,
    #[error("invalid secret: {0}")]
    BadSecret(String),
}

/// HMAC digest algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha1,
    #[default]
    Sha256,
    Sha512,
}

/// How a MAC is written in a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Hex,
    Base64,
}

/// HMAC of `parts` (concatenated) under `key`.
pub fn hmac(alg: Algorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    macro_rules! run {
        ($d:ty) => {{
            let mut m = <Hmac<$d>>::new_from_slice(key).expect("HMAC takes keys of any length");
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }};
    }
    match alg {
        Algorithm::Sha1 => run!(Sha1),
        Algorithm::Sha256 => run!(Sha256),
        Algorithm::Sha512 => run!(Sha512),
    }
}

fn encode(enc: Encoding, mac: &[u8]) -> String {
    match enc {
        Encoding::Hex => hex(mac),
        Encoding::Base64 => B64.encode(mac),
    }
}

fn decode(enc: Encoding, text: &str) -> Option<Vec<u8>> {
    match enc {
        Encoding::Hex => unhex(text.trim()),
        Encoding::Base64 => B64.decode(text.trim()).ok(),
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Constant-time equality of two MACs (the length is not secret).
pub fn mac_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn check_timestamp(ts: i64, now: i64, tolerance: Duration) -> Result<(), SignatureError> {
    if now.abs_diff(ts) > tolerance.as_secs() {
        return Err(SignatureError::Timestamp(tolerance.as_secs()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Standard Webhooks

/// A Standard Webhooks symmetric secret (`whsec_` + base64 of 24 to 64 bytes).
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`; the prefix may be left out.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let b = text.trim();
        let b = b.strip_prefix("whsec_").unwrap_or(b);
        let key =
            B64.decode(b).map_err(|_| SignatureError::BadSecret("expected `whsec_` followed by base64".into()))?;
        if key.is_empty() {
            return Err(SignatureError::BadSecret("the key is empty".into()));
        }
        Ok(WebhookSecret(key))
    }

    /// A fresh random 32-byte secret.
    pub fn generate() -> Self {
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        WebhookSecret(key)
    }

    /// The `whsec_…` text form.
    pub fn expose(&self) -> String {
        format!("whsec_{}", B64.encode(&self.0))
    }

    /// The `v1,<base64>` signature of one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", B64.encode(self.mac(msg_id, &timestamp.to_string(), body)))
    }

    /// HMAC-SHA256 of `{msg_id}.{timestamp}.{body}` (parts hashed in turn:
    /// the body is not copied).
    fn mac(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
        hmac(Algorithm::Sha256, &self.0, &[msg_id.as_bytes(), b".", timestamp.as_bytes(), b".", body])
    }
}

/// Parses one or several space-separated `whsec_` secrets (rotation).
pub fn parse_secrets(text: &str) -> Result<Vec<WebhookSecret>, SignatureError> {
    let list: Vec<_> = text.split_whitespace().map(WebhookSecret::parse).collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err(SignatureError::BadSecret("no secret given".into()));
    }
    Ok(list)
}

/// The `webhook-signature` header value for `secrets` (one signature each,
/// space-separated, as during rotation).
pub fn standard_sign(secrets: &[WebhookSecret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets.iter().map(|s| s.sign(msg_id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// A `webhook-timestamp` header value, parsed and within `tolerance` of `now`.
fn check_header_timestamp(timestamp: &str, now: i64, tolerance: Duration) -> Result<(), SignatureError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| SignatureError::MalformedHeader("webhook-timestamp".into()))?;
    check_timestamp(ts, now, tolerance)
}

/// What Standard Webhooks signs: `{msg_id}.{timestamp}.{body}`.
fn signed_content(msg_id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    [msg_id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat()
}

/// Verifies a Standard Webhooks signature header against any of `secrets`.
pub fn standard_verify(
    secrets: &[WebhookSecret],
    msg_id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    check_header_timestamp(timestamp, now, tolerance)?;
    let wanted: Vec<Vec<u8>> = secrets.iter().map(|s| s.mac(msg_id, timestamp.trim(), body)).collect();
    let mut ok = false;
    for entry in signature_header.split_whitespace() {
        let Some(sig) = entry.strip_prefix("v1,") else { continue };
        let Ok(given) = B64.decode(sig) else { continue };
        for want in &wanted {
            // Evaluate every pair: no early exit on the secret-dependent path.
            ok |= mac_eq(want, &given);
        }
    }
    if ok { Ok(()) } else { Err(SignatureError::Mismatch) }
}

// ---------------------------------------------------------------------------
// Standard Webhooks, asymmetric (`v1a`, ed25519)

/// An ed25519 signing key for Standard Webhooks' asymmetric signatures.
/// Text form `whsk_` + base64 of the 64-byte secret key (seed then public
/// key, as libsodium and most ed25519 libraries write it); a 32-byte seed
/// alone is accepted too. Its public key is `whpk_` + base64 of 32 bytes:
/// receivers verify with it and cannot sign.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public())
    }
}

impl SigningKey {
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let bad = |why: &str| SignatureError::BadSecret(format!("expected `whsk_` followed by base64: {why}"));
        let b = text.trim();
        let bytes = B64.decode(b.strip_prefix("whsk_").unwrap_or(b)).map_err(|_| bad("not base64"))?;
        let seed: [u8; 32] = bytes.get(..32).and_then(|s| s.try_into().ok()).ok_or_else(|| bad("too short"))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        match bytes.len() {
            32 => {}
            64 if bytes[32..] == key.verifying_key().to_bytes() => {}
            64 => return Err(bad("its second half is not the public key of its first")),
            _ => return Err(bad("32 or 64 bytes")),
        }
        Ok(SigningKey(key))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The `whsk_…` text form (64 bytes: seed and public key).
    pub fn expose(&self) -> String {
        format!("whsk_{}", B64.encode(self.0.to_keypair_bytes()))
    }

    /// The `whpk_…` public key.
    pub fn public(&self) -> String {
        format!("whpk_{}", B64.encode(self.0.verifying_key().to_bytes()))
    }

    /// The `v1a,<base64>` signature of `{msg_id}.{timestamp}.{body}`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        use ed25519_dalek::Signer;
        let content = signed_content(msg_id, &timestamp.to_string(), body);
        format!("v1a,{}", B64.encode(self.0.sign(&content).to_bytes()))
    }
}

/// Verifies a `v1a` entry of a `webhook-signature` header with a `whpk_`
/// public key.
pub fn asymmetric_verify(
    public: &str,
    msg_id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let b = public.trim();
    let key: [u8; 32] = B64
        .decode(b.strip_prefix("whpk_").unwrap_or(b))
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| SignatureError::BadSecret("expected `whpk_` followed by base64 of 32 bytes".into()))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|_| SignatureError::BadSecret("not an ed25519 public key".into()))?;
    check_header_timestamp(timestamp, now, tolerance)?;
    let content = signed_content(msg_id, timestamp.trim(), body);
    for entry in signature_header.split_whitespace() {
        let Some(sig) = entry.strip_prefix("v1a,") else { continue };
        let Some(sig) = B64.decode(sig).ok().and_then(|s| <[u8; 64]>::try_from(s).ok()) else { continue };
        if key.verify_strict(&content, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

// ---------------------------------------------------------------------------
// Generic HMAC schemes

/// A custom HMAC header scheme, for systems that do not speak Standard
/// Webhooks. `content` names what is signed: `{body}`, `{timestamp}` and
/// `{id}` are replaced, e.g. `{timestamp}.{body}` or `v0:{timestamp}:{body}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HmacScheme {
    /// Header that carries the signature.
    pub header: String,
    #[serde(default)]
    pub algorithm: Algorithm,
    #[serde(default)]
    pub encoding: Encoding,
    /// Text before the MAC in the header, e.g. `sha256=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// What is signed (default `{body}`).
    #[serde(default = "default_content")]
    pub content: String,
    /// Header that carries the timestamp, when `content` uses `{timestamp}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
}

fn default_content() -> String {
    "{body}".into()
}

impl HmacScheme {
    /// Splits `content` around `{body}` and fills the other placeholders.
    fn signed_parts<'a>(&'a self, ts: &'a str, id: &'a str, body: &'a [u8]) -> Vec<std::borrow::Cow<'a, [u8]>> {
        let fill = |s: &str| s.replace("{timestamp}", ts).replace("{id}", id).into_bytes();
        let mut out = Vec::new();
        let mut rest = self.content.as_str();
        while let Some(i) = rest.find("{body}") {
            out.push(fill(&rest[..i]).into());
            out.push(body.into());
            rest = &rest[i + "{body}".len()..];
        }
        out.push(fill(rest).into());
        out
    }

    fn mac(&self, key: &[u8], ts: &str, id: &str, body: &[u8]) -> Vec<u8> {
        let parts = self.signed_parts(ts, id, body);
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_ref()).collect();
        hmac(self.algorithm, key, &refs)
    }

    /// The header value for `body` (timestamp and id only where `content`
    /// uses them).
    pub fn sign(&self, key: &[u8], timestamp: i64, id: &str, body: &[u8]) -> String {
        let mac = self.mac(key, &timestamp.to_string(), id, body);
        format!("{}{}", self.prefix.as_deref().unwrap_or(""), encode(self.encoding, &mac))
    }

    /// Whether the signed content includes the timestamp header (only
    /// then does the timestamp bound a signature's life: a timestamp
    /// outside the content can be changed freely).
    pub fn is_timed(&self) -> bool {
        self.content.contains("{timestamp}")
    }

    /// The MAC a request signed with this scheme carries, computed from
    /// its content: the same bytes however the header spells them (hex in
    /// either case, with or without the prefix).
    pub fn expected_mac(&self, key: &[u8], headers: &Headers, body: &[u8]) -> Vec<u8> {
        let ts = if self.is_timed() {
            let name = self.timestamp_header.as_deref().unwrap_or("X-Timestamp");
            headers.get(name).map(str::trim).unwrap_or_default()
        } else {
            ""
        };
        self.mac(key, ts, "", body)
    }

    /// Verifies an inbound request signed with this scheme.
    pub fn verify(
        &self,
        key: &[u8],
        headers: &Headers,
        body: &[u8],
        now: i64,
        tolerance: Duration,
    ) -> Result<(), SignatureError> {
        let value = headers.get(&self.header).ok_or_else(|| SignatureError::MissingHeader(self.header.clone()))?;
        let ts = if self.content.contains("{timestamp}") {
            let name = self.timestamp_header.as_deref().unwrap_or("X-Timestamp");
            let raw = headers.get(name).ok_or_else(|| SignatureError::MissingHeader(name.into()))?;
            let ts: i64 = raw.trim().parse().map_err(|_| SignatureError::MalformedHeader(name.into()))?;
            check_timestamp(ts, now, tolerance)?;
            raw.trim().to_string()
        } else {
            String::new()
        };
        let prefix = self.prefix.as_deref().unwrap_or("");
        let given = value
            .trim()
            .strip_prefix(prefix)
            .and_then(|v| decode(self.encoding, v))
            .ok_or_else(|| SignatureError::MalformedHeader(self.header.clone()))?;
        let want = self.mac(key, &ts, "", body);
        if mac_eq(&want, &given) { Ok(()) } else { Err(SignatureError::Mismatch) }
    }
}

// ---------------------------------------------------------------------------
// Presets of well-known senders

/// Senders whose signature scheme Hookflow knows by name (`system:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// Any sender; no preset.
    Generic,
    /// `X-Hub-Signature-256: sha256=<hex>` over the body.
    Github,
    /// `Stripe-Signature: t=<ts>,v1=<hex>` over `{t}.{body}`.
    Stripe,
    /// `X-Shopify-Hmac-Sha256: <base64>` over the body.
    Shopify,
    /// `X-Slack-Signature: v0=<hex>` over `v0:{ts}:{body}`.
    Slack,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks,
}

impl System {
    /// The HMAC scheme of a preset that fits [`HmacScheme`].
    pub fn hmac_scheme(self) -> Option<HmacScheme> {
        let s = |header: &str, encoding, prefix: Option<&str>, content: &str, ts: Option<&str>| HmacScheme {
            header: header.into(),
            algorithm: Algorithm::Sha256,
            encoding,
            prefix: prefix.map(Into::into),
            content: content.into(),
            timestamp_header: ts.map(Into::into),
        };
        match self {
            System::Github => Some(s("X-Hub-Signature-256", Encoding::Hex, Some("sha256="), "{body}", None)),
            System::Shopify => Some(s("X-Shopify-Hmac-Sha256", Encoding::Base64, None, "{body}", None)),
            System::Slack => Some(s(
                "X-Slack-Signature",
                Encoding::Hex,
                Some("v0="),
                "v0:{timestamp}:{body}",
                Some("X-Slack-Request-Timestamp"),
            )),
            System::Generic | System::Stripe | System::StandardWebhooks => None,
        }
    }
}

/// Signs like Stripe: `t=<ts>,v1=<hex>`.
pub fn stripe_sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mac = hmac(Algorithm::Sha256, secret, &[timestamp.to_string().as_bytes(), b".", body]);
    format!("t={timestamp},v1={}", hex(&mac))
}

/// The one `t` of a `Stripe-Signature` header: `None` without one, or
/// with two (which would let a replay vary the one not verified).
fn stripe_time(header: &str) -> Option<&str> {
    let mut times = header.split(',').filter_map(|item| item.trim().strip_prefix("t="));
    let t = times.next()?;
    times.next().is_none().then_some(t)
}

/// The `v1` MAC a valid `Stripe-Signature` header carries: HMAC-SHA256
/// over its `t` and the body (`None` without exactly one `t`). Whatever
/// else the header holds (other entries, their order), a request signed
/// for one time and body has this one.
pub fn stripe_mac(secret: &[u8], header: &str, body: &[u8]) -> Option<Vec<u8>> {
    let ts = stripe_time(header)?;
    Some(hmac(Algorithm::Sha256, secret, &[ts.as_bytes(), b".", body]))
}

/// Verifies a `Stripe-Signature` header (any of its `v1` entries).
pub fn stripe_verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let malformed = || SignatureError::MalformedHeader("Stripe-Signature".into());
    let mut sigs = Vec::new();
    for item in header.split(',') {
        if let Some(("v1", v)) = item.trim().split_once('=') {
            sigs.push(unhex(v).ok_or_else(malformed)?);
        }
    }
    let ts = stripe_time(header).ok_or_else(malformed)?;
    check_timestamp(ts.parse().map_err(|_| malformed())?, now, tolerance)?;
    let want = hmac(Algorithm::Sha256, secret, &[ts.as_bytes(), b".", body]);
    let mut ok = false;
    for s in &sigs {
        ok |= mac_eq(&want, s);
    }
    if ok { Ok(()) } else { Err(SignatureError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks specification's published test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secrets() -> Vec<WebhookSecret> {
        parse_secrets(SECRET).unwrap()
    }

    // RFC 8032, section 7.1, test 1: the seed and its public key.
    const ED_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const ED_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn ed25519_keys_sign_v1a_and_verify_with_the_public_key_only() {
        let key = SigningKey::parse(&format!("whsk_{}", B64.encode(unhex(ED_SEED)))).unwrap();
        assert_eq!(key.public(), format!("whpk_{}", B64.encode(unhex(ED_PUBLIC))), "RFC 8032 public key");
        // The 64-byte form round-trips; a wrong second half is refused.
        assert_eq!(SigningKey::parse(&key.expose()).unwrap().public(), key.public());
        let mut bad = [unhex(ED_SEED), unhex(ED_PUBLIC)].concat();
        bad[40] ^= 1;
        assert!(SigningKey::parse(&format!("whsk_{}", B64.encode(bad))).is_err());

        let sig = key.sign(MSG_ID, TS, BODY);
        assert!(sig.starts_with("v1a,"));
        let verify = |public: &str, header: &str, body: &[u8]| {
            asymmetric_verify(public, MSG_ID, &TS.to_string(), header, body, TS, Duration::from_secs(300))
        };
        verify(&key.public(), &sig, BODY).unwrap();
        // Next to an HMAC signature (both schemes in one header), still found.
        verify(&key.public(), &format!("{SIG} {sig}"), BODY).unwrap();
        assert!(matches!(verify(&key.public(), &sig, b"tampered"), Err(SignatureError::Mismatch)));
        assert!(matches!(verify(&SigningKey::generate().public(), &sig, BODY), Err(SignatureError::Mismatch)));
        assert!(matches!(verify(&key.public(), SIG, BODY), Err(SignatureError::Mismatch)), "v1 is not v1a");
        assert!(!format!("{key:?}").contains(&key.expose()), "Debug shows only the public key");
    }

    #[test]
    fn standard_webhooks_spec_vector_signs() {
        assert_eq!(standard_sign(&secrets(), MSG_ID, TS, BODY), SIG);
        // The prefix is optional.
        let bare = WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(bare.sign(MSG_ID, TS, BODY), SIG);
    }

    #[test]
    fn standard_webhooks_spec_vector_verifies_and_rejects_tampering() {
        let tol = DEFAULT_TOLERANCE;
        assert_eq!(standard_verify(&secrets(), MSG_ID, "1614265330", SIG, BODY, TS, tol), Ok(()));
        let other_body = br#"{"test": 2432232315}"#;
        assert_eq!(
            standard_verify(&secrets(), MSG_ID, "1614265330", SIG, other_body, TS, tol),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            standard_verify(&secrets(), "msg_other", "1614265330", SIG, BODY, TS, tol),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            standard_verify(&secrets(), MSG_ID, "1614265331", SIG, BODY, TS, tol),
            Err(SignatureError::Mismatch)
        );
        // Wrong version tag, garbage.
        assert_eq!(
            standard_verify(&secrets(), MSG_ID, "1614265330", &SIG.replace("v1,", "v2,"), BODY, TS, tol),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            standard_verify(&secrets(), MSG_ID, "1614265330", "v1,!!!", BODY, TS, tol),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn timestamps_outside_five_minutes_are_replays() {
        let tol = DEFAULT_TOLERANCE;
        assert_eq!(standard_verify(&secrets(), MSG_ID, "1614265330", SIG, BODY, TS + 300, tol), Ok(()));
        assert_eq!(
            standard_verify(&secrets(), MSG_ID, "1614265330", SIG, BODY, TS + 301, tol),
            Err(SignatureError::Timestamp(300))
        );
        assert_eq!(
            standard_verify(&secrets(), MSG_ID, "1614265330", SIG, BODY, TS - 301, tol),
            Err(SignatureError::Timestamp(300))
        );
        assert!(matches!(
            standard_verify(&secrets(), MSG_ID, "yesterday", SIG, BODY, TS, tol),
            Err(SignatureError::MalformedHeader(_))
        ));
    }

    #[test]
    fn rotation_sends_and_accepts_several_signatures() {
        let old = WebhookSecret::parse(SECRET).unwrap();
        let new = WebhookSecret::generate();
        let both = standard_sign(&[new.clone(), old.clone()], MSG_ID, TS, BODY);
        assert_eq!(both.split(' ').count(), 2);
        assert!(both.ends_with(SIG));
        // A receiver that knows only one of them accepts.
        let tol = DEFAULT_TOLERANCE;
        assert_eq!(standard_verify(&[old], MSG_ID, "1614265330", &both, BODY, TS, tol), Ok(()));
        assert_eq!(standard_verify(std::slice::from_ref(&new), MSG_ID, "1614265330", &both, BODY, TS, tol), Ok(()));
        // Two secrets in one string.
        let list = parse_secrets(&format!("{} {SECRET}", new.expose())).unwrap();
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn bad_secrets_are_rejected() {
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        assert!(WebhookSecret::parse("whsec_").is_err());
        assert!(parse_secrets("  ").is_err());
        let g = WebhookSecret::generate();
        assert!(g.expose().starts_with("whsec_"));
        assert_eq!(format!("{g:?}"), "WebhookSecret(***)");
    }

    #[test]
    fn github_preset_round_trips() {
        // The example from GitHub's documentation.
        let scheme = System::Github.hmac_scheme().unwrap();
        let sig = scheme.sign(b"It's a Secret to Everybody", 0, "", b"Hello, World!");
        assert_eq!(sig, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        let headers: Headers = [("X-Hub-Signature-256", sig.as_str())].into_iter().collect();
        assert_eq!(
            scheme.verify(b"It's a Secret to Everybody", &headers, b"Hello, World!", 0, DEFAULT_TOLERANCE),
            Ok(())
        );
        assert_eq!(
            scheme.verify(b"wrong", &headers, b"Hello, World!", 0, DEFAULT_TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            scheme.verify(b"k", &Headers::new(), b"x", 0, DEFAULT_TOLERANCE),
            Err(SignatureError::MissingHeader("X-Hub-Signature-256".into()))
        );
    }

    #[test]
    fn shopify_preset_is_base64_over_the_body() {
        let scheme = System::Shopify.hmac_scheme().unwrap();
        let sig = scheme.sign(b"key", 0, "", b"{}");
        assert_eq!(sig, B64.encode(hmac(Algorithm::Sha256, b"key", &[b"{}"])));
        let headers: Headers = [("x-shopify-hmac-sha256", sig.as_str())].into_iter().collect();
        assert_eq!(scheme.verify(b"key", &headers, b"{}", 0, DEFAULT_TOLERANCE), Ok(()));
    }

    #[test]
    fn slack_preset_signs_version_timestamp_and_body() {
        // The example from Slack's documentation.
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let scheme = System::Slack.hmac_scheme().unwrap();
        let sig = scheme.sign(secret, 1_531_420_618, "", body);
        assert_eq!(sig, "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503");
        let headers: Headers =
            [("X-Slack-Signature", sig.as_str()), ("X-Slack-Request-Timestamp", "1531420618")].into_iter().collect();
        assert_eq!(scheme.verify(secret, &headers, body, 1_531_420_618, DEFAULT_TOLERANCE), Ok(()));
        assert_eq!(
            scheme.verify(secret, &headers, body, 1_531_420_618 + 3600, DEFAULT_TOLERANCE),
            Err(SignatureError::Timestamp(300))
        );
    }

    #[test]
    fn stripe_round_trips_and_accepts_any_v1() {
        let header = stripe_sign(b"whsec_test", 1000, b"{}");
        assert_eq!(stripe_verify(b"whsec_test", &header, b"{}", 1000, DEFAULT_TOLERANCE), Ok(()));
        let two = format!("t=1000,v1={},v1={}", hex(&[0u8; 32]), header.split("v1=").nth(1).unwrap());
        assert_eq!(stripe_verify(b"whsec_test", &two, b"{}", 1000, DEFAULT_TOLERANCE), Ok(()));
        assert_eq!(stripe_verify(b"other", &header, b"{}", 1000, DEFAULT_TOLERANCE), Err(SignatureError::Mismatch));
        assert_eq!(
            stripe_verify(b"whsec_test", &header, b"{}", 5000, DEFAULT_TOLERANCE),
            Err(SignatureError::Timestamp(300))
        );
        assert!(stripe_verify(b"whsec_test", "v1=zz", b"{}", 1000, DEFAULT_TOLERANCE).is_err());
        // Two times: refused (a replay could vary the one not verified).
        let twice = format!("t=999,{header}");
        assert_eq!(
            stripe_verify(b"whsec_test", &twice, b"{}", 1000, DEFAULT_TOLERANCE),
            Err(SignatureError::MalformedHeader("Stripe-Signature".into()))
        );
        assert_eq!(stripe_mac(b"whsec_test", &twice, b"{}"), None);
    }

    #[test]
    fn generic_schemes_cover_algorithms_encodings_and_content() {
        for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            for enc in [Encoding::Hex, Encoding::Base64] {
                let scheme = HmacScheme {
                    header: "X-Sig".into(),
                    algorithm: alg,
                    encoding: enc,
                    prefix: Some("sig=".into()),
                    content: "{timestamp}.{body}".into(),
                    timestamp_header: Some("X-Ts".into()),
                };
                let sig = scheme.sign(b"k", 77, "", b"payload");
                let mut h: Headers = [("X-Sig", sig.as_str()), ("X-Ts", "77")].into_iter().collect();
                assert_eq!(scheme.verify(b"k", &h, b"payload", 77, DEFAULT_TOLERANCE), Ok(()), "{alg:?} {enc:?}");
                assert_eq!(scheme.verify(b"k", &h, b"payloaD", 77, DEFAULT_TOLERANCE), Err(SignatureError::Mismatch));
                h.set("X-Ts", "78");
                assert_eq!(scheme.verify(b"k", &h, b"payload", 78, DEFAULT_TOLERANCE), Err(SignatureError::Mismatch));
            }
        }
    }
}
