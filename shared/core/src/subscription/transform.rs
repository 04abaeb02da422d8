//! A subscription's transformation: each event reshaped for its endpoint
//! before it is signed and sent — another body, method or headers, or
//! dropped as "not for this endpoint" — in the flow template language (the
//! same engine, fuel and limits as a flow's steps).
//!
//! Templates see the event as `type`, `id`, `tenant`, `timestamp` and
//! `data`. A delivery is shaped once, at its first attempt, by the
//! transform as it is then; its retries and replays send the same request
//! (the same `webhook-id`, the same body). A transform that fails makes
//! that delivery dead, naming the error; the subscription's other
//! deliveries go on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::flow::{Body, Method};
use crate::request::{OutboundRequest, SecretText, render_body};
use crate::template::{Context, Templates, condition_expression};

use super::record::FieldError;

/// How a subscription reshapes each event it is sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    /// The body to send instead of the event, as a flow step writes one:
    /// `{"json": …}`, `{"form": …}` or `{"raw": …, "content_type": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    /// The method (default `POST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Headers to add; values are templates. Not the Standard Webhooks,
    /// body or hop-by-hop headers, and no credential (the subscription's
    /// `headers` name secrets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// An expression: when true the event is not sent to this endpoint
    /// (dropped, and logged as such).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<String>,
}

/// What a transform makes of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Shaped {
    /// Not for this endpoint.
    Drop,
    /// The request to sign and send.
    Send(OutboundRequest),
}

impl Transform {
    /// The transform, compiled, or every problem with it, each under
    /// `transform.…`.
    pub fn compile(&self) -> Result<Templates, Vec<FieldError>> {
        let mut t = Templates::new();
        let mut errs = Vec::new();
        if let Some(b) = &self.body {
            let given = [b.json.is_some(), b.form.is_some(), b.raw.is_some()].iter().filter(|x| **x).count();
            if given != 1 {
                errs.push(FieldError::new("transform.body", "give one of `json`, `form` or `raw`"));
            }
            if let Some(j) = &b.json {
                // Each leaf on its own first: an unknown filter is named
                // now, not at the first delivery.
                let mut leaves = Vec::new();
                string_leaves(j, &mut leaves);
                let checked = leaves.into_iter().try_for_each(|leaf| t.add(leaf).map(|_| ()));
                if let Err(e) = checked.and_then(|()| t.add_json("transform.body.json", j)) {
                    errs.push(FieldError::new("transform.body.json", e.to_string()));
                }
            }
            for (k, v) in b.form.iter().flatten() {
                if let Some(s) = v.as_str()
                    && let Err(e) = t.add(s)
                {
                    errs.push(FieldError::new(format!("transform.body.form.{k}"), e.to_string()));
                }
            }
            if let Some(raw) = &b.raw
                && let Err(e) = t.add(raw)
            {
                errs.push(FieldError::new("transform.body.raw", e.to_string()));
            }
        }
        let named: serde_json::Map<String, Value> =
            self.headers.keys().map(|k| (k.clone(), Value::String("-".into()))).collect();
        if let Err(e) = super::custom_headers::parse(&named) {
            errs.extend(e.into_iter().map(|mut e| {
                e.field = format!("transform.{}", e.field);
                e.message = e.message.replace("name a secret instead", "name a secret in the subscription's `headers`");
                e
            }));
        }
        for (k, v) in &self.headers {
            if let Err(e) = t.add(v) {
                errs.push(FieldError::new(format!("transform.headers.{k}"), e.to_string()));
            }
        }
        if let Some(d) = &self.drop
            && let Err(e) = t.add_expression(condition_expression(d))
        {
            errs.push(FieldError::new("transform.drop", e.to_string()));
        }
        if errs.is_empty() { Ok(t) } else { Err(errs) }
    }

    /// `request` (an event's delivery as queued: its body is the event's
    /// envelope) reshaped for `event` (`{"id", "type", "tenant",
    /// "timestamp", "data"}`), or why it could not be.
    pub fn apply(&self, request: &OutboundRequest, event: &Value) -> Result<Shaped, String> {
        let t = self.compile().map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))?;
        let ctx = Context::new(event.as_object().cloned().unwrap_or_default());
        if let Some(d) = &self.drop
            && t.truthy(condition_expression(d), &ctx).map_err(|e| format!("transform.drop: {e}"))?
        {
            return Ok(Shaped::Drop);
        }
        let mut out = request.clone();
        if let Some(m) = self.method {
            out.method = m;
        }
        if let Some(b) = &self.body {
            let (body, content_type) = render_body(&t, b, &ctx, "transform.body").map_err(|e| e.to_string())?;
            out.body = body;
            out.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
            if let Some(ct) = content_type {
                out.headers.insert(0, ("content-type".into(), SecretText::plain(ct)));
            }
        }
        for (k, v) in &self.headers {
            let value = t.render_text(v, &ctx).map_err(|e| format!("transform.headers.{k}: {e}"))?;
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(format!("transform.headers.{k}: the value has a line break or another control character"));
            }
            out.headers.retain(|(name, _)| !name.eq_ignore_ascii_case(k));
            out.headers.push((k.clone(), SecretText::plain(value)));
        }
        Ok(Shaped::Send(out))
    }
}

fn string_leaves<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| string_leaves(i, out)),
        Value::Object(o) => o.values().for_each(|i| string_leaves(i, out)),
        _ => {}
    }
}

impl Transform {
    /// An event delivery as queued, reshaped: the event is read back from
    /// its body (the envelope), its id and its tenant.
    pub fn shape(&self, d: &crate::run::Delivery) -> Result<Shaped, String> {
        let body = d.request.body.as_deref().ok_or("the delivery has no body")?;
        self.apply(&d.request, &event_of(body, &d.event_id, &d.tenant)?)
    }
}

/// The event a delivery's body carries (its envelope: `type`, `timestamp`,
/// `data`), with its id and tenant, as a transform sees it.
pub fn event_of(body: &str, id: &str, tenant: &str) -> Result<Value, String> {
    let mut v: Value =
        serde_json::from_str(body).map_err(|e| format!("the delivery's body is not an event envelope: {e}"))?;
    let o = v.as_object_mut().ok_or("the delivery's body is not an event envelope")?;
    o.insert("id".into(), Value::String(id.into()));
    o.insert("tenant".into(), Value::String(tenant.into()));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn queued() -> OutboundRequest {
        OutboundRequest {
            method: Method::Post,
            url: SecretText::plain("https://r.example/h"),
            headers: vec![
                ("content-type".into(), SecretText::plain("application/json")),
                ("X-Team".into(), SecretText::plain("crm")),
            ],
            body: Some(r#"{"type":"order.paid","timestamp":"t","data":{"id":7,"amount":120,"test":false}}"#.into()),
        }
    }

    fn event() -> Value {
        event_of(queued().body.as_deref().unwrap(), "evt_1", "acme").unwrap()
    }

    fn transform(v: Value) -> Transform {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_transform_reshapes_body_method_and_headers_from_the_event() {
        let t = transform(json!({
            "body": {"json": {"text": "Order {{ data.id }} paid: {{ data.amount }}", "amount": "{{ data.amount }}",
                              "event": "{{ id }}"}},
            "method": "PUT",
            "headers": {"X-Kind": "{{ type }}", "X-Team": "ops"}
        }));
        let Shaped::Send(r) = t.apply(&queued(), &event()).unwrap() else { panic!("sent") };
        assert_eq!(r.method, Method::Put);
        let body: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        assert_eq!(body, json!({"text": "Order 7 paid: 120", "amount": 120, "event": "evt_1"}));
        assert_eq!(r.header("x-kind").unwrap().redacted(), "order.paid");
        assert_eq!(r.header("x-team").unwrap().redacted(), "ops", "a transform's header replaces one of the same name");
        assert_eq!(r.header("content-type").unwrap().redacted(), "application/json");
        let form = transform(json!({"body": {"form": {"id": "{{ data.id }}"}}}));
        let Shaped::Send(r) = form.apply(&queued(), &event()).unwrap() else { panic!("sent") };
        assert_eq!(
            (r.body.as_deref(), r.header("content-type").unwrap().redacted()),
            (Some("id=7"), "application/x-www-form-urlencoded".to_string())
        );
    }

    #[test]
    fn a_transform_drops_what_is_not_for_its_endpoint_and_names_what_fails() {
        let t = transform(json!({"drop": "{{ data.amount < 100 }}"}));
        assert!(matches!(t.apply(&queued(), &event()).unwrap(), Shaped::Send(_)));
        let t = transform(json!({"drop": "data.amount > 100"}));
        assert_eq!(t.apply(&queued(), &event()).unwrap(), Shaped::Drop);
        let failing = transform(json!({"body": {"json": {"x": "{{ data.items[0].sku }}"}}}));
        let why = failing.apply(&queued(), &event()).unwrap_err();
        assert!(why.contains("transform.body"), "{why}");
        let endless = transform(
            json!({"body": {"raw": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"}}),
        );
        assert!(endless.apply(&queued(), &event()).unwrap_err().contains("fuel"), "bounded by the engine's fuel");
    }

    #[test]
    fn a_bad_transform_is_refused_with_every_field_named() {
        let errs = transform(json!({
            "body": {"json": {"x": "{{ data.id | nosuchfilter }}"}, "raw": "x"},
            "headers": {"Webhook-Signature": "x", "Authorization": "Bearer {{ data.t }}", "X-Ok": "{{ unclosed"},
            "drop": "{{ data. }}"
        }))
        .compile()
        .unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "transform.body",
            "transform.body.json",
            "transform.headers.Webhook-Signature",
            "transform.headers.Authorization",
            "transform.headers.X-Ok",
            "transform.drop",
        ] {
            assert!(fields.contains(&f), "{f}: {errs:#?}");
        }
        assert!(serde_json::from_value::<Transform>(json!({"bodyy": {}})).is_err(), "unknown fields refused");
    }
}
