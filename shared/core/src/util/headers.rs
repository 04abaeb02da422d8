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

/// Words that mark a name as a credential's: a header or a query parameter
/// one of whose words (split at `-`, `_`, `.` and camelCase) is, or ends
/// with, one of these is redacted wherever it is kept (an inbound request
/// as stored, an attempt's request and response headers). Words, not
/// substrings: `keyword` and `author` are kept; `apikey`, `accessToken`
/// and `x-api-key` are not.
pub const CREDENTIAL_WORDS: &[&str] = &[
    "auth",
    "authorization",
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "pwd",
    "session",
    "sessionid",
    "credential",
    "credentials",
    "jwt",
    "bearer",
    "signature",
    "cookie",
];

/// Names made of such words that carry no credential, kept because flows
/// read them: an idempotency key, Bitbucket's event type, and the
/// challenges of subscription handshakes a flow must echo or compare
/// (Microsoft Graph's `validationToken`, Meta's `hub.verify_token`,
/// Twitter's `crc_token`).
pub const NOT_CREDENTIALS: &[&str] = &[
    "idempotency-key",
    "idempotency_key",
    "x-idempotency-key",
    "x-event-key",
    "validationtoken",
    "hub.verify_token",
    "crc_token",
];

/// Whether `test` holds for a word of `name`: split at anything not an
/// ASCII letter or digit, and where a lower-case letter or a digit meets
/// an upper-case letter (camelCase). Each word is a slice of `name`, as
/// spelled: nothing is allocated (this runs for every header stored).
fn any_word(name: &str, test: impl Fn(&str) -> bool) -> bool {
    let mut start = None;
    let mut prev_lower = false;
    for (i, c) in name.char_indices() {
        if !c.is_ascii_alphanumeric() {
            if let Some(s) = start.take()
                && test(&name[s..i])
            {
                return true;
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower {
            if let Some(s) = start
                && test(&name[s..i])
            {
                return true;
            }
            start = Some(i);
        }
        start.get_or_insert(i);
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    start.is_some_and(|s| test(&name[s..]))
}

/// Whether ASCII `word` ends with `suffix`, in any case.
fn ends_with_ignoring_case(word: &str, suffix: &str) -> bool {
    word.len() >= suffix.len() && word[word.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// True when a header's or query parameter's value must be redacted in
/// logs: a name in [`SENSITIVE`], or one with a word in [`CREDENTIAL_WORDS`]
/// (or ending with one, or starting `passw`) that is not in
/// [`NOT_CREDENTIALS`].
pub fn is_sensitive(name: &str) -> bool {
    let is = |list: &[&str]| list.iter().any(|n| n.eq_ignore_ascii_case(name));
    if is(SENSITIVE) {
        return true;
    }
    if is(NOT_CREDENTIALS) {
        return false;
    }
    any_word(name, |w| {
        w.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("passw"))
            || CREDENTIAL_WORDS.iter().any(|c| ends_with_ignoring_case(w, c))
    })
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
        for n in [
            "Content-Type",
            "Idempotency-Key",
            "idempotency_key",
            "X-Event-Key",
            "x-request-id",
            "user-agent",
            "page",
            "keyword",
            "author",
            "X-Authenticated-User",
            "validationToken",
            "hub.verify_token",
            "crc_token",
        ] {
            assert!(!is_sensitive(n), "{n}");
        }
        for n in ["accessToken", "X-API-Key", "client_secret", "AUTH", "x-oauth"] {
            assert!(is_sensitive(n), "{n}");
        }
    }
}
