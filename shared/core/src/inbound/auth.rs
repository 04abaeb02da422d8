//! Verifying an inbound request against its trigger's `auth`.
//!
//! A [`Verifier`] is resolved once per flow from `trigger.auth` and
//! `trigger.system` (validation guarantees the fields each kind needs). The
//! adapter looks up the named secret and calls [`Verifier::verify`]. Every
//! comparison is constant-time: credentials are compared as SHA-256 digests,
//! so neither their content nor their length leaks through timing.

use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::flow::{AuthKind, Trigger};
use crate::headers::{REDACTED, is_sensitive};
use crate::run::InboundRequest;
use crate::signature::{self, DEFAULT_TOLERANCE, HmacScheme, SignatureError, System, mac_eq};

/// Why a request was refused (401). Safe to log and to return: it names the
/// missing or wrong part, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credential: {0}")]
    Missing(String),
    #[error("wrong credential: {0}")]
    Wrong(String),
    #[error("signature: {0}")]
    Signature(#[from] SignatureError),
}

/// How a trigger checks its caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Scheme {
    None,
    ApiKey { header: Option<String>, query: Option<String> },
    Basic { username: String },
    Bearer,
    Hmac(HmacScheme),
    Stripe,
    StandardWebhooks,
}

/// A trigger's resolved authentication.
#[derive(Debug, Clone, PartialEq)]
pub struct Verifier {
    pub scheme: Scheme,
    /// Name of the secret to verify against.
    pub secret: Option<String>,
    pub tolerance: Duration,
}

impl Verifier {
    /// Resolves `trigger.auth` (and the `system` preset) into a verifier.
    pub fn for_trigger(trigger: &Trigger) -> Self {
        let Some(auth) = &trigger.auth else {
            return Verifier { scheme: Scheme::None, secret: None, tolerance: DEFAULT_TOLERANCE };
        };
        let system = trigger.system.unwrap_or(System::Generic);
        let scheme = match auth.kind {
            Some(AuthKind::None) => Scheme::None,
            Some(AuthKind::ApiKey) => Scheme::ApiKey { header: auth.header.clone(), query: auth.query.clone() },
            Some(AuthKind::Basic) => Scheme::Basic { username: auth.username.clone().unwrap_or_default() },
            Some(AuthKind::Bearer) => Scheme::Bearer,
            Some(AuthKind::StandardWebhooks) => Scheme::StandardWebhooks,
            Some(AuthKind::Hmac) => {
                // A preset supplies defaults; explicit fields win.
                let d = system.hmac_scheme().unwrap_or(HmacScheme {
                    header: String::new(),
                    algorithm: Default::default(),
                    encoding: Default::default(),
                    prefix: None,
                    content: "{body}".into(),
                    timestamp_header: None,
                });
                Scheme::Hmac(HmacScheme {
                    header: auth.header.clone().unwrap_or(d.header),
                    algorithm: auth.algorithm.unwrap_or(d.algorithm),
                    encoding: auth.encoding.unwrap_or(d.encoding),
                    prefix: auth.prefix.clone().or(d.prefix),
                    content: auth.content.clone().unwrap_or(d.content),
                    timestamp_header: auth.timestamp_header.clone().or(d.timestamp_header),
                })
            }
            None => match system {
                System::Stripe => Scheme::Stripe,
                System::StandardWebhooks => Scheme::StandardWebhooks,
                other => other.hmac_scheme().map_or(Scheme::None, Scheme::Hmac),
            },
        };
        Verifier {
            scheme,
            secret: auth.secret.clone(),
            tolerance: auth.tolerance.map_or(DEFAULT_TOLERANCE, |t| t.get()),
        }
    }

    /// Checks `req` given the secret's value and the current Unix time,
    /// with signatures over `req.body`.
    pub fn verify(&self, req: &InboundRequest, secret: &str, now: i64) -> Result<(), AuthError> {
        self.verify_bytes(req, req.body.as_bytes(), secret, now)
    }

    /// Checks `req` with signatures over `body`, the bytes exactly as they
    /// arrived (`req.body` is text, lossy for a body that is not UTF-8).
    pub fn verify_bytes(&self, req: &InboundRequest, body: &[u8], secret: &str, now: i64) -> Result<(), AuthError> {
        match &self.scheme {
            Scheme::None => Ok(()),
            Scheme::ApiKey { header, query } => {
                let given = header.as_deref().and_then(|h| req.headers.get(h).map(str::to_string)).or_else(|| {
                    query.as_deref().and_then(|q| req.query.get(q)).and_then(|v| v.as_str().map(str::to_string))
                });
                let name = header.as_deref().or(query.as_deref()).unwrap_or("api key");
                let given = given.ok_or_else(|| AuthError::Missing(name.to_string()))?;
                same(&given, secret).then_some(()).ok_or_else(|| AuthError::Wrong(name.to_string()))
            }
            Scheme::Basic { username } => {
                let value = credential(req, "Basic")?;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| AuthError::Wrong("Authorization".into()))?;
                let (user, pass) = decoded.split_once(':').ok_or_else(|| AuthError::Wrong("Authorization".into()))?;
                // Evaluate both comparisons: no early exit on the user name.
                let ok = same(user, username) & same(pass, secret);
                ok.then_some(()).ok_or_else(|| AuthError::Wrong("Authorization".into()))
            }
            Scheme::Bearer => {
                let token = credential(req, "Bearer")?;
                same(token.trim(), secret).then_some(()).ok_or_else(|| AuthError::Wrong("Authorization".into()))
            }
            Scheme::Hmac(h) => Ok(h.verify(secret.as_bytes(), &req.headers, body, now, self.tolerance)?),
            Scheme::Stripe => {
                let header =
                    req.headers.get("Stripe-Signature").ok_or_else(|| AuthError::Missing("Stripe-Signature".into()))?;
                Ok(signature::stripe_verify(secret.as_bytes(), header, body, now, self.tolerance)?)
            }
            Scheme::StandardWebhooks => {
                let get = |n: &str| req.headers.get(n).ok_or_else(|| AuthError::Missing(n.to_string()));
                let (id, ts, sig) = (get("webhook-id")?, get("webhook-timestamp")?, get("webhook-signature")?);
                let secrets = signature::parse_secrets(secret)?;
                Ok(signature::standard_verify(&secrets, id, ts, sig, body, now, self.tolerance)?)
            }
        }
    }
}

impl Verifier {
    /// What identifies one signed request of this scheme, for replay
    /// protection, given the secret it was verified with: the `webhook-id`
    /// of Standard Webhooks (signed, and kept by a sender's retry),
    /// otherwise the MAC the request's content signs to (Stripe's over its
    /// `t` and body, an HMAC scheme's over its `content`): the bytes, not
    /// the header's text, so a replay whose header spells the same MAC
    /// another way (hex in capitals, other `v1` entries beside it, another
    /// order) is the same request. `None` for a scheme without a
    /// signature, or a request without one.
    pub fn replay_identity(&self, req: &InboundRequest, body: &[u8], secret: &str) -> Option<String> {
        match &self.scheme {
            Scheme::StandardWebhooks => req.headers.get("webhook-id").map(|id| format!("id:{}", id.trim())),
            Scheme::Stripe => req
                .headers
                .get("Stripe-Signature")
                .and_then(|h| signature::stripe_mac(secret.as_bytes(), h, body))
                .map(|mac| format!("mac:{}", signature::hex(&mac))),
            Scheme::Hmac(m) => {
                Some(format!("mac:{}", signature::hex(&m.expected_mac(secret.as_bytes(), &req.headers, body))))
            }
            _ => None,
        }
    }

    /// Whether a signature carries a time, so a replay is refused past the
    /// tolerance anyway: Standard Webhooks and Stripe always, an HMAC
    /// scheme when its signed `content` includes `{timestamp}` (a
    /// timestamp header outside the content can be changed freely).
    pub fn is_timed(&self) -> bool {
        match &self.scheme {
            Scheme::StandardWebhooks | Scheme::Stripe => true,
            Scheme::Hmac(m) => m.is_timed(),
            _ => false,
        }
    }

    /// Redacts what carries credentials, so the request can be stored and
    /// read by templates: headers and query parameters named like a
    /// credential ([`is_sensitive`]: `Authorization`, signatures, anything
    /// holding `token`, `key`, `passw`, `session`, …), this scheme's own
    /// credential header, and its API key passed in the query.
    pub fn strip_credentials(&self, req: &mut InboundRequest) {
        let own = match &self.scheme {
            Scheme::ApiKey { header, .. } => header.clone(),
            Scheme::Hmac(h) => Some(h.header.clone()),
            _ => None,
        };
        let own_query = match &self.scheme {
            Scheme::ApiKey { query: Some(q), .. } => Some(q.as_str()),
            _ => None,
        };
        for (k, v) in req.query.iter_mut() {
            if is_sensitive(k) || own_query == Some(k.as_str()) {
                *v = serde_json::Value::String(REDACTED.into());
            }
        }
        for (k, v) in req.headers.0.iter_mut() {
            if is_sensitive(k) || own.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(k)) {
                *v = REDACTED.into();
            }
        }
    }
}

/// The credential after `Authorization: <scheme> `.
fn credential<'a>(req: &'a InboundRequest, scheme: &str) -> Result<&'a str, AuthError> {
    let value = req.headers.get("Authorization").ok_or_else(|| AuthError::Missing("Authorization".into()))?;
    match value.split_once(' ') {
        Some((s, rest)) if s.eq_ignore_ascii_case(scheme) => Ok(rest),
        _ => Err(AuthError::Wrong("Authorization".into())),
    }
}

/// Constant-time equality that hides the length too.
fn same(a: &str, b: &str) -> bool {
    mac_eq(&Sha256::digest(a.as_bytes()), &Sha256::digest(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::Headers;
    use serde_json::json;

    fn trigger(v: serde_json::Value) -> Trigger {
        let mut base = json!({"type": "webhook", "path": "p"});
        base.as_object_mut().unwrap().extend(v.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn req(headers: &[(&str, &str)], body: &str) -> InboundRequest {
        InboundRequest {
            method: "POST".into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Headers>(),
            body: body.into(),
            ..Default::default()
        }
    }

    #[test]
    fn api_key_in_header_or_query() {
        let v =
            Verifier::for_trigger(&trigger(json!({"auth": {"type": "api_key", "header": "X-Api-Key", "secret": "k"}})));
        assert_eq!(v.secret.as_deref(), Some("k"));
        assert_eq!(v.verify(&req(&[("x-api-key", "s3cret")], ""), "s3cret", 0), Ok(()));
        assert_eq!(
            v.verify(&req(&[("x-api-key", "nope")], ""), "s3cret", 0),
            Err(AuthError::Wrong("X-Api-Key".into()))
        );
        assert_eq!(v.verify(&req(&[], ""), "s3cret", 0), Err(AuthError::Missing("X-Api-Key".into())));
        let q = Verifier::for_trigger(&trigger(json!({"auth": {"type": "api_key", "query": "key", "secret": "k"}})));
        let mut r = req(&[], "");
        r.query.insert("key".into(), json!("s3cret"));
        assert_eq!(q.verify(&r, "s3cret", 0), Ok(()));
    }

    #[test]
    fn basic_and_bearer() {
        let b = Verifier::for_trigger(&trigger(json!({"auth": {"type": "basic", "username": "ann", "secret": "pw"}})));
        let good = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("ann:hunter2"));
        let bad_user = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("bob:hunter2"));
        assert_eq!(b.verify(&req(&[("Authorization", &good)], ""), "hunter2", 0), Ok(()));
        assert!(b.verify(&req(&[("Authorization", &bad_user)], ""), "hunter2", 0).is_err());
        assert!(b.verify(&req(&[("Authorization", "Basic !!")], ""), "hunter2", 0).is_err());
        let t = Verifier::for_trigger(&trigger(json!({"auth": {"type": "bearer", "secret": "t"}})));
        assert_eq!(t.verify(&req(&[("Authorization", "Bearer abc")], ""), "abc", 0), Ok(()));
        assert_eq!(
            t.verify(&req(&[("Authorization", "Bearer abd")], ""), "abc", 0),
            Err(AuthError::Wrong("Authorization".into()))
        );
        assert_eq!(
            t.verify(&req(&[("Authorization", "Basic abc")], ""), "abc", 0),
            Err(AuthError::Wrong("Authorization".into()))
        );
    }

    #[test]
    fn presets_resolve_from_system() {
        let gh = Verifier::for_trigger(&trigger(json!({"system": "github", "auth": {"secret": "gh"}})));
        let Scheme::Hmac(h) = &gh.scheme else { panic!("{gh:?}") };
        let sig = h.sign(b"s", 0, "", b"{}");
        assert_eq!(gh.verify(&req(&[("X-Hub-Signature-256", &sig)], "{}"), "s", 0), Ok(()));
        assert!(gh.verify(&req(&[("X-Hub-Signature-256", &sig)], "{ }"), "s", 0).is_err());

        let st = Verifier::for_trigger(&trigger(json!({"system": "stripe", "auth": {"secret": "st"}})));
        let header = signature::stripe_sign(b"whsec_x", 1000, b"{}");
        assert_eq!(st.verify(&req(&[("Stripe-Signature", &header)], "{}"), "whsec_x", 1000), Ok(()));

        let sw = Verifier::for_trigger(&trigger(json!({"system": "standard-webhooks", "auth": {"secret": "sw"}})));
        let secret = signature::WebhookSecret::generate();
        let sig = secret.sign("msg_1", 1000, b"{}");
        let r = req(&[("webhook-id", "msg_1"), ("webhook-timestamp", "1000"), ("webhook-signature", &sig)], "{}");
        assert_eq!(sw.verify(&r, &secret.expose(), 1000), Ok(()));
        assert!(matches!(
            sw.verify(&r, &secret.expose(), 5000),
            Err(AuthError::Signature(SignatureError::Timestamp(300)))
        ));
    }

    #[test]
    fn credentials_are_stripped_before_storing() {
        let v = Verifier::for_trigger(&trigger(
            json!({"auth": {"type": "api_key", "header": "X-Partner-Key", "query": "key", "secret": "k"}}),
        ));
        let mut r = req(&[("X-Partner-Key", "k1"), ("Authorization", "Bearer t"), ("X-Event-Id", "e-1")], "{}");
        r.query.insert("key".into(), json!("k1"));
        r.query.insert("page".into(), json!("2"));
        v.strip_credentials(&mut r);
        assert_eq!(r.headers.get("x-partner-key"), Some(REDACTED));
        assert_eq!(r.headers.get("authorization"), Some(REDACTED));
        assert_eq!(r.headers.get("x-event-id"), Some("e-1"));
        assert_eq!(r.query["key"], json!(REDACTED));
        assert_eq!(r.query["page"], json!("2"));
        // Credential-looking names other than the trigger's own, in the
        // headers and the query alike; a trigger without auth too.
        let none = Verifier::for_trigger(&trigger(json!({})));
        let mut r = req(&[("x-apikey", "a"), ("X-Session", "s"), ("x-pwd", "p"), ("Idempotency-Key", "i-1")], "{}");
        for q in ["token", "access_token", "password", "api_key"] {
            r.query.insert(q.into(), json!("leak"));
        }
        r.query.insert("page".into(), json!("2"));
        none.strip_credentials(&mut r);
        for h in ["x-apikey", "x-session", "x-pwd"] {
            assert_eq!(r.headers.get(h), Some(REDACTED), "{h}");
        }
        assert_eq!(r.headers.get("idempotency-key"), Some("i-1"), "no credential, and flows read it");
        assert!(!serde_json::to_string(&r.query).unwrap().contains("leak"), "{:?}", r.query);
        assert_eq!(r.query["page"], json!("2"));
        let h =
            Verifier::for_trigger(&trigger(json!({"auth": {"type": "hmac", "header": "X-Hook-Mac", "secret": "s"}})));
        let mut r = req(&[("X-Hook-Mac", "abc")], "{}");
        h.strip_credentials(&mut r);
        assert_eq!(r.headers.get("x-hook-mac"), Some(REDACTED));
    }

    #[test]
    fn explicit_hmac_fields_override_the_preset() {
        let v = Verifier::for_trigger(&trigger(json!({
            "system": "shopify",
            "auth": {"type": "hmac", "secret": "s", "header": "X-Custom", "encoding": "hex"}
        })));
        let Scheme::Hmac(h) = &v.scheme else { panic!() };
        assert_eq!(h.header, "X-Custom");
        assert_eq!(h.encoding, signature::Encoding::Hex);
    }

    #[test]
    fn signatures_are_checked_over_the_raw_bytes() {
        use hmac::Mac;
        let body: &[u8] = b"\xff\xfe binary \x00 payload";
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"k").unwrap();
        mac.update(body);
        let sig = format!("sha256={}", hex_lower(&mac.finalize().into_bytes()));
        let v = Verifier::for_trigger(&trigger(json!({"system": "github", "auth": {"type": "hmac", "secret": "k"}})));
        let lossy = String::from_utf8_lossy(body).into_owned();
        let r = req(&[("X-Hub-Signature-256", &sig)], &lossy);
        assert_eq!(v.verify_bytes(&r, body, "k", 0), Ok(()));
        assert!(v.verify(&r, "k", 0).is_err(), "the lossy text is not what was signed");
    }

    fn hex_lower(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
