//! A small case-insensitive header list.
//!
//! The core speaks no HTTP library's types: adapters convert to and from this
//! at the edge. Order and repeated names are kept, lookups ignore ASCII case.

use serde::{Deserialize, Serialize};

/// Headers in arrival order. Names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Replaces every value of `name` with one.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.0.push((name.to_string(), value.into()));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A JSON object of lower-cased names to values (repeated names joined by
    /// `, `), the shape templates see as `trigger.headers`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (k, v) in &self.0 {
            let key = k.to_ascii_lowercase();
            match map.get_mut(&key) {
                Some(serde_json::Value::String(prev)) => {
                    prev.push_str(", ");
                    prev.push_str(v);
                }
                _ => {
                    map.insert(key, serde_json::Value::String(v.clone()));
                }
            }
        }
        serde_json::Value::Object(map)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Headers(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// Header names whose values are credentials and never reach a log.
pub const SENSITIVE: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "webhook-signature",
    "svix-signature",
    "x-hub-signature",
    "x-hub-signature-256",
    "stripe-signature",
    "x-shopify-hmac-sha256",
    "x-slack-signature",
];

/// What stored requests and logs show instead of a credential.
pub const REDACTED: &str = "[redacted]";

/// The value to show for a header: itself, or [`REDACTED`] for credentials.
pub fn shown<'a>(name: &str, value: &'a str) -> &'a str {
    if is_sensitive(name) { REDACTED } else { value }
}

/// Fragments that mark a name as a credential's: a header or a query
/// parameter whose name holds one is redacted wherever it is kept (an
/// inbound request as stored, an attempt's request and response headers).
pub const CREDENTIAL_WORDS: &[&str] = &[
    "auth",
    "token",
    "key",
    "secret",
    "passw",
    "pwd",
    "session",
    "credential",
    "jwt",
    "bearer",
    "signature",
    "cookie",
];

/// Names that hold such a fragment and carry no credential: kept, since
/// flows read them (an idempotency key, Bitbucket's event type).
pub const NOT_CREDENTIALS: &[&str] = &["idempotency-key", "x-idempotency-key", "x-event-key"];

/// True when a header's or query parameter's value must be redacted in
/// logs: a name in [`SENSITIVE`], or one holding a [`CREDENTIAL_WORDS`]
/// fragment (any case) that is not in [`NOT_CREDENTIALS`].
pub fn is_sensitive(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SENSITIVE.contains(&n.as_str())
        || (CREDENTIAL_WORDS.iter().any(|w| n.contains(w)) && !NOT_CREDENTIALS.contains(&n.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case_and_keep_order() {
        let mut h: Headers = [("Content-Type", "application/json"), ("X-A", "1"), ("x-a", "2")].into_iter().collect();
        assert_eq!(h.get("content-type"), Some("application/json"));
        assert_eq!(h.get_all("X-a").collect::<Vec<_>>(), vec!["1", "2"]);
        assert_eq!(h.to_json()["x-a"], "1, 2");
        h.set("X-A", "3");
        assert_eq!(h.get_all("x-a").collect::<Vec<_>>(), vec!["3"]);
    }

    #[test]
    fn credentials_are_sensitive() {
        for n in ["Authorization", "Cookie", "webhook-signature", "X-Hub-Signature-256", "X-Auth-Token"] {
            assert!(is_sensitive(n), "{n}");
        }
        // Credential-looking names, as headers or query parameters.
        for n in [
            "apikey",
            "X-ApiKey",
            "x-access-key",
            "password",
            "x-password",
            "x-pwd",
            "session-id",
            "x-session",
            "x-jwt",
            "x-bearer",
            "x-credentials",
            "x-forwarded-authorization",
            "token",
            "access_token",
            "api_key",
            "X-Shopify-Hmac-Sha256",
        ] {
            assert!(is_sensitive(n), "{n}");
        }
        for n in ["Content-Type", "Idempotency-Key", "X-Event-Key", "x-request-id", "user-agent", "page"] {
            assert!(!is_sensitive(n), "{n}");
        }
    }
}
