//! Rendering an `http`/`ping` step into a request that can be queued, logged
//! and sent, without the secrets in it.
//!
//! Secret references survive rendering as [`Part::Secret`] placeholders, so a
//! rendered [`OutboundRequest`] can go to SQS, DynamoDB or a log as it is.
//! Only the sender calls [`SecretText::resolve`], at send time.

use std::fmt::Write as _;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::flow::{Body, HttpStep, Method, OutboundAuth, SignScheme, SignSpec};
use crate::signature::{self, SignatureError};
use crate::template::{Context, SECRET_CLOSE, SECRET_OPEN, Templates};
use crate::validate::url_params;

pub use crate::text::encode_component;

/// A piece of a value that may hold secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Part {
    Text(String),
    Secret {
        secret: String,
        /// Percent-encode the value (query strings).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        url_encode: bool,
    },
    /// Base64 of the concatenated parts (HTTP basic auth).
    Base64 {
        base64: Vec<Part>,
    },
}

/// Text with secret placeholders. Serialises as a plain string when it holds
/// no secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretText(pub Vec<Part>);

impl Serialize for SecretText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [] => s.serialize_str(""),
            [Part::Text(t)] => s.serialize_str(t),
            parts => parts.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Plain(String),
            Parts(Vec<Part>),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Plain(s) => SecretText(vec![Part::Text(s)]),
            Raw::Parts(p) => SecretText(p),
        })
    }
}

impl SecretText {
    pub fn plain(s: impl Into<String>) -> Self {
        SecretText(vec![Part::Text(s.into())])
    }

    /// Splits a rendered string at the placeholders carrying `nonce`.
    /// Anything else, including look-alike placeholders that came from data,
    /// stays text.
    fn from_rendered(s: &str, nonce: Option<&str>, url_encode: bool) -> Self {
        let mut parts = Vec::new();
        let mut text = String::new();
        if !s.contains(SECRET_OPEN) {
            return SecretText(vec![Part::Text(if url_encode { encode_component(s) } else { s.to_string() })]);
        }
        let mut rest = s;
        let push_text = |text: &mut String, parts: &mut Vec<Part>| {
            if !text.is_empty() {
                let t = std::mem::take(text);
                parts.push(Part::Text(if url_encode { encode_component(&t) } else { t }));
            }
        };
        if let Some(nonce) = nonce {
            let open = format!("{SECRET_OPEN}{nonce}:");
            while let Some(i) = rest.find(&open) {
                let after = &rest[i + open.len()..];
                let Some(j) = after.find(SECRET_CLOSE) else { break };
                text.push_str(&rest[..i]);
                push_text(&mut text, &mut parts);
                parts.push(Part::Secret { secret: after[..j].to_string(), url_encode });
                rest = &after[j + SECRET_CLOSE.len_utf8()..];
            }
        }
        text.push_str(rest);
        push_text(&mut text, &mut parts);
        SecretText(parts)
    }

    /// The host of a URL held in it (lower-case, without its port), when
    /// its text before any secret names one.
    pub fn url_host(&self) -> Option<String> {
        let Some(Part::Text(t)) = self.0.first() else { return None };
        let rest = t.strip_prefix("https://").or_else(|| t.strip_prefix("http://"))?;
        let authority = rest.split(['/', '?', '#']).next()?;
        if authority.len() == rest.len() && self.0.len() > 1 {
            return None; // a secret inside the authority
        }
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next()?,
            None => authority.split(':').next()?,
        };
        (!host.is_empty()).then(|| host.trim_end_matches('.').to_ascii_lowercase())
    }

    /// Names of the secrets used.
    pub fn secret_names(&self) -> Vec<&str> {
        fn walk<'a>(parts: &'a [Part], out: &mut Vec<&'a str>) {
            for p in parts {
                match p {
                    Part::Secret { secret, .. } => out.push(secret),
                    Part::Base64 { base64 } => walk(base64, out),
                    Part::Text(_) => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.0, &mut out);
        out
    }

    /// The text with every secret shown as `***`: safe to print and log.
    pub fn redacted(&self) -> String {
        fn walk(parts: &[Part], out: &mut String) {
            for p in parts {
                match p {
                    Part::Text(t) => out.push_str(t),
                    Part::Secret { .. } => out.push_str("***"),
                    Part::Base64 { base64 } if base64.iter().all(|p| matches!(p, Part::Text(_))) => {
                        let mut inner = String::new();
                        walk(base64, &mut inner);
                        out.push_str(&base64::engine::general_purpose::STANDARD.encode(inner));
                    }
                    Part::Base64 { .. } => out.push_str("***"),
                }
            }
        }
        let mut out = String::new();
        walk(&self.0, &mut out);
        out
    }

    /// The real value, looking secrets up by name. Only senders call this.
    pub fn resolve<E>(&self, lookup: &mut impl FnMut(&str) -> Result<String, E>) -> Result<String, E> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Secret { secret, url_encode } => {
                    let v = lookup(secret)?;
                    out.push_str(&if *url_encode { encode_component(&v) } else { v });
                }
                Part::Base64 { base64 } => {
                    let inner = SecretText(base64.clone()).resolve(lookup)?;
                    out.push_str(&base64::engine::general_purpose::STANDARD.encode(inner));
                }
            }
        }
        Ok(out)
    }
}

/// A rendered outbound request. Holds secret *names*, never values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundRequest {
    pub method: Method,
    pub url: SecretText,
    pub headers: Vec<(String, SecretText)>,
    /// The body as sent (JSON, form or raw text); `None` for no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl OutboundRequest {
    /// The names of the secrets the request carries (URL, then headers), in
    /// order, with repeats.
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names = self.url.secret_names();
        for (_, value) in &self.headers {
            names.extend(value.secret_names());
        }
        names
    }

    pub fn header(&self, name: &str) -> Option<&SecretText> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// A JSON view with secrets as `***`, for `hookflow test` and logs.
    pub fn redacted(&self) -> Value {
        let headers: serde_json::Map<String, Value> =
            self.headers.iter().map(|(k, v)| (k.clone(), Value::String(v.redacted()))).collect();
        serde_json::json!({
            "method": self.method.as_str(),
            "url": self.url.redacted(),
            "headers": headers,
            "body": self.body,
        })
    }
}

/// The user agent of every outbound request.
pub const USER_AGENT: &str = concat!("Hookflow/", env!("CARGO_PKG_VERSION"));

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Renders an `http` or `ping` step. `field` is the step's path for errors
/// (`steps[0]`).
pub fn render_request(
    templates: &Templates,
    step: &HttpStep,
    ctx: &Context,
    field: &str,
) -> Result<OutboundRequest, Error> {
    // Errors name the field; the name is only built when there is one.
    let render_err = |f: &dyn std::fmt::Display| {
        let field = format!("{field}.{f}");
        move |source| Error::Render { field, source }
    };
    let with_secrets = ctx.with_secrets();
    let nonce = with_secrets.secret_nonce();

    // URL with endpoint parameters, each one encoded path segment.
    let mut url = templates.render_text(&step.url, ctx).map_err(|e| render_err(&"url")(e))?;
    for name in url_params(&step.url) {
        let raw = step
            .params
            .get(&name)
            .map(|v| templates.render_json(v, ctx))
            .transpose()
            .map_err(|e| render_err(&"params")(e))?;
        let value = raw.as_ref().map(value_text).unwrap_or_default();
        if value.is_empty() || value == "." || value == ".." {
            return Err(Error::request(
                format!("{field}.params.{name}"),
                format!("rendered to {value:?}, which cannot be a path segment"),
            ));
        }
        url = url.replacen(&format!("{{{name}}}"), &encode_component(&value), 1);
    }
    // An AWS step's ARN is its own, never rendered from data.
    if crate::destination::is_arn(&url) {
        if url != step.url {
            return Err(Error::request(
                format!("{field}.url"),
                "rendered to an ARN: AWS destinations are `sqs`, `sns` and `eventbridge` steps",
            ));
        }
        crate::destination::Arn::parse(&url).map_err(|m| Error::request(format!("{field}.arn"), m))?;
    } else {
        check_url_text(&url).map_err(|m| Error::request(format!("{field}.url"), m))?;
    }
    let mut url = SecretText::plain(url);

    // Query string.
    let mut first = !url.redacted().contains('?');
    for (k, v) in &step.query {
        let text = match v {
            Value::String(s) => {
                templates.render_text(s, &with_secrets).map_err(|e| render_err(&format_args!("query.{k}"))(e))?
            }
            other => value_text(other),
        };
        url.0.push(Part::Text(format!("{}{}=", if first { '?' } else { '&' }, encode_component(k))));
        url.0.extend(SecretText::from_rendered(&text, nonce, true).0);
        first = false;
    }

    // Headers.
    let mut headers: Vec<(String, SecretText)> = Vec::new();
    for (k, v) in &step.headers {
        let text = match v {
            Value::String(s) => {
                templates.render_text(s, &with_secrets).map_err(|e| render_err(&format_args!("headers.{k}"))(e))?
            }
            other => value_text(other),
        };
        if text.contains(['\r', '\n', '\0']) {
            return Err(Error::request(format!("{field}.headers.{k}"), "rendered value contains CR, LF or NUL"));
        }
        headers.push((k.clone(), SecretText::from_rendered(&text, nonce, false)));
    }
    if let Some(auth) = &step.auth {
        let render = |f: &str, s: &str| -> Result<SecretText, Error> {
            let text = templates.render_text(s, &with_secrets).map_err(|e| render_err(&format_args!("auth.{f}"))(e))?;
            if text.contains(['\r', '\n', '\0']) {
                return Err(Error::request(format!("{field}.auth.{f}"), "rendered value contains CR, LF or NUL"));
            }
            Ok(SecretText::from_rendered(&text, nonce, false))
        };
        let value = match auth {
            OutboundAuth::Bearer { token } => {
                let mut parts = vec![Part::Text("Bearer ".into())];
                parts.extend(render("token", token)?.0);
                SecretText(parts)
            }
            OutboundAuth::Basic { username, password } => {
                let mut inner = render("username", username)?.0;
                inner.push(Part::Text(":".into()));
                inner.extend(render("password", password)?.0);
                SecretText(vec![Part::Text("Basic ".into()), Part::Base64 { base64: inner }])
            }
        };
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
        headers.push(("Authorization".into(), value));
    }

    // Body.
    let (body, content_type) = match &step.body {
        Some(b) => render_body(templates, b, ctx, &format!("{field}.body"))?,
        None => (None, None),
    };
    if let Some(ct) = content_type
        && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".into(), SecretText::plain(ct)));
    }
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("user-agent")) {
        headers.push(("User-Agent".into(), SecretText::plain(USER_AGENT)));
    }
    Ok(OutboundRequest { method: step.method, url, headers, body })
}

/// Renders a body block to its text and default content type.
pub fn render_body(
    templates: &Templates,
    b: &Body,
    ctx: &Context,
    field: &str,
) -> Result<(Option<String>, Option<String>), Error> {
    let err = |source| Error::Render { field: field.to_string(), source };
    if let Some(j) = &b.json {
        let text = templates.render_json_text_at(&format!("{field}.json"), j, ctx).map_err(err)?;
        return Ok((Some(text), Some("application/json".into())));
    }
    if let Some(form) = &b.form {
        let mut out = String::new();
        for (k, v) in form {
            let text = match v {
                Value::String(s) => templates.render_text(s, ctx).map_err(err)?,
                other => value_text(other),
            };
            if !out.is_empty() {
                out.push('&');
            }
            let _ = write!(out, "{}={}", encode_component(k), encode_component(&text));
        }
        return Ok((Some(out), Some("application/x-www-form-urlencoded".into())));
    }
    if let Some(raw) = &b.raw {
        let text = templates.render_text(raw, ctx).map_err(err)?;
        let ct = b.content_type.clone().unwrap_or_else(|| "text/plain; charset=utf-8".into());
        return Ok((Some(text), Some(ct)));
    }
    Ok((None, None))
}

/// Checks a URL's text: `http(s)://`, a host, no credentials, no
/// whitespace or control characters.
pub fn check_url_text(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err(format!("`{url}` has no host, or has credentials in it"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} contains whitespace or control characters"));
    }
    Ok(())
}

/// Headers that sign a request, given the signing secret's *value*.
/// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`
/// (one signature per space-separated secret). HMAC: the scheme's header, and
/// its timestamp header when the signed content has one.
pub fn signature_headers(
    spec: &SignSpec,
    secret_value: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<Vec<(String, String)>, SignatureError> {
    match (spec.scheme, &spec.hmac) {
        (SignScheme::Hmac, Some(h)) => {
            let mut out = vec![(h.header.clone(), h.sign(secret_value.as_bytes(), timestamp, msg_id, body))];
            if h.content.contains("{timestamp}") {
                out.push((h.timestamp_header.clone().unwrap_or_else(|| "X-Timestamp".into()), timestamp.to_string()));
            }
            Ok(out)
        }
        _ if secret_value.trim_start().starts_with('{') => {
            // A subscription's keyring: every key not yet expired signs.
            let ring = crate::keyring::Keyring::from_text(secret_value)
                .ok_or_else(|| SignatureError::BadSecret("the keyring is not valid JSON".into()))?;
            Ok(vec![
                ("webhook-id".into(), msg_id.to_string()),
                ("webhook-timestamp".into(), timestamp.to_string()),
                ("webhook-signature".into(), ring.sign(msg_id, timestamp, body)?),
            ])
        }
        _ => {
            let secrets = signature::parse_secrets(secret_value)?;
            Ok(vec![
                ("webhook-id".into(), msg_id.to_string()),
                ("webhook-timestamp".into(), timestamp.to_string()),
                ("webhook-signature".into(), signature::standard_sign(&secrets, msg_id, timestamp, body)),
            ])
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_urls_host_is_read_without_port_case_or_userinfo_and_not_through_a_secret() {
        let host = |u: &str| super::SecretText::plain(u).url_host();
        assert_eq!(host("https://API.Partner.example:8443/x?y").as_deref(), Some("api.partner.example"));
        assert_eq!(host("http://[::1]:9/").as_deref(), Some("::1"));
        assert_eq!(host("http://127.0.0.1:80").as_deref(), Some("127.0.0.1"));
        assert_eq!(host("ftp://x"), None);
        let secret = super::SecretText(vec![
            super::Part::Text("https://api.".into()),
            super::Part::Secret { secret: "s".into(), url_encode: false },
        ]);
        assert_eq!(secret.url_host(), None, "a host that holds a secret is not guessed");
    }

    use super::*;
    use serde_json::json;

    fn step(v: Value) -> HttpStep {
        serde_json::from_value(v).unwrap()
    }

    fn compile(step: &HttpStep) -> Templates {
        // Compile every template of the step the way validation does.
        let mut t = Templates::new();
        let mut add = |s: &str| {
            t.add(s).unwrap();
        };
        add(&step.url);
        for v in step.params.values().chain(step.query.values()).chain(step.headers.values()) {
            if let Value::String(s) = v {
                add(s);
            }
        }
        if let Some(OutboundAuth::Bearer { token }) = &step.auth {
            add(token);
        }
        if let Some(OutboundAuth::Basic { username, password }) = &step.auth {
            add(username);
            add(password);
        }
        fn walk(v: &Value, add: &mut dyn FnMut(&str)) {
            match v {
                Value::String(s) => add(s),
                Value::Array(a) => a.iter().for_each(|x| walk(x, add)),
                Value::Object(o) => o.values().for_each(|x| walk(x, add)),
                _ => {}
            }
        }
        if let Some(b) = &step.body {
            if let Some(j) = &b.json {
                walk(j, &mut add);
            }
            if let Some(f) = &b.form {
                f.values().for_each(|x| walk(x, &mut add));
            }
            if let Some(r) = &b.raw {
                add(r);
            }
        }
        t
    }

    fn ctx(body: Value) -> Context {
        Context::new(json!({"trigger": {"body": body}}).as_object().unwrap().clone())
    }

    fn render(s: &HttpStep, body: Value) -> Result<OutboundRequest, Error> {
        render_request(&compile(s), s, &ctx(body), "steps[0]")
    }

    #[test]
    fn endpoint_parameters_stay_in_one_segment() {
        let s = step(json!({"url": "https://p.example/partners/{id}/sync", "params": {"id": "{{ trigger.body.id }}"}}));
        let r = render(&s, json!({"id": "../admin"})).unwrap();
        assert_eq!(r.url.redacted(), "https://p.example/partners/..%2Fadmin/sync");
        let r = render(&s, json!({"id": "a b?c"})).unwrap();
        assert_eq!(r.url.redacted(), "https://p.example/partners/a%20b%3Fc/sync");
        let r = render(&s, json!({"id": 42})).unwrap();
        assert_eq!(r.url.redacted(), "https://p.example/partners/42/sync");
        for bad in ["..", ".", ""] {
            let e = render(&s, json!({"id": bad})).unwrap_err();
            assert!(e.to_string().contains("steps[0].params.id"), "{e}");
        }
    }

    #[test]
    fn cr_lf_in_a_rendered_header_is_rejected() {
        let s = step(json!({"url": "https://x.example/", "headers": {"X-Name": "{{ trigger.body.name }}"}}));
        let e = render(&s, json!({"name": "a\r\nX-Injected: 1"})).unwrap_err();
        assert_eq!(e.to_string(), "steps[0].headers.X-Name: rendered value contains CR, LF or NUL");
        assert!(render(&s, json!({"name": "fine"})).is_ok());
    }

    #[test]
    fn secrets_become_placeholders_resolved_only_by_the_sender() {
        let s = step(json!({
            "url": "https://x.example/hook",
            "query": {"key": "{{ secrets.api_key }}", "q": "a b"},
            "headers": {"Authorization": "Bearer {{ secrets.token }}"},
            "body": {"json": {"id": "{{ trigger.body.id }}"}}
        }));
        let r = render(&s, json!({"id": 1})).unwrap();
        let auth = r.header("authorization").unwrap();
        assert_eq!(auth.redacted(), "Bearer ***");
        assert_eq!(r.url.redacted(), "https://x.example/hook?key=***&q=a%20b");
        // Serialised (as it would go to a queue), no value appears.
        let wire = serde_json::to_string(&r).unwrap();
        assert!(wire.contains(r#"{"secret":"token"}"#), "{wire}");
        let back: OutboundRequest = serde_json::from_str(&wire).unwrap();
        assert_eq!(back, r);
        let mut lookup = |name: &str| -> Result<String, String> {
            Ok(match name {
                "token" => "t0k".into(),
                "api_key" => "k&=1".into(),
                _ => return Err(name.into()),
            })
        };
        assert_eq!(auth.resolve(&mut lookup).unwrap(), "Bearer t0k");
        assert_eq!(r.url.resolve(&mut lookup).unwrap(), "https://x.example/hook?key=k%26%3D1&q=a%20b");
        assert_eq!(r.body.as_deref(), Some(r#"{"id":1}"#));
        assert_eq!(r.header("content-type").unwrap().redacted(), "application/json");
    }

    #[test]
    fn data_cannot_forge_a_secret_placeholder() {
        let s = step(json!({"url": "https://x.example/", "headers": {"X-Echo": "{{ trigger.body.v }}"}}));
        let forged = format!("{SECRET_OPEN}0000000000000000:token{SECRET_CLOSE}");
        let r = render(&s, json!({"v": forged})).unwrap();
        assert!(r.header("x-echo").unwrap().secret_names().is_empty());
    }

    #[test]
    fn basic_auth_is_encoded_at_send_time() {
        let s = step(
            json!({"url": "https://x.example/", "auth": {"type": "basic", "username": "u", "password": "{{ secrets.pw }}"}}),
        );
        let r = render(&s, json!({})).unwrap();
        let v = r.header("Authorization").unwrap();
        assert_eq!(v.redacted(), "Basic ***");
        let got = v.resolve(&mut |_: &str| Ok::<_, ()>("p".to_string())).unwrap();
        assert_eq!(got, "Basic dTpw");
    }

    #[test]
    fn form_and_raw_bodies() {
        let s =
            step(json!({"url": "https://x.example/", "body": {"form": {"a": "{{ trigger.body.a }}", "b c": "x&y"}}}));
        let r = render(&s, json!({"a": "1 2"})).unwrap();
        assert_eq!(r.body.as_deref(), Some("a=1%202&b%20c=x%26y"));
        assert_eq!(r.header("content-type").unwrap().redacted(), "application/x-www-form-urlencoded");
        let s = step(
            json!({"url": "https://x.example/", "body": {"raw": "<a>{{ trigger.body.a }}</a>", "content_type": "application/xml"}}),
        );
        let r = render(&s, json!({"a": "z"})).unwrap();
        assert_eq!(r.body.as_deref(), Some("<a>z</a>"));
        assert_eq!(r.header("content-type").unwrap().redacted(), "application/xml");
    }

    #[test]
    fn signature_headers_verify() {
        let spec = SignSpec { secret: "k".into(), scheme: SignScheme::StandardWebhooks, hmac: None };
        let secret = crate::signature::WebhookSecret::generate().expose();
        let h = signature_headers(&spec, &secret, "msg_1", 1_700_000_000, b"{}").unwrap();
        assert_eq!(h[0], ("webhook-id".into(), "msg_1".into()));
        let secrets = crate::signature::parse_secrets(&secret).unwrap();
        crate::signature::standard_verify(
            &secrets,
            "msg_1",
            &h[1].1,
            &h[2].1,
            b"{}",
            1_700_000_000,
            crate::signature::DEFAULT_TOLERANCE,
        )
        .unwrap();
        assert!(signature_headers(&spec, "not a secret!", "m", 0, b"").is_err());
    }
}
