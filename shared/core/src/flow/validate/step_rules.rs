//! The steps' rules: outbound requests (URL, headers, auth, body, status
//! codes, signing) and the templates and expressions they hold.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::destination::{self, Service};
use crate::flow::{AwsStep, Body, HttpStep, OutboundAuth, SignScheme, StepSign};
use crate::source::{join_index, join_key};

use super::*;

impl Checker {
    pub(super) fn check_sign(&mut self, path: &str, sign: &crate::flow::SignSpec) {
        if let Some(problem) = flow_secret_problem(&sign.secret) {
            self.problem(join_key(path, "secret"), problem);
        }
        match (sign.scheme, &sign.hmac) {
            (SignScheme::Hmac, None) => {
                self.problem(join_key(path, "hmac"), "missing: `scheme: hmac` needs `hmac: { header, ... }`")
            }
            (SignScheme::StandardWebhooks, Some(_)) => {
                self.problem(join_key(path, "hmac"), "only used with `scheme: hmac`")
            }
            (SignScheme::Hmac, Some(h)) if !h.content.contains("{body}") => {
                self.problem(join_key(path, "hmac.content"), "the signed content must include `{body}`")
            }
            _ => {}
        }
    }

    pub(super) fn check_http(&mut self, path: &str, h: &HttpStep, scope: &Scope, ping: bool) {
        let url_field = join_key(path, "url");
        self.template(&url_field, &h.url, scope, Slot::Step);
        let templated_start = h.url.starts_with("{{") || h.url.starts_with("{%");
        let http = h.url.starts_with("http://") || h.url.starts_with("https://");
        if !(templated_start || http) {
            self.problem(&url_field, format!("`{}` must start with http:// or https://", h.url));
        }
        let params = url_params(&h.url);
        for p in &params {
            if !h.params.contains_key(p) {
                self.problem(&url_field, format!("`{{{p}}}` has no matching entry in `params`"));
            }
        }
        for (k, v) in &h.params {
            let f = join_key(&join_key(path, "params"), k);
            if !params.contains(k) {
                self.problem(&f, format!("not used: the URL has no `{{{k}}}`"));
            }
            self.json_templates(&f, v, scope);
        }
        self.map_templates(&join_key(path, "query"), &h.query, scope, Slot::Credential);
        self.map_templates(&join_key(path, "headers"), &h.headers, scope, Slot::Credential);
        for (name, _) in &h.headers {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
                self.problem(
                    join_key(&join_key(path, "headers"), name),
                    format!("`{name}` is not a valid header name"),
                );
            }
        }
        if let Some(auth) = &h.auth {
            let a = join_key(path, "auth");
            match auth {
                OutboundAuth::Bearer { token } => self.template(&join_key(&a, "token"), token, scope, Slot::Credential),
                OutboundAuth::Basic { username, password } => {
                    self.template(&join_key(&a, "username"), username, scope, Slot::Credential);
                    self.template(&join_key(&a, "password"), password, scope, Slot::Credential);
                }
            }
        }
        match (&h.body, ping) {
            (Some(_), true) => self.problem(join_key(path, "body"), "a ping sends no body: use `type: http`"),
            (Some(b), false) => self.check_body(&join_key(path, "body"), b, scope),
            _ => {}
        }
        self.check_retry(path, h.retry.as_ref(), h.timeout);
        if let Some(StepSign::Spec(s)) = &h.sign {
            self.check_sign(&join_key(path, "sign"), s);
        }
        if let Some(StepSign::Off(true)) = &h.sign {
            self.problem(join_key(path, "sign"), "`sign: true` needs a secret: write `sign: { secret: NAME }`");
        }
    }

    /// A sending step's `retry` and `timeout`.
    fn check_retry(
        &mut self,
        path: &str,
        retry: Option<&crate::retry::RetrySpec>,
        timeout: Option<crate::duration::Span>,
    ) {
        if let Some(r) = retry {
            let f = join_key(path, "retry");
            if r.max_attempts == Some(0) {
                self.problem(join_key(&f, "max_attempts"), "must be at least 1 (1 means no retries)");
            }
            if matches!(r.multiplier, Some(m) if !(1.0..=100.0).contains(&m)) {
                self.problem(join_key(&f, "multiplier"), "must be between 1 and 100");
            }
            if let Some(s) = &r.schedule {
                if s.is_empty() {
                    self.problem(join_key(&f, "schedule"), "an empty schedule: use `max_attempts: 1` for no retries");
                }
                if r.initial.is_some() || r.multiplier.is_some() {
                    self.problem(
                        join_key(&f, "schedule"),
                        "give either `schedule` or `initial`/`multiplier`, not both",
                    );
                }
            }
        }
        if let Some(t) = timeout
            && (t.get().is_zero() || t.get() > crate::flow::MAX_STEP_TIMEOUT)
        {
            self.problem(join_key(path, "timeout"), "must be between 1ms and 5m");
        }
    }

    /// An AWS step (`sqs`, `sns`, `eventbridge`): its ARN names a
    /// destination of the type's service; the fields it takes are that
    /// service's; its templates are checked as an `http` step's are.
    pub(super) fn check_aws(&mut self, path: &str, service: Service, a: &AwsStep, scope: &Scope) {
        let arn_field = join_key(path, "arn");
        match destination::Arn::parse(&a.arn) {
            Err(e) => self.problem(&arn_field, e),
            Ok(arn) if arn.service != service => self.problem(
                &arn_field,
                format!(
                    "names an {} destination; this step's type sends to {}",
                    arn.service.as_str(),
                    service.as_str()
                ),
            ),
            Ok(arn) => {
                if a.group.is_some() && !arn.fifo() {
                    self.problem(
                        join_key(path, "group"),
                        "only a FIFO queue or topic (`….fifo`) takes a message group",
                    );
                }
            }
        }
        if service != Service::EventBridge {
            for (f, given) in [("detail_type", &a.detail_type), ("source", &a.source)] {
                if given.is_some() {
                    self.problem(join_key(path, f), "only an `eventbridge` step takes it");
                }
            }
            // `content-type` is one of SQS's ten.
            if a.attributes.len() >= destination::MAX_ATTRIBUTES {
                self.problem(
                    join_key(path, "attributes"),
                    format!(
                        "at most {} (the body's content-type is one of {}'s {})",
                        destination::MAX_ATTRIBUTES - 1,
                        service.as_str(),
                        destination::MAX_ATTRIBUTES
                    ),
                );
            }
            for name in a.attributes.keys().filter(|n| !destination::attribute_name_ok(n)) {
                self.problem(
                    join_key(&join_key(path, "attributes"), name),
                    "not a message attribute name: letters, digits, `_ - .`, not starting with `aws.` or `amazon.`",
                );
            }
        }
        // No secret in an attribute: a queue's messages are read, archived, logged.
        self.map_templates(&join_key(path, "attributes"), &a.attributes, scope, Slot::Step);
        for (f, t) in [("group", &a.group), ("detail_type", &a.detail_type), ("source", &a.source)] {
            if let Some(t) = t {
                self.template(&join_key(path, f), t, scope, Slot::Step);
            }
        }
        match &a.body {
            Some(b) => self.check_body(&join_key(path, "body"), b, scope),
            None => self.problem(join_key(path, "body"), "missing: the message (`json`, `form` or `raw`)"),
        }
        self.check_retry(path, a.retry.as_ref(), a.timeout);
    }

    pub(super) fn check_body(&mut self, path: &str, b: &Body, scope: &Scope) {
        let given = [b.json.is_some(), b.form.is_some(), b.raw.is_some()].iter().filter(|x| **x).count();
        if given != 1 {
            self.problem(path, "give exactly one of `json`, `form`, `raw`");
        }
        if b.content_type.is_some() && b.raw.is_none() {
            self.problem(join_key(path, "content_type"), "only used with `raw`");
        }
        if let Some(j) = &b.json {
            self.json_templates(&join_key(path, "json"), j, scope);
        }
        if let Some(f) = &b.form {
            self.map_templates(&join_key(path, "form"), f, scope, Slot::Step);
        }
        if let Some(r) = &b.raw {
            self.template(&join_key(path, "raw"), r, scope, Slot::Step);
        }
    }

    pub(super) fn map_templates(
        &mut self,
        path: &str,
        map: &serde_json::Map<String, Value>,
        scope: &Scope,
        slot: Slot,
    ) {
        for (k, v) in map {
            let f = join_key(path, k);
            match v {
                Value::String(s) => self.template(&f, s, scope, slot),
                Value::Number(_) | Value::Bool(_) => {}
                _ => self.problem(&f, "must be a string, number or boolean"),
            }
        }
    }

    /// An answer to a trigger sets no cookie: `hookflow dev`'s console is
    /// on the same host, and a cookie is the host's whatever its port (a
    /// flow could plant or shadow the console's session).
    pub(super) fn no_cookie(&mut self, path: &str, headers: &serde_json::Map<String, Value>) {
        for name in headers.keys().filter(|n| n.eq_ignore_ascii_case("set-cookie")) {
            self.problem(
                join_key(path, name),
                "an answer to a trigger cannot set a cookie (webhook callers ignore them)",
            );
        }
    }

    pub(super) fn json_templates(&mut self, path: &str, v: &Value, scope: &Scope) {
        let before = self.problems.len();
        self.json_leaves(path, v, scope);
        if self.problems.len() == before
            && let Err(e) = self.templates.add_json(path, v)
        {
            self.problem(path, format!("template: {e}"));
        }
    }

    pub(super) fn json_leaves(&mut self, path: &str, v: &Value, scope: &Scope) {
        match v {
            Value::String(s) => self.template(path, s, scope, Slot::Step),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.json_leaves(&join_index(path, i), item, scope);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    self.json_leaves(&join_key(path, k), item, scope);
                }
            }
            _ => {}
        }
    }

    pub(super) fn template(&mut self, field: &str, source: &str, scope: &Scope, slot: Slot) {
        match self.templates.add(source) {
            Ok(vars) => self.variables(field, &vars, scope, slot),
            Err(e) => self.problem(field, format!("template: {e}")),
        }
    }

    pub(super) fn expression(&mut self, field: &str, expr: &str, scope: &Scope, slot: Slot) {
        match self.templates.add_expression(expr) {
            Ok(vars) => self.variables(field, &vars, scope, slot),
            Err(e) => self.problem(field, format!("expression: {e}")),
        }
    }

    pub(super) fn variables(&mut self, field: &str, vars: &BTreeSet<String>, scope: &Scope, slot: Slot) {
        for var in vars {
            if let Err(msg) = scope.check(var, slot) {
                self.problem(field, msg);
            }
        }
    }
}
