//! The trigger's rules: kind, path, methods, respond, expected shape,
//! inbound authentication.

use std::collections::HashSet;

use crate::flow::{Action, AuthKind, Flow, RespondMode, TriggerKind};
use crate::signature::System;
use crate::source::join_index;

use super::*;

impl Checker {
    pub(super) fn check_trigger(&mut self, flow: &Flow) {
        let t = &flow.trigger;
        if t.kind == TriggerKind::Event {
            if t.events.is_empty() {
                self.problem(
                    "trigger.events",
                    "an event trigger lists the event types that start it, e.g. [payment.received]",
                );
            }
            for (i, e) in t.events.iter().enumerate() {
                if let Err(why) = crate::events::Pattern::parse(e) {
                    self.problem(join_index("trigger.events", i), why);
                }
            }
            if !t.path.is_empty() {
                self.problem("trigger.path", "an event trigger has no URL; remove `path`");
            }
            if t.auth.is_some() || t.system.is_some() || !t.ip_allowlist.is_empty() || t.expect.is_some() {
                self.problem("trigger", "`auth`, `system`, `ip_allowlist` and `expect` are for webhook triggers");
            }
            return;
        }
        if !t.events.is_empty() {
            self.problem("trigger.events", "`events` is for `type: event` triggers");
        }
        let p = t.path.trim_start_matches('/');
        if p.is_empty() {
            self.problem("trigger.path", "the URL suffix is empty");
        } else if let Some(bad) = p.chars().find(|c| !(c.is_ascii_alphanumeric() || "._~/-".contains(*c))) {
            let what = if bad == ' ' { "a space".to_string() } else { format!("`{bad}`") };
            self.problem(
                "trigger.path",
                format!("`{}` contains {what}: a URL suffix may use only letters, digits and `. _ ~ / -` (use `-` or `_` instead of spaces)", t.path),
            );
        } else if p.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            self.problem("trigger.path", format!("`{}` has an empty, `.` or `..` segment", t.path));
        }
        if t.methods.is_empty() {
            self.problem("trigger.methods", "at least one method is needed");
        }
        let mut seen = HashSet::new();
        for (i, m) in t.methods.iter().enumerate() {
            if !seen.insert(m) {
                self.problem(join_index("trigger.methods", i), format!("{} is listed twice", m.as_str()));
            }
        }
        self.check_auth(flow);
        if let Some(idem) = &t.idempotency {
            match (&idem.header, &idem.body) {
                (None, None) => self.problem("trigger.idempotency", "give `header` or `body` as the key's source"),
                (Some(_), Some(_)) => self.problem("trigger.idempotency", "give either `header` or `body`, not both"),
                _ => {}
            }
        }
        let r = &t.respond;
        if !matches!(r.status, 200 | 201 | 202 | 204) {
            self.problem("trigger.respond.status", format!("{} is not one of 200, 201, 202, 204", r.status));
        }
        if let Some(to) = r.timeout {
            if r.mode != RespondMode::Sync {
                self.problem("trigger.respond.timeout", "only a sync trigger waits");
            } else if to.get().as_secs_f64() > MAX_SYNC_TIMEOUT_SECS as f64 || to.get().is_zero() {
                self.problem(
                    "trigger.respond.timeout",
                    format!("must be between 1ms and {MAX_SYNC_TIMEOUT_SECS}s (API Gateway gives up at 30s)"),
                );
            }
        }
        if r.mode == RespondMode::Sync && !flow.steps.iter().any(|s| matches!(s.action, Action::Respond(_))) {
            self.problem("trigger.respond.mode", "a sync trigger needs a `respond` step");
        }
        let scope = Scope::trigger_only();
        self.map_templates("trigger.respond.headers", &r.headers, &scope, Slot::TriggerAnswer);
        self.no_cookie("trigger.respond.headers", &r.headers);
        if let Some(b) = &r.body {
            self.check_body("trigger.respond.body", b, &scope);
        }
        if let Some(e) = &t.expect
            && let Some(schema) = e.body.as_ref().and_then(|b| b.schema.as_ref())
            && !schema.is_object()
            && !schema.is_boolean()
        {
            self.problem("trigger.expect.body.schema", "a JSON Schema is an object or a boolean");
        }
        if t.max_body == Some(0) {
            self.problem("trigger.max_body", "must be at least 1 byte");
        }
    }

    /// The enforced body schema, compiled; an invalid schema is a problem.
    pub(super) fn compile_shape(&mut self, flow: &Flow) -> Option<std::sync::Arc<jsonschema::Validator>> {
        let expect = flow.trigger.expect.as_ref().filter(|e| e.enforce)?;
        let schema = expect.body.as_ref()?.schema.as_ref()?;
        if !schema.is_object() && !schema.is_boolean() {
            return None; // reported by check_trigger
        }
        match jsonschema::validator_for(schema) {
            Ok(v) => Some(std::sync::Arc::new(v)),
            Err(e) => {
                self.problem("trigger.expect.body.schema", format!("not a valid JSON Schema: {e}"));
                None
            }
        }
    }

    pub(super) fn check_auth(&mut self, flow: &Flow) {
        let t = &flow.trigger;
        let Some(auth) = &t.auth else {
            if matches!(t.system, Some(s) if s != System::Generic) {
                self.problem(
                    "trigger.auth",
                    "a `system` preset needs `auth: { secret: NAME }` to verify its signature",
                );
            }
            return;
        };
        let kind = match (auth.kind, t.system) {
            (Some(k), _) => Some(k),
            (None, Some(System::StandardWebhooks)) => Some(AuthKind::StandardWebhooks),
            (None, Some(System::Generic) | None) => {
                self.problem(
                    "trigger.auth.type",
                    "missing: one of none, api_key, basic, bearer, hmac, standard_webhooks",
                );
                return;
            }
            // Presets verify with their own scheme.
            (None, Some(_)) => None,
        };
        let needs_secret = kind != Some(AuthKind::None);
        match &auth.secret {
            Some(s) if flow_secret_problem(s).is_some() => {
                self.problem("trigger.auth.secret", flow_secret_problem(s).unwrap_or_default())
            }
            None if needs_secret => {
                self.problem("trigger.auth.secret", "missing: the name of the secret to verify against")
            }
            _ => {}
        }
        match kind {
            Some(AuthKind::ApiKey) if auth.header.is_none() && auth.query.is_none() => {
                self.problem("trigger.auth", "an api_key needs `header` or `query`")
            }
            Some(AuthKind::Basic) if auth.username.is_none() => {
                self.problem("trigger.auth.username", "missing for basic auth")
            }
            Some(AuthKind::Hmac) if auth.header.is_none() => {
                self.problem("trigger.auth.header", "missing: the header carrying the signature")
            }
            _ => {}
        }
        if let Some(c) = &auth.content
            && !c.contains("{body}")
        {
            self.problem("trigger.auth.content", "the signed content must include `{body}`");
        }
        let signed = matches!(kind, Some(AuthKind::Hmac | AuthKind::StandardWebhooks)) || kind.is_none();
        if auth.reject_replays && !signed {
            self.problem(
                "trigger.auth.reject_replays",
                "needs a signature to tell one request from another: `type: hmac`, `standard_webhooks` or a signed \
                 `system` preset (an API key, password or token is the same on every request)",
            );
        }
    }
}
