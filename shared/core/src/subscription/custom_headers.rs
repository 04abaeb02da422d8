//! A subscription's own headers: static text, or a secret named in the
//! secret store (never its value), sent with each of its deliveries.
//!
//! What Hookflow sets itself cannot be overridden: the Standard Webhooks
//! headers (what the endpoint verifies), the body's `content-type` and
//! `content-length`, `host`, and the hop-by-hop headers. A header whose
//! name marks a credential (`Authorization`, `X-Api-Key`: the words
//! [`crate::headers::is_sensitive`] knows) must name a secret: the
//! subscription record, its listing and the console never hold the value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::request::{Part, SecretText};

use super::record::FieldError;

/// The most headers a subscription sets.
pub const MAX_HEADERS: usize = 20;
/// The longest header value, as text.
pub const MAX_VALUE_BYTES: usize = 4096;

/// Set by Hookflow or by HTTP itself: never a subscription's.
const RESERVED: [&str; 15] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "host",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A header's value: text, or a secret by name after an optional prefix
/// (`{"secret": "crm_token", "prefix": "Bearer "}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValue {
    Text(String),
    Secret {
        secret: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        prefix: String,
    },
}

impl HeaderValue {
    /// As an outbound request carries it: the secret by name.
    pub fn text(&self) -> SecretText {
        match self {
            HeaderValue::Text(t) => SecretText::plain(t),
            HeaderValue::Secret { secret, prefix } => {
                let mut parts = Vec::new();
                if !prefix.is_empty() {
                    parts.push(Part::Text(prefix.clone()));
                }
                parts.push(Part::Secret { secret: secret.clone(), url_encode: false });
                SecretText(parts)
            }
        }
    }
}

/// The headers of a subscription as given (`headers`, a JSON object), or
/// every problem with them, each naming its header.
pub fn parse(given: &serde_json::Map<String, Value>) -> Result<BTreeMap<String, HeaderValue>, Vec<FieldError>> {
    let mut errs = Vec::new();
    let mut out = BTreeMap::new();
    if given.len() > MAX_HEADERS {
        errs.push(FieldError::new("headers", format!("sets {} headers: at most {MAX_HEADERS}", given.len())));
    }
    let mut seen = std::collections::HashSet::new();
    for (name, value) in given {
        let field = format!("headers.{name}");
        let lower = name.to_ascii_lowercase();
        if name.is_empty() || name.len() > 64 || !name.bytes().all(is_token) {
            errs.push(FieldError::new(&field, "is not a header name: letters, digits and `!#$%&'*+-.^_`|~`, 1-64"));
            continue;
        }
        if RESERVED.contains(&lower.as_str()) {
            errs.push(FieldError::new(&field, format!("`{name}` is set by Hookflow or by HTTP itself")));
            continue;
        }
        if !seen.insert(lower) {
            errs.push(FieldError::new(&field, "is given twice (header names ignore case)"));
            continue;
        }
        match value {
            Value::String(text) => {
                if let Some(why) = value_problem(text) {
                    errs.push(FieldError::new(&field, why));
                } else if crate::headers::is_sensitive(name) {
                    errs.push(FieldError::new(
                        &field,
                        format!(
                            "`{name}` holds a credential: name a secret instead, \
                             {{\"secret\": \"its-name\", \"prefix\": \"Bearer \"}}, never the value"
                        ),
                    ));
                } else {
                    out.insert(name.clone(), HeaderValue::Text(text.clone()));
                }
            }
            Value::Object(o) => {
                let secret = o.get("secret").and_then(Value::as_str).unwrap_or_default();
                let prefix = o.get("prefix").map(|p| p.as_str().map(str::to_string));
                let unknown: Vec<&String> = o.keys().filter(|k| !["secret", "prefix"].contains(&k.as_str())).collect();
                if let Some(k) = unknown.first() {
                    errs.push(FieldError::new(
                        format!("{field}.{k}"),
                        "unknown field (a secret takes `secret` and `prefix`)",
                    ));
                } else if !crate::validate::is_secret_name(secret) {
                    errs.push(FieldError::new(
                        format!("{field}.secret"),
                        "name a secret: letters, digits and `_ - . / #`, 1-256",
                    ));
                } else if crate::keyring::is_keyring_name(secret) {
                    errs.push(FieldError::new(format!("{field}.secret"), "a subscription's signing keys are not sent"));
                } else {
                    match prefix {
                        Some(None) => errs.push(FieldError::new(format!("{field}.prefix"), "must be text")),
                        Some(Some(p)) if value_problem(&p).is_some() => {
                            errs.push(FieldError::new(format!("{field}.prefix"), value_problem(&p).unwrap_or_default()))
                        }
                        p => {
                            let prefix = p.flatten().unwrap_or_default();
                            out.insert(name.clone(), HeaderValue::Secret { secret: secret.to_string(), prefix });
                        }
                    }
                }
            }
            _ => errs.push(FieldError::new(&field, "must be text, or {\"secret\": \"its-name\"}")),
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn value_problem(text: &str) -> Option<String> {
    if text.len() > MAX_VALUE_BYTES {
        return Some(format!("is {} bytes: at most {MAX_VALUE_BYTES}", text.len()));
    }
    text.chars()
        .any(|c| c.is_control() && c != '\t')
        .then(|| "cannot hold a line break or another control character".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn given(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn text_and_secrets_by_name_are_kept_and_sent_by_name() {
        let h = parse(&given(json!({"X-Team": "crm", "Authorization": {"secret": "crm_token", "prefix": "Bearer "}})))
            .unwrap();
        assert_eq!(h["X-Team"].text().redacted(), "crm");
        assert_eq!(h["Authorization"].text().redacted(), "Bearer ***");
        assert_eq!(h["Authorization"].text().secret_names(), ["crm_token"]);
        let stored = serde_json::to_value(&h).unwrap();
        assert_eq!(stored, json!({"Authorization": {"secret": "crm_token", "prefix": "Bearer "}, "X-Team": "crm"}));
        assert_eq!(serde_json::from_value::<BTreeMap<String, HeaderValue>>(stored).unwrap(), h, "read back");
    }

    #[test]
    fn every_problem_is_named_by_its_header() {
        let errs = parse(&given(json!({
            "Webhook-Signature": "x", "Transfer-Encoding": "chunked", "Bad Name": "x", "X-Line": "a\r\nInjected: 1",
            "X-Api-Key": "sk_live_123", "X-Ref": {"secret": "subscriptions/sub_1"}, "X-Other": {"secrt": "x"},
            "X-Num": 5, "x-team": "a", "X-Team": "b"
        })))
        .unwrap_err();
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        for (field, says) in [
            ("headers.Webhook-Signature", "set by Hookflow"),
            ("headers.Transfer-Encoding", "set by Hookflow or by HTTP"),
            ("headers.Bad Name", "not a header name"),
            ("headers.X-Line", "line break"),
            ("headers.X-Api-Key", "name a secret instead"),
            ("headers.X-Ref.secret", "signing keys"),
            ("headers.X-Other.secrt", "unknown field"),
            ("headers.X-Num", "must be text"),
            ("headers.", "given twice"),
        ] {
            assert!(shown.iter().any(|e| e.starts_with(field) && e.contains(says)), "{field}: {shown:#?}");
        }
        let many: serde_json::Map<String, Value> = (0..21).map(|i| (format!("X-{i}"), json!("v"))).collect();
        assert!(parse(&many).unwrap_err()[0].message.contains("at most 20"));
    }
}
