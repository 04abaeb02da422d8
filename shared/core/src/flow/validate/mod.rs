//! Loading a flow file: parse, type-check, then check every rule the types
//! cannot express, reporting *all* problems with file, line, column and field.
//!
//! A flow that passes is a [`CompiledFlow`]: the flow plus its compiled
//! templates, ready for the run engine. Nothing else constructs one, so code
//! that holds a `CompiledFlow` never meets an invalid flow.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Diagnostic, Error};
use crate::flow::{Action, AuthKind, Flow, HttpStep, OnFailure, OutboundAuth, RespondMode, StatusValue};
use crate::signature::System;
use crate::source::{self, SourceMap, join_index, join_key};
use crate::template::{Templates, condition_expression, single_expression};

mod keys;
mod scope;
mod step_rules;
mod trigger_rules;

use scope::Scope;

/// Fields of `trigger` that templates may read.
pub const TRIGGER_FIELDS: &[&str] =
    &["method", "path", "headers", "query", "body", "raw_body", "received_at", "source_ip", "tenant", "flow_id"];

/// Fields of `steps.<id>` that templates may read.
pub const STEP_FIELDS: &[&str] = &["status", "response", "error"];

/// Longest accepted sync `respond.timeout`, below API Gateway's 30 s.
pub const MAX_SYNC_TIMEOUT_SECS: u64 = 25;

/// A validated flow with its compiled templates.
#[derive(Debug)]
pub struct CompiledFlow {
    pub flow: Flow,
    pub templates: Templates,
    /// Where the flow came from, for messages.
    pub file: PathBuf,
    /// `trigger.expect.body.schema`, compiled, when the flow enforces it
    /// (compiled once here so every ingress shares one validator).
    pub shape: Option<std::sync::Arc<jsonschema::Validator>>,
    /// What is allowed but probably unsafe (`hookflow validate`, `dev` and
    /// `apply` print these): a secret sent to a host that data chooses.
    pub warnings: Vec<Diagnostic>,
    /// The text it was loaded from.
    pub text: std::sync::Arc<str>,
    /// Which version of the flow this is, as a run records it to go on
    /// with the same one ([`crate::run::Run::flow_version`]): the text's
    /// digest ([`text_version`]) unless the store numbers versions (the
    /// DynamoDB table's `v3`).
    pub version: String,
}

/// A flow text's version: `sha256:` and the first 16 hex digits of its
/// SHA-256, so the same text is the same version wherever it is loaded.
pub fn text_version(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Where a template may appear, which decides what it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Header value, query value or auth field of a step: may use secrets.
    Credential,
    /// Any other step field.
    Step,
    /// The trigger's immediate answer: runs before any step.
    TriggerAnswer,
}

/// Parses and validates one flow file's text.
pub fn load_flow(file: &Path, text: &str) -> Result<CompiledFlow, Error> {
    let diag = |map: Option<&SourceMap>, field: String, message: String, pos: Option<source::Position>| Diagnostic {
        file: file.to_path_buf(),
        position: pos.or_else(|| map.map(|m| m.locate(&field))).unwrap_or_default(),
        field,
        message,
    };
    let (value, map) = source::parse(text)
        .map_err(|e| Error::Invalid(vec![diag(None, String::new(), e.message, Some(e.position))]))?;
    let kind = match &value {
        Value::Null => Some("empty"),
        Value::Object(_) => None,
        Value::Array(_) => Some("a list"),
        _ => Some("a single value"),
    };
    if let Some(kind) = kind {
        let message = format!(
            "the file is {kind}: a flow is a mapping with `id`, `tenant`, `trigger` and `steps` \
             (examples/hello.yaml is the smallest)"
        );
        return Err(Error::Invalid(vec![diag(
            None,
            String::new(),
            message,
            Some(source::Position { line: 1, col: 1 }),
        )]));
    }
    let unknown = keys::unknown(&value);
    if !unknown.is_empty() {
        return Err(Error::Invalid(
            unknown.into_iter().map(|(field, message)| diag(Some(&map), field, message, None)).collect(),
        ));
    }
    let flow: Flow = match serde_path_to_error::deserialize(&value) {
        Ok(f) => f,
        Err(e) => {
            let mut field = e.path().to_string();
            if field == "." {
                field.clear();
            }
            let mut message = e.inner().to_string();
            // `Step` flattens its action, which hides the path inside it:
            // deserialise the action's own struct again to recover it.
            if let Some((inner_path, inner_message)) = step_error_detail(&value, &field) {
                field = join_key(&field, &inner_path);
                message = inner_message;
            }
            // (Unknown keys were all reported above, by `keys`.)
            return Err(Error::Invalid(vec![diag(Some(&map), field, message, None)]));
        }
    };
    let mut checker = Checker { templates: Templates::new(), problems: Vec::new() };
    checker.check(&flow);
    let shape = checker.compile_shape(&flow);
    if checker.problems.is_empty() {
        let warnings = secret_warnings(&flow)
            .into_iter()
            .chain(replay_warnings(&flow))
            .map(|(field, message)| diag(Some(&map), field, message, None))
            .collect();
        return Ok(CompiledFlow {
            flow,
            templates: checker.templates,
            file: file.to_path_buf(),
            shape,
            warnings,
            text: text.into(),
            version: text_version(text),
        });
    }
    Err(Error::Invalid(
        checker.problems.into_iter().map(|(field, message)| diag(Some(&map), field, message, None)).collect(),
    ))
}

/// For an error reported at `steps[N]`, the path and message inside the
/// step's action.
fn step_error_detail(value: &Value, field: &str) -> Option<(String, String)> {
    let index: usize = field.strip_prefix("steps[")?.strip_suffix(']')?.parse().ok()?;
    let mut obj = value.get("steps")?.get(index)?.as_object()?.clone();
    for common in ["id", "if", "on_failure"] {
        obj.remove(common);
    }
    let kind = obj.remove("type")?;
    fn detail<T: serde::de::DeserializeOwned>(v: Value) -> Option<(String, String)> {
        let e = serde_path_to_error::deserialize::<_, T>(v).err()?;
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        Some((path, e.inner().to_string()))
    }
    let v = Value::Object(obj);
    match kind.as_str()? {
        "http" | "ping" => detail::<HttpStep>(v),
        "respond" => detail::<crate::flow::RespondStep>(v),
        "set" => detail::<crate::flow::SetStep>(v),
        _ => None,
    }
}

struct Checker {
    templates: Templates,
    problems: Vec<(String, String)>,
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// A tenant or flow id: lower-case letters, digits, `-` and `_`, starting
/// with a letter or digit, at most 64.
pub fn is_slug(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_lowercase() || ch.is_ascii_digit())
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_')
        && s.len() <= 64
}

/// Secret names: letters, digits and `_ - . / #` (`#` selects a JSON key).
pub fn is_secret_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-./#".contains(c))
}

/// What is wrong with a secret name a flow gives, if anything: its form, or
/// the subscriptions' keyring namespace it may not reach.
fn flow_secret_problem(s: &str) -> Option<String> {
    if !is_secret_name(s) {
        return Some(format!("`{s}` is not a valid secret name (letters, digits, `_ - . / #`)"));
    }
    crate::keyring::is_keyring_name(s).then(|| {
        format!(
            "`{s}`: names under `{}` are subscriptions' signing keys, which a flow may not use",
            crate::keyring::KEYRINGS
        )
    })
}

/// Replay protection that does less than it seems (warnings, not errors:
/// a flow stored before these checks must still load): a tolerance past
/// [`crate::signature::MAX_TOLERANCE`] (a replay window that long), and
/// `reject_replays` with an idempotency key from a header the signature
/// does not cover (a replay with another value of it is a new key).
fn replay_warnings(flow: &Flow) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(auth) = &flow.trigger.auth else { return out };
    if let Some(t) = auth.tolerance
        && t.get() > crate::signature::MAX_TOLERANCE
    {
        out.push((
            "trigger.auth.tolerance".into(),
            "longer than 1h: a captured request can be sent again for that long (senders use 5m, the default)".into(),
        ));
    }
    let standard = auth.kind == Some(AuthKind::StandardWebhooks)
        || (auth.kind.is_none() && flow.trigger.system == Some(System::StandardWebhooks));
    if auth.reject_replays
        && let Some(h) = flow.trigger.idempotency.as_ref().and_then(|i| i.header.as_deref())
        && !(standard && h.eq_ignore_ascii_case("webhook-id"))
    {
        out.push((
            "trigger.idempotency.header".into(),
            format!(
                "`{h}` is not signed, so a replay with another value would pass `reject_replays`: take the key from \
                 the signed body (`idempotency: {{ body: ... }}`), or drop `idempotency` (the replay record answers a \
                 sender's retry of the same signed request as the first)"
            ),
        ));
    }
    out
}

/// What a set of flows cannot all be at once: two with the same trigger
/// (tenant and path) or the same id in a tenant. One rule for `hookflow
/// dev`'s directory, `hookflow validate` and `hookflow apply`.
pub fn clashes<'a>(flows: impl IntoIterator<Item = &'a CompiledFlow>) -> Vec<String> {
    use crate::flow::TriggerKind;
    let mut routes: HashMap<(String, String), &Path> = HashMap::new();
    let mut ids: HashMap<(String, String), &Path> = HashMap::new();
    let mut out = Vec::new();
    for flow in flows {
        let f = &flow.flow;
        let route = (f.tenant.clone(), f.trigger.path.trim_matches('/').to_string());
        if f.trigger.kind != TriggerKind::Event
            && let Some(other) = routes.insert(route.clone(), &flow.file)
        {
            out.push(format!(
                "{} and {} both use the trigger /hooks/{}/{}: give one another `trigger.path`",
                other.display(),
                flow.file.display(),
                route.0,
                route.1
            ));
        }
        if let Some(other) = ids.insert((f.tenant.clone(), f.id.clone()), &flow.file) {
            out.push(format!(
                "{} and {} both define flow `{}` of tenant `{}`: give one another `id`",
                other.display(),
                flow.file.display(),
                f.id,
                f.tenant
            ));
        }
    }
    out
}

/// The names after `secrets.` in `text`.
fn secret_refs(text: &str, names: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(at) = rest.find("secrets.") {
        rest = &rest[at + "secrets.".len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || "_-".contains(*c)).collect();
        if !name.is_empty() {
            names.insert(name);
        }
    }
}

impl CompiledFlow {
    /// Every secret the flow reads: the trigger's verification secret, the
    /// signing secrets, and each `secrets.NAME` of a step (without `#key`).
    pub fn secret_names(&self) -> BTreeSet<String> {
        let flow = &self.flow;
        let mut names = BTreeSet::new();
        let base = |n: &str| n.split('#').next().unwrap_or(n).to_string();
        if let Some(secret) = flow.trigger.auth.as_ref().and_then(|a| a.secret.as_deref()) {
            names.insert(base(secret));
        }
        if let Some(sign) = &flow.sign {
            names.insert(base(&sign.secret));
        }
        for step in &flow.steps {
            let Some(h) = step.action.http() else { continue };
            if let Some(crate::flow::StepSign::Spec(sign)) = &h.sign {
                names.insert(base(&sign.secret));
            }
            let mut texts: Vec<&str> = h.headers.values().chain(h.query.values()).filter_map(Value::as_str).collect();
            match &h.auth {
                Some(OutboundAuth::Bearer { token }) => texts.push(token),
                Some(OutboundAuth::Basic { username, password }) => {
                    texts.extend([username.as_str(), password.as_str()])
                }
                None => {}
            }
            for t in texts {
                secret_refs(t, &mut names);
            }
        }
        names
    }
}

/// Steps whose URL's host comes from data (a template in it) and that send
/// a secret without a `secrets.NAME.hosts` rule: whoever controls that data
/// (an unauthenticated caller, a partner's response) can have the secret
/// sent to a host of their choosing.
fn secret_warnings(flow: &Flow) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, step) in flow.steps.iter().enumerate() {
        let (Action::Http(h) | Action::Ping(h)) = &step.action else { continue };
        let authority = h.url.split_once("://").map_or(h.url.as_str(), |(_, rest)| rest);
        let authority = authority.split(['/', '?', '#']).next().unwrap_or("");
        // A template, or an endpoint parameter (`https://{shop}/…`: its
        // value is encoded as a segment, and `evil.example` stays a host).
        if !authority.contains("{{") && url_params(authority).is_empty() {
            continue;
        }
        let mut texts: Vec<&str> = h.headers.values().chain(h.query.values()).filter_map(Value::as_str).collect();
        match &h.auth {
            Some(OutboundAuth::Bearer { token }) => texts.push(token),
            Some(OutboundAuth::Basic { username, password }) => texts.extend([username.as_str(), password.as_str()]),
            None => {}
        }
        let mut names = BTreeSet::new();
        for t in texts {
            secret_refs(t, &mut names);
        }
        for name in names.into_iter().filter(|n| !flow.secrets.contains_key(n)) {
            out.push((
                join_key(&join_index("steps", i), "url"),
                format!(
                    "the URL's host comes from a template and the step sends the secret `{name}`, which has no \
                     `secrets: {{ {name}: {{ hosts: [...] }} }}` rule: whoever controls that data can have it sent \
                     to any host"
                ),
            ));
        }
    }
    out
}

/// What is wrong with a host pattern of `secrets.NAME.hosts`, if anything.
fn host_pattern_problem(p: &str) -> Option<String> {
    let name = p.strip_prefix("*.").unwrap_or(p);
    let ok = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    (!ok).then(|| format!("`{p}` is not a host name or `*.domain`"))
}

/// `{name}` endpoint parameters in a URL, outside `{{ }}` templates.
pub fn url_params(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = url;
    while let Some(i) = rest.find('{') {
        let after = &rest[i..];
        if after.starts_with("{{") || after.starts_with("{%") {
            let close = if after.starts_with("{{") { "}}" } else { "%}" };
            match after.find(close) {
                Some(j) => rest = &after[j + 2..],
                None => break,
            }
            continue;
        }
        match after.find('}') {
            Some(j) => {
                out.push(after[1..j].to_string());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}

impl Checker {
    fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push((field.into(), message.into()));
    }

    fn check(&mut self, flow: &Flow) {
        if !is_slug(&flow.id) {
            self.problem(
                "id",
                format!("`{}` is not a valid id: use lower-case letters, digits, `-` and `_` (at most 64)", flow.id),
            );
        }
        if !is_slug(&flow.tenant) {
            self.problem(
                "tenant",
                format!(
                    "`{}` is not a valid tenant: use lower-case letters, digits, `-` and `_` (at most 64)",
                    flow.tenant
                ),
            );
        }
        self.check_trigger(flow);
        for (name, rule) in &flow.secrets {
            let path = join_key("secrets", name);
            if name.contains('#') {
                self.problem(&path, "name the secret without `#key`: a rule covers every key of it");
            } else if let Some(why) = flow_secret_problem(name) {
                self.problem(&path, why);
            }
            if rule.hosts.is_empty() {
                self.problem(join_key(&path, "hosts"), "list at least one host");
            }
            for (i, h) in rule.hosts.iter().enumerate() {
                if let Some(why) = host_pattern_problem(h) {
                    self.problem(join_index(&join_key(&path, "hosts"), i), why);
                }
            }
        }
        for (host, limits) in &flow.limits {
            let path = join_key("limits", host);
            if let Some(why) = host_pattern_problem(host) {
                self.problem(&path, why);
            }
            if limits.is_none() {
                self.problem(&path, "give a `rate_limit`, a `max_in_flight`, or both");
            }
            for (field, why) in limits.check(&format!("{path}.")) {
                self.problem(field, why);
            }
        }
        if flow.steps.is_empty() {
            self.problem("steps", "a flow needs at least one step");
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, step) in flow.steps.iter().enumerate() {
            let path = join_index("steps", i);
            if !is_identifier(&step.id) {
                self.problem(
                    join_key(&path, "id"),
                    format!("`{}` is not a valid step id: use letters, digits and `_`, not starting with a digit (templates read it as `steps.<id>`)", step.id),
                );
            }
            if let Some(first) = seen.insert(&step.id, i) {
                self.problem(join_key(&path, "id"), format!("duplicate step id `{}` (also steps[{first}])", step.id));
            }
        }
        let ids: HashSet<&str> = flow.steps.iter().map(|s| s.id.as_str()).collect();
        if let Some(sign) = &flow.sign {
            self.check_sign("sign", sign);
        }
        for (i, step) in flow.steps.iter().enumerate() {
            let path = join_index("steps", i);
            let scope = Scope::before(flow, i);
            if let Some(cond) = &step.condition {
                self.expression(&join_key(&path, "if"), condition_expression(cond), &scope, Slot::Step);
            }
            if let Some(OnFailure::Goto(target)) = &step.on_failure {
                if !ids.contains(target.as_str()) {
                    self.problem(join_key(&path, "on_failure.goto"), format!("no step with id `{target}`"));
                } else if *target == step.id {
                    self.problem(join_key(&path, "on_failure.goto"), "a step cannot fall back to itself");
                }
            }
            match &step.action {
                Action::Http(h) => self.check_http(&path, h, &scope, false),
                Action::Ping(h) => self.check_http(&path, h, &scope, true),
                Action::Sqs(_) | Action::Sns(_) | Action::Eventbridge(_) => {
                    if let Some((service, a)) = step.action.aws() {
                        self.check_aws(&path, service, a, &scope)
                    }
                }
                Action::Respond(r) => {
                    if flow.trigger.respond.mode != RespondMode::Sync {
                        self.problem(
                            join_key(&path, "type"),
                            "a `respond` step needs `trigger.respond.mode: sync` (async triggers answer at once)",
                        );
                    }
                    match &r.status {
                        StatusValue::Code(c) => self.status_code(&join_key(&path, "status"), *c),
                        StatusValue::Template(t) => {
                            let expr = single_expression(t).unwrap_or(t);
                            self.expression(&join_key(&path, "status"), expr, &scope, Slot::Step);
                        }
                    }
                    self.map_templates(&join_key(&path, "headers"), &r.headers, &scope, Slot::Step);
                    self.no_cookie(&join_key(&path, "headers"), &r.headers);
                    if let Some(b) = &r.body {
                        self.check_body(&join_key(&path, "body"), b, &scope);
                    }
                }
                Action::Set(s) => {
                    for (name, v) in &s.vars {
                        let p = join_key(&join_key(&path, "vars"), name);
                        if !is_identifier(name) {
                            self.problem(&p, format!("`{name}` is not a valid variable name"));
                        }
                        self.json_templates(&p, v, &scope);
                    }
                }
            }
        }
    }

    fn status_code(&mut self, field: &str, code: u16) {
        if !(100..=599).contains(&code) {
            self.problem(field, format!("{code} is not an HTTP status code (100-599)"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id: order-sync
tenant: acme
trigger:
  type: webhook
  system: shopify
  path: orders/created
  methods: [POST]
  auth: { secret: shopify-secret }
  idempotency: { header: X-Shopify-Webhook-Id }
  respond: { mode: async, status: 202 }
steps:
  - id: sync
    type: http
    method: POST
    url: https://partner.example.com/partners/{partnerId}/sync
    params: { partnerId: "{{ trigger.body.customer.partner_id }}" }
    headers: { Authorization: "Bearer {{ secrets.partner_token }}" }
    body: { json: { order: "{{ trigger.body.id }}", total: "{{ trigger.body.total_price | float }}" } }
    status: { success: [200-299], retry: [408, 429, 500-599], halt: [400-499] }
    retry: { max_attempts: 10, initial: 5s, max_delay: 2h }
    sign: { secret: partner_signing_key }
  - id: notify
    type: http
    url: https://hooks.example.com/notify
    body: { json: { partner_ref: "{{ steps.sync.response.body.id }}" } }
"#;

    fn errors(text: &str) -> Vec<String> {
        match load_flow(Path::new("f.yaml"), text) {
            Ok(_) => vec![],
            Err(Error::Invalid(d)) => d.iter().map(ToString::to_string).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    fn with(replace: &str, by: &str) -> Vec<String> {
        assert!(GOOD.contains(replace), "fixture lacks {replace}");
        errors(&GOOD.replacen(replace, by, 1))
    }

    #[test]
    fn two_flows_with_one_trigger_or_one_id_clash() {
        let a = crate::load_flow(Path::new("a.yaml"), GOOD).unwrap();
        let b = crate::load_flow(Path::new("b.yaml"), &GOOD.replace("id: order-sync", "id: other")).unwrap();
        let c = crate::load_flow(Path::new("c.yaml"), &GOOD.replace("path: orders/created", "path: x")).unwrap();
        assert_eq!(
            clashes([&a, &b]),
            ["a.yaml and b.yaml both use the trigger /hooks/acme/orders/created: give one another `trigger.path`"]
        );
        assert_eq!(
            clashes([&a, &c]),
            ["a.yaml and c.yaml both define flow `order-sync` of tenant `acme`: give one another `id`"]
        );
        assert!(clashes([&b, &c]).is_empty());
    }

    #[test]
    fn a_flow_names_every_secret_it_reads() {
        let flow = crate::load_flow(Path::new("f.yaml"), GOOD).unwrap();
        let names: Vec<String> = flow.secret_names().into_iter().collect();
        assert_eq!(names, ["partner_signing_key", "partner_token", "shopify-secret"]);
    }

    #[test]
    fn an_answer_to_a_trigger_sets_no_cookie() {
        let e = with(
            "respond: { mode: async, status: 202 }",
            "respond: { mode: async, status: 202, headers: { Set-Cookie: \"hookflow_console=x; Path=/console\" } }",
        );
        assert!(e.iter().any(|m| m.contains("trigger.respond.headers.Set-Cookie") && m.contains("cookie")), "{e:?}");
        let sync = GOOD.replacen("respond: { mode: async, status: 202 }", "respond: { mode: sync }", 1)
            + "  - { id: answer, type: respond, status: 200, headers: { set-cookie: a=b } }\n";
        let e = errors(&sync);
        assert!(e.iter().any(|m| m.contains("steps[2].headers.set-cookie")), "{e:?}");
    }

    #[test]
    fn a_secret_sent_to_a_host_from_data_is_warned_about_unless_bound() {
        let templated = GOOD.replacen(
            "url: https://partner.example.com/partners/{partnerId}/sync",
            "url: \"https://{{ trigger.body.host }}/partners/{partnerId}/sync\"",
            1,
        );
        let warnings = |text: &str| -> Vec<String> {
            load_flow(Path::new("f.yaml"), text).unwrap().warnings.iter().map(ToString::to_string).collect()
        };
        let got = warnings(&templated);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("f.yaml:16:5: steps[0].url: the URL's host comes from a template"), "{got:?}");
        assert!(got[0].contains("`partner_token`"), "{got:?}");
        // A rule for the secret answers it; a fixed host never warned.
        let bound = templated.replacen(
            "steps:\n",
            "secrets:\n  partner_token: { hosts: [\"*.partner.example\"] }\nsteps:\n",
            1,
        );
        assert_eq!(warnings(&bound), Vec::<String>::new());
        assert_eq!(warnings(GOOD), Vec::<String>::new());
        // An endpoint parameter in the host is data too.
        let param = GOOD.replacen(
            "url: https://partner.example.com/partners/{partnerId}/sync",
            "url: https://{partnerId}/sync",
            1,
        );
        assert_eq!(warnings(&param).len(), 1, "{:?}", warnings(&param));
    }

    #[test]
    fn host_limits_name_a_real_host_and_limits_in_range() {
        let errs = with(
            "steps:\n",
            "limits:\n  \"http://x\": { max_in_flight: 2 }\n  a.example: { rate_limit: { per_second: 0 } }\n  b.example: {}\nsteps:\n",
        );
        assert_error(&errs, "limits.http://x: `http://x` is not a host name");
        assert_error(&errs, "limits.a.example.rate_limit.per_second: must be between");
        assert_error(&errs, "limits.b.example: give a `rate_limit`, a `max_in_flight`, or both");
        let typo = with("steps:\n", "limits:\n  c.example: { rate_limit: { per_sec: 1 } }\nsteps:\n");
        assert_error(&typo, "limits.c.example.rate_limit.per_sec: unknown field `per_sec`: did you mean `per_second`?");
        let limited = GOOD.replacen(
            "steps:\n",
            "limits:\n  \"*.example.com\": { rate_limit: { per_second: 5, burst: 2 }, max_in_flight: 3 }\nsteps:\n",
            1,
        );
        assert!(errors(&limited).is_empty(), "{:?}", errors(&limited));
    }

    #[test]
    fn secret_rules_name_a_secret_and_real_hosts() {
        let errs = with(
            "steps:\n",
            "secrets:\n  \"tok#key\": { hosts: [a.example] }\n  other: { hosts: [] }\n  third: { hosts: [\"http://x\", \"*.\"] }\nsteps:\n",
        );
        assert_error(&errs, "secrets.tok#key: name the secret without `#key`");
        assert_error(&errs, "secrets.other.hosts: list at least one host");
        assert_error(&errs, "secrets.third.hosts[0]: `http://x` is not a host name");
        assert_error(&errs, "secrets.third.hosts[1]: `*.` is not a host name");
    }

    #[test]
    fn a_flow_may_not_name_a_subscriptions_keyring() {
        let errs = with("sign: { secret: partner_signing_key }", "sign: { secret: subscriptions/sub_1 }");
        assert_error(&errs, "steps[0].sign.secret: `subscriptions/sub_1`: names under `subscriptions/` are");
        let errs = with("auth: { secret: shopify-secret }", "auth: { secret: subscriptions/sub_1 }");
        assert_error(&errs, "trigger.auth.secret: `subscriptions/sub_1`");
        // Anything else with a slash is a name like any other.
        assert_eq!(
            with("sign: { secret: partner_signing_key }", "sign: { secret: partner/signing }"),
            Vec::<String>::new()
        );
    }

    fn assert_error(errs: &[String], needle: &str) {
        assert!(errs.iter().any(|e| e.contains(needle)), "no error containing {needle:?} in {errs:#?}");
    }

    #[test]
    fn event_triggers_list_patterns_and_have_no_url() {
        let flow = |trigger: &str| {
            format!("id: f\ntenant: acme\ntrigger: {trigger}\nsteps:\n  - {{ id: s, type: set, vars: {{ x: 1 }} }}\n")
        };
        assert_eq!(errors(&flow("{ type: event, events: [payment.received, contact.*] }")), Vec::<String>::new());
        assert_error(&errors(&flow("{ type: event }")), "trigger.events: an event trigger lists");
        assert_error(&errors(&flow("{ type: event, events: [Bad] }")), "trigger.events[0]:");
        assert_error(
            &errors(&flow("{ type: event, events: [a.b], path: x }")),
            "trigger.path: an event trigger has no URL",
        );
        assert_error(&errors(&flow("{ type: webhook, path: x, events: [a.b] }")), "trigger.events: `events` is for");
        assert_error(&errors(&flow("{ type: webhook }")), "trigger.path: the URL suffix is empty");
    }

    #[test]
    fn the_design_example_is_valid() {
        assert_eq!(errors(GOOD), Vec::<String>::new());
        let f = load_flow(Path::new("f.yaml"), GOOD).unwrap();
        assert_eq!(f.flow.steps.len(), 2);
        assert_eq!(f.flow.trigger_path(), "/hooks/acme/orders/created");
    }

    #[test]
    fn unknown_fields_name_file_line_column_and_field() {
        let errs = with("    method: POST\n", "    method: POST\n    urll: x\n");
        assert_error(&errs, "f.yaml:16:5: steps[0].urll: unknown field `urll`");
        let errs = with("  path: orders/created", "  path: orders/created\n  pathh: x");
        assert_error(&errs, "f.yaml:8:3: trigger.pathh: unknown field `pathh`");
    }

    #[test]
    fn wrong_types_are_reported() {
        let errs = with("max_attempts: 10", "max_attempts: ten");
        assert_error(&errs, "steps[0].retry.max_attempts: invalid type: string \"ten\"");
        assert_error(&errs, "f.yaml:21:14:");
    }

    #[test]
    fn an_enforced_schema_is_compiled_once_and_an_invalid_one_is_refused_with_its_field() {
        let enforced = "  respond: { mode: async, status: 202 }\n  expect: { enforce: true, body: { schema: { type: object, required: [id] } } }";
        let f = load_flow(Path::new("f.yaml"), &GOOD.replacen("  respond: { mode: async, status: 202 }", enforced, 1))
            .unwrap();
        let shape = f.shape.expect("compiled");
        assert!(shape.is_valid(&serde_json::json!({"id": 1})) && !shape.is_valid(&serde_json::json!({})));
        let advisory = enforced.replace("enforce: true", "enforce: false");
        let f = load_flow(Path::new("f.yaml"), &GOOD.replacen("  respond: { mode: async, status: 202 }", &advisory, 1))
            .unwrap();
        assert!(f.shape.is_none(), "an advisory shape is not checked");
        let errs = with("  respond: { mode: async, status: 202 }", &enforced.replace("type: object", "type: 12"));
        assert_error(&errs, "trigger.expect.body.schema: not a valid JSON Schema");
    }

    #[test]
    fn duplicate_step_ids() {
        let errs = with("  - id: notify", "  - id: sync");
        assert_error(&errs, "steps[1].id: duplicate step id `sync` (also steps[0])");
    }

    #[test]
    fn references_to_later_or_unknown_steps() {
        let errs = with("steps.sync.response.body.id", "steps.notify.response.body.id");
        assert_error(
            &errs,
            "steps[1].body.json.partner_ref: unknown template variable 'steps.notify.response.body.id': `notify` is not an earlier step",
        );
        let errs = with("steps.sync.response.body.id", "steps.sink.response");
        assert_error(&errs, "`sink` is not an earlier step");
    }

    #[test]
    fn reading_the_response_of_a_fire_and_forget_step() {
        let errs = with(
            "    sign: { secret: partner_signing_key }",
            "    sign: { secret: partner_signing_key }\n    wait_for_response: false",
        );
        assert_error(&errs, "step `sync` has no response to read");
    }

    #[test]
    fn unknown_trigger_fields() {
        let errs = with("trigger.body.id", "trigger.bdy.id");
        assert_error(&errs, "steps[0].body.json.order: unknown template variable 'trigger.bdy.id'");
        let errs = with("trigger.body.id", "trigegr.body.id");
        assert_error(&errs, "unknown template variable 'trigegr.body.id'");
    }

    #[test]
    fn url_suffix_rules() {
        assert_error(
            &with("path: orders/created", "path: orders created"),
            "trigger.path: `orders created` contains a space",
        );
        assert_error(&with("path: orders/created", "path: orders?x=1"), "contains `?`");
        assert_error(&with("path: orders/created", "path: a/../b"), "`..` segment");
    }

    #[test]
    fn methods_outside_the_list() {
        let errs = with("methods: [POST]", "methods: [POST, HEAD]");
        assert_error(
            &errs,
            "trigger.methods[1]: unknown variant `HEAD`, expected one of `GET`, `POST`, `PUT`, `PATCH`, `DELETE`",
        );
        let errs = with("    method: POST\n", "    method: TRACE\n");
        assert_error(&errs, "unknown variant `TRACE`");
    }

    #[test]
    fn malformed_status_ranges_and_durations() {
        assert_error(&with("retry: [408, 429, 500-599]", "retry: [408, 429, 599-500]"), "599 is above 500");
        assert_error(&with("retry: [408, 429, 500-599]", "retry: [408, 5xx]"), "invalid status `5xx`");
        assert_error(
            &with("initial: 5s", "initial: 5 parsecs"),
            "steps[0].retry.initial: invalid duration `5 parsecs`",
        );
    }

    #[test]
    fn url_params_need_entries() {
        let errs = with("params: { partnerId:", "params: { partner:");
        assert_error(&errs, "steps[0].url: `{partnerId}` has no matching entry in `params`");
        assert_error(&errs, "steps[0].params.partner: not used");
    }

    #[test]
    fn template_syntax_errors() {
        let errs = with("{{ trigger.body.id }}", "{{ trigger.body.id ");
        assert_error(&errs, "steps[0].body.json.order: template:");
    }

    #[test]
    fn secrets_only_in_headers_query_and_auth() {
        let errs = with("order: \"{{ trigger.body.id }}\"", "order: \"{{ secrets.partner_token }}\"");
        assert_error(
            &errs,
            "steps[0].body.json.order: 'secrets.partner_token': secrets may only be used in header values, query values and auth fields",
        );
        let errs = with("https://hooks.example.com/notify", "https://hooks.example.com/{{ secrets.x }}");
        assert_error(&errs, "steps[1].url: 'secrets.x': secrets may only");
        let ok = with(
            "    url: https://hooks.example.com/notify\n",
            "    url: https://hooks.example.com/notify\n    query: { key: \"{{ secrets.k }}\" }\n    auth: { type: basic, username: u, password: \"{{ secrets.p }}\" }\n",
        );
        assert_eq!(ok, Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = GOOD.replacen("path: orders/created", "path: a b", 1).replacen("  - id: notify", "  - id: sync", 1);
        let errs = errors(&text);
        assert!(errs.len() >= 2, "{errs:#?}");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let errs = errors("id: x\nsteps: [\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("f.yaml:"), "{errs:?}");
    }

    #[test]
    fn sync_flows_need_a_respond_step_and_goto_targets_must_exist() {
        let errs = with("respond: { mode: async, status: 202 }", "respond: { mode: sync }");
        assert_error(&errs, "trigger.respond.mode: a sync trigger needs a `respond` step");
        let errs = with("  - id: notify\n", "  - id: notify\n    on_failure: { goto: nowhere }\n");
        assert_error(&errs, "steps[1].on_failure.goto: no step with id `nowhere`");
    }

    #[test]
    fn url_params_skip_templates() {
        assert_eq!(url_params("https://x/{a}/{{ b }}/{c}?q={{ d | default('{e}') }}"), vec!["a", "c"]);
    }

    const AWS: &str = r#"
id: to-aws
tenant: acme
trigger: { type: webhook, path: in }
steps:
  - id: queue
    type: sqs
    arn: arn:aws:sqs:us-east-1:123456789012:orders.fifo
    group: "{{ trigger.body.customer }}"
    attributes: { order: "{{ trigger.body.id }}" }
    body: { json: { id: "{{ trigger.body.id }}" } }
  - id: bus
    type: eventbridge
    arn: arn:aws:events:us-east-1:123456789012:event-bus/default
    detail_type: order.received
    body: { json: { queued: "{{ steps.queue.response.body.message_id }}" } }
"#;

    #[test]
    fn aws_steps_take_their_service_s_fields_and_lower_to_a_request_to_the_arn() {
        let flow = load_flow(Path::new("f.yaml"), AWS).unwrap();
        let h = flow.flow.steps[0].action.http().unwrap();
        assert_eq!(h.url, "arn:aws:sqs:us-east-1:123456789012:orders.fifo");
        assert_eq!(h.sign, Some(crate::flow::StepSign::Off(false)), "never signed by the flow's `sign`");
        assert!(h.headers.contains_key(crate::destination::GROUP) && h.headers.contains_key("order"));
        let bad = |from: &str, to: &str| errors(&AWS.replacen(from, to, 1)).join("\n");
        let e = bad("arn:aws:sqs:us-east-1:123456789012:orders.fifo", "arn:aws:sns:us-east-1:123456789012:t");
        assert!(e.contains("steps[0].arn: names an SNS destination; this step's type sends to SQS"), "{e}");
        let e = bad("orders.fifo", "orders");
        assert!(e.contains("steps[0].group: only a FIFO queue or topic"), "{e}");
        let e = bad("    group:", "    source: x\n    group:");
        assert!(e.contains("steps[0].source: only an `eventbridge` step takes it"), "{e}");
        let e = bad("attributes: { order:", "attributes: { aws.x: a, order:");
        assert!(e.contains("steps[0].attributes.aws.x: not a message attribute name"), "{e}");
        let many: Vec<String> = (0..10).map(|i| format!("a{i}: v")).collect();
        let e =
            bad("attributes: { order: \"{{ trigger.body.id }}\" }", &format!("attributes: {{ {} }}", many.join(", ")));
        assert!(e.contains("steps[0].attributes: at most 9"), "{e}");
        let e = bad("    body: { json: { id: \"{{ trigger.body.id }}\" } }\n", "");
        assert!(e.contains("steps[0].body: missing"), "{e}");
        let e = bad("attributes: { order:", "attributes: { token: \"{{ secrets.t }}\", order:");
        assert!(e.contains("steps[0].attributes.token"), "no secret in a queue's attribute: {e}");
        let e = bad("event-bus/default", "rule/default");
        assert!(e.contains("steps[1].arn") && e.contains("event-bus/NAME"), "{e}");
    }

    #[test]
    fn an_http_step_whose_url_renders_to_an_arn_is_refused() {
        let text = GOOD.replacen("url: https://hooks.example.com/notify", "url: \"{{ trigger.body.to }}\"", 1);
        let flow = load_flow(Path::new("f.yaml"), &text).unwrap();
        let Action::Http(h) = &flow.flow.steps[1].action else { panic!() };
        let ctx = crate::template::Context::new(
            serde_json::json!({"trigger": {"body": {"to": "arn:aws:sqs:us-east-1:123456789012:q"}}})
                .as_object()
                .cloned()
                .unwrap(),
        );
        let e = crate::request::render_request(&flow.templates, h, &ctx, "steps.notify").unwrap_err();
        assert!(e.to_string().contains("rendered to an ARN"), "{e}");
    }
}
