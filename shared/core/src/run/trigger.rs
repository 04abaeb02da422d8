//! The request that started a run, as templates see it (`trigger.*`),
//! and the body and form parsing it shares with stored runs.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::flow::Flow;
use crate::headers::Headers;

/// The request that started a run, as templates see it (`trigger.*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InboundRequest {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub headers: Headers,
    #[serde(default)]
    pub query: Map<String, Value>,
    /// The body as received (text; binary bodies are base64 by the adapter).
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub source_ip: String,
    /// RFC 3339.
    #[serde(default)]
    pub received_at: String,
}

impl InboundRequest {
    /// The parsed body: JSON, a form as an object, or the text.
    pub fn parsed_body(&self) -> Value {
        parse_body(self.headers.get("content-type").unwrap_or(""), &self.body)
    }

    /// The request back from a run's `trigger` ([`InboundRequest::to_trigger`]):
    /// what a replay of the run starts from (its credentials were stripped
    /// before it was stored, so they are not in it); `None` if it is not
    /// a trigger's.
    pub fn from_trigger(trigger: &Value) -> Option<InboundRequest> {
        let text = |k: &str| trigger.get(k).and_then(Value::as_str).map(str::to_string);
        Some(InboundRequest {
            method: text("method")?,
            path: text("path").unwrap_or_default(),
            headers: trigger
                .get("headers")
                .and_then(Value::as_object)
                .map(|h| h.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default(),
            query: trigger.get("query").and_then(Value::as_object).cloned().unwrap_or_default(),
            body: text("raw_body").unwrap_or_default(),
            source_ip: text("source_ip").unwrap_or_default(),
            received_at: text("received_at").unwrap_or_default(),
        })
    }

    /// `trigger.*` for templates.
    pub fn to_trigger(&self, flow: &Flow) -> Value {
        json!({
            "method": self.method,
            "path": self.path,
            "headers": self.headers.to_json(),
            "query": self.query,
            "body": self.parsed_body(),
            "raw_body": self.body,
            "received_at": self.received_at,
            "source_ip": self.source_ip,
            "tenant": flow.tenant,
            "flow_id": flow.id,
        })
    }
}

/// A body as `trigger.body` holds it: a form as an object, JSON, or the text.
fn parse_body(content_type: &str, body: &str) -> Value {
    if content_type.to_ascii_lowercase().contains("application/x-www-form-urlencoded") {
        return Value::Object(parse_form(body));
    }
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()))
}

/// Restores `trigger.body` of a stored trigger from its `raw_body` and
/// content type ([`stored_state`]); a trigger that has it is left alone.
pub fn expand_trigger(trigger: &mut Value) {
    let Some(t) = trigger.as_object_mut() else { return };
    if t.contains_key("body") {
        return;
    }
    let Some(raw) = t.get("raw_body").and_then(Value::as_str) else { return };
    let ct = t.get("headers").and_then(|h| h.get("content-type")).and_then(Value::as_str).unwrap_or("");
    let body = parse_body(ct, raw);
    t.insert("body".into(), body);
}

pub(super) fn de_trigger<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    let mut trigger = Value::deserialize(d)?;
    expand_trigger(&mut trigger);
    Ok(trigger)
}

/// Parses `application/x-www-form-urlencoded` text (a form body or a query
/// string) into an object; a repeated name keeps its last value.
pub fn parse_form(text: &str) -> Map<String, Value> {
    let dec = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    let mut map = Map::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        map.insert(dec(k), Value::String(dec(v)));
    }
    map
}
