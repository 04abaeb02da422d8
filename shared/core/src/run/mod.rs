//! The run state machine: `advance(flow, run, input) -> (run, effects)`.
//!
//! A *run* is one execution of a flow for one inbound event. Pure steps
//! (`set`, `respond`, conditions) run inline; an `http` or `ping` step becomes
//! a [`Delivery`] effect that a dispatcher sends. A step that waits for its
//! response parks the run until the dispatcher feeds the outcome back as
//! [`Input::StepResult`]. The function never does I/O: the Lambda functions,
//! the dev server and `hookflow test` all interpret the same effects.

pub mod attempt;
mod delivery;
pub mod dry;
pub mod request;
mod trigger;

pub use delivery::{Delivery, Purpose};
use trigger::de_trigger;
pub use trigger::{InboundRequest, expand_trigger, parse_form};

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::flow::{Action, Flow, HttpStep, OnFailure, SecretRule, StatusValue, StepSign};
use crate::headers::Headers;
use crate::request::{OutboundRequest, render_body, render_request};
use crate::retry::RetryPolicy;
use crate::status::Verdict;
use crate::template::{Context, Templates, single_expression};
use crate::validate::CompiledFlow;

/// Most steps one run may execute (a `goto` loop ends here).
pub const MAX_STEPS_PER_RUN: u32 = 1000;
/// Default per-attempt timeout of an outbound request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A run as the stores keep it (JSON text), its trigger's body stored once:
/// `trigger.body` (parsed) is left out when `trigger.raw_body` gives it back
/// ([`expand_trigger`], which loading a [`Run`] applies).
pub fn stored_state(run: &Run) -> String {
    let mut v = serde_json::to_value(run).unwrap_or_default();
    if let Some(trigger) = v.get_mut("trigger").and_then(Value::as_object_mut)
        && let Some(body) = trigger.remove("body")
    {
        let mut left = Value::Object(std::mem::take(trigger));
        expand_trigger(&mut left);
        if left.get("body") == Some(&body) {
            left.as_object_mut().map(|o| o.remove("body"));
        } else {
            left["body"] = body;
        }
        v["trigger"] = left;
    }
    v.to_string()
}
/// A response captured from a step's request (`steps.<id>.response`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedResponse {
    pub status: u16,
    #[serde(default)]
    pub headers: Headers,
    /// Parsed JSON when the body is JSON, otherwise the text.
    #[serde(default)]
    pub body: Value,
}

impl CapturedResponse {
    /// Builds a capture from raw parts, parsing a JSON body.
    pub fn new(status: u16, headers: Headers, body: &str) -> Self {
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()))
        };
        CapturedResponse { status, headers, body }
    }

    fn to_json(&self) -> Value {
        json!({"status": self.status, "headers": self.headers.to_json(), "body": self.body})
    }
}

/// Why a step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A template or request could not be rendered.
    Render,
    /// The status policy said halt.
    Halted,
    /// `410 Gone`.
    Gone,
    /// Retries ran out (or `max_age` passed).
    Exhausted,
    /// The target address is not allowed.
    Ssrf,
    /// A secret could not be resolved.
    Secret,
}

/// A step's failure (`steps.<id>.error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepError {
    pub kind: FailureKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// What the dispatcher reports for a delivery a run waits on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum StepOutcome {
    Succeeded { response: CapturedResponse },
    Failed { error: StepError, response: Option<CapturedResponse> },
}

/// The outcome a waiting run gets for a final response: `verdict` from the
/// step's status policy, after `attempts` attempts. A `Retry` verdict here
/// means the retries ran out.
pub fn final_outcome(verdict: Verdict, response: CapturedResponse, attempts: u32) -> StepOutcome {
    let status = response.status;
    let failed = |kind, message: String| StepOutcome::Failed {
        error: StepError { kind, message, status: Some(status) },
        response: Some(response.clone()),
    };
    match verdict {
        Verdict::Success => StepOutcome::Succeeded { response },
        Verdict::Retry => {
            failed(FailureKind::Exhausted, format!("gave up after {attempts} attempt(s); last status {status}"))
        }
        Verdict::Halt => failed(FailureKind::Halted, format!("status {status} halts the step")),
        Verdict::Gone => failed(FailureKind::Gone, "status 410: the endpoint is gone".to_string()),
    }
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum RunStatus {
    Running,
    /// Parked until `delivery_id` of `step` reports back.
    Waiting {
        step: String,
        delivery_id: String,
    },
    Succeeded,
    Failed {
        step: String,
        reason: String,
    },
}

impl RunStatus {
    pub fn is_finished(&self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed { .. })
    }
}

/// One run of a flow. Serialisable: stores keep it between inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub event_id: String,
    pub tenant: String,
    pub flow_id: String,
    /// `trigger.*` (stored without the parsed `body`, restored on load:
    /// [`stored_state`]).
    #[serde(deserialize_with = "de_trigger")]
    pub trigger: Value,
    /// `vars.*`.
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// `steps.<id>.*`.
    #[serde(default)]
    pub steps: Map<String, Value>,
    /// Index of the next step to execute.
    pub next: usize,
    /// Steps executed so far.
    pub executed: u32,
    pub status: RunStatus,
    /// Inputs applied so far: [`advance`] adds one (an ignored input, a
    /// result nobody waits for, changes nothing). Stores that can be
    /// written concurrently (DynamoDB) write a run only over an older
    /// revision, so two workers handed the same input cannot both apply it.
    #[serde(default)]
    pub revision: u64,
    /// The flow version it started on ([`crate::CompiledFlow::version`]),
    /// which it goes on with when the flow is edited; empty for runs
    /// stored before versions were recorded (they go on with the current
    /// one).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub flow_version: String,
}

impl Run {
    /// A new run for `request`, ready for [`Input::Start`].
    pub fn new(flow: &Flow, id: impl Into<String>, event_id: impl Into<String>, request: &InboundRequest) -> Self {
        Run {
            id: id.into(),
            event_id: event_id.into(),
            tenant: flow.tenant.clone(),
            flow_id: flow.id.clone(),
            trigger: request.to_trigger(flow),
            vars: Map::new(),
            steps: Map::new(),
            next: 0,
            executed: 0,
            status: RunStatus::Running,
            revision: 0,
            flow_version: String::new(),
        }
    }

    /// The template context of this run.
    pub fn context(&self) -> Context {
        let mut parts = Map::new();
        parts.insert("trigger".into(), self.trigger.clone());
        parts.insert("event".into(), json!({"id": self.event_id}));
        parts.insert("run".into(), json!({"id": self.id}));
        parts.insert("vars".into(), Value::Object(self.vars.clone()));
        parts.insert("steps".into(), Value::Object(self.steps.clone()));
        Context::new(parts)
    }
}

/// What drives a run forward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "input")]
pub enum Input {
    Start,
    StepResult { step: String, delivery_id: String, outcome: StepOutcome },
}

/// An HTTP answer to the trigger's caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// A fact about a step, for the request log and `hookflow test`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepEvent {
    pub step: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `skipped`, `set`, `respond`, `send`, `succeeded`, `failed`, `ignored`.
    pub decision: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// What the caller of [`advance`] must do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "effect")]
pub enum Effect {
    Send(Box<Delivery>),
    Reply(Reply),
    Log(StepEvent),
    Finished { status: RunStatus },
}

fn log(step: &str, kind: &str, decision: &str, detail: Value) -> Effect {
    Effect::Log(StepEvent { step: step.into(), kind: kind.into(), decision: decision.into(), detail })
}

/// Advances `run` as far as it can go on `input`.
pub fn advance(flow: &CompiledFlow, mut run: Run, input: Input) -> Result<(Run, Vec<Effect>), Error> {
    let mut effects = Vec::new();
    match input {
        Input::Start => {
            if run.executed != 0 || run.status != RunStatus::Running {
                return Err(Error::Run(format!("run {} has already started", run.id)));
            }
            run.revision += 1;
        }
        Input::StepResult { step, delivery_id, outcome } => {
            let waiting = matches!(&run.status, RunStatus::Waiting { step: s, delivery_id: d } if *s == step && *d == delivery_id);
            if !waiting {
                // A fire-and-forget step's result, or a duplicate: nothing
                // to resume. The dispatcher has logged the attempt itself.
                effects.push(log(
                    &step,
                    "http",
                    "ignored",
                    json!({"delivery_id": delivery_id, "reason": "the run is not waiting on this delivery"}),
                ));
                return Ok((run, effects));
            }
            run.status = RunStatus::Running;
            run.revision += 1;
            let Some(index) = flow.flow.step_index(&step) else {
                // The flow was edited and the step is gone: the run cannot
                // go on, and trying again will not bring the step back.
                let reason = format!("the flow changed: the step `{step}` this run waited on is no longer in it");
                effects.push(log(&step, "http", "failed", json!({"error": reason})));
                run.status = RunStatus::Failed { step, reason };
                effects.push(Effect::Finished { status: run.status.clone() });
                return Ok((run, effects));
            };
            let kind = flow.flow.steps[index].action.type_name();
            match outcome {
                StepOutcome::Succeeded { response } => {
                    effects.push(log(&step, kind, "succeeded", json!({"status": response.status})));
                    run.steps.insert(step.clone(), json!({"status": "succeeded", "response": response.to_json()}));
                    run.next = index + 1;
                }
                StepOutcome::Failed { error, response } => {
                    let mut record = json!({"status": "failed", "error": error});
                    if let Some(r) = response {
                        record["response"] = r.to_json();
                    }
                    run.steps.insert(step.clone(), record);
                    if !fail_step(flow, &mut run, index, &error, &mut effects) {
                        return Ok((run, effects));
                    }
                }
            }
        }
    }
    run_until_parked(flow, &mut run, &mut effects);
    Ok((run, effects))
}

/// Applies a failed step's `on_failure`. Returns false when the run ended.
fn fail_step(flow: &CompiledFlow, run: &mut Run, index: usize, error: &StepError, effects: &mut Vec<Effect>) -> bool {
    let step = &flow.flow.steps[index];
    effects.push(log(&step.id, step.action.type_name(), "failed", json!({"error": error})));
    match step.on_failure.as_ref().unwrap_or(&OnFailure::Stop) {
        OnFailure::Stop => {
            run.status = RunStatus::Failed { step: step.id.clone(), reason: error.message.clone() };
            effects.push(Effect::Finished { status: run.status.clone() });
            false
        }
        OnFailure::Continue => {
            run.next = index + 1;
            true
        }
        OnFailure::Goto(target) => {
            // Validation guarantees the target exists.
            run.next = flow.flow.step_index(target).unwrap_or(flow.flow.steps.len());
            true
        }
    }
}

fn render_failure(e: Error) -> StepError {
    StepError { kind: FailureKind::Render, message: e.to_string(), status: None }
}

fn run_until_parked(flow: &CompiledFlow, run: &mut Run, effects: &mut Vec<Effect>) {
    loop {
        let Some(step) = flow.flow.steps.get(run.next) else {
            run.status = RunStatus::Succeeded;
            effects.push(Effect::Finished { status: RunStatus::Succeeded });
            return;
        };
        if run.executed >= MAX_STEPS_PER_RUN {
            run.status = RunStatus::Failed {
                step: step.id.clone(),
                reason: format!("more than {MAX_STEPS_PER_RUN} steps executed (an on_failure goto loop?)"),
            };
            effects.push(Effect::Finished { status: run.status.clone() });
            return;
        }
        run.executed += 1;
        let index = run.next;
        let field = format!("steps[{index}]");
        let kind = step.action.type_name();
        let ctx = run.context();
        if let Some(cond) = &step.condition {
            match flow.templates.truthy(cond, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    effects.push(log(&step.id, kind, "skipped", json!({"if": cond})));
                    run.steps.insert(step.id.clone(), json!({"status": "skipped"}));
                    run.next += 1;
                    continue;
                }
                Err(source) => {
                    let e = render_failure(Error::Render { field: format!("{field}.if"), source });
                    run.steps.insert(step.id.clone(), json!({"status": "failed", "error": e}));
                    if fail_step(flow, run, index, &e, effects) {
                        continue;
                    }
                    return;
                }
            }
        }
        let result: Result<Option<Delivery>, StepError> = match &step.action {
            Action::Set(set) => {
                let mut rendered = Map::new();
                let mut failed = None;
                for (name, v) in &set.vars {
                    match flow.templates.render_json_at(&format!("{field}.vars.{name}"), v, &ctx) {
                        Ok(value) => {
                            rendered.insert(name.clone(), value);
                        }
                        Err(source) => {
                            failed =
                                Some(render_failure(Error::Render { field: format!("{field}.vars.{name}"), source }));
                            break;
                        }
                    }
                }
                match failed {
                    Some(e) => Err(e),
                    None => {
                        effects.push(log(&step.id, kind, "set", Value::Object(rendered.clone())));
                        run.vars.extend(rendered);
                        Ok(None)
                    }
                }
            }
            Action::Respond(r) => {
                match render_reply(&flow.templates, &r.status, &r.headers, r.body.as_ref(), &ctx, &field) {
                    Ok(reply) => {
                        effects.push(log(
                            &step.id,
                            kind,
                            "respond",
                            json!({"status": reply.status, "body": reply.body}),
                        ));
                        effects.push(Effect::Reply(reply));
                        Ok(None)
                    }
                    Err(e) => Err(render_failure(e)),
                }
            }
            // A request: an `http` or `ping` step's, or an AWS step's to its ARN.
            sending => match sending.http() {
                Some(h) => match render_request(&flow.templates, &h, &ctx, &field) {
                    Ok(request) => Ok(Some(delivery(flow, run, &step.id, &h, request))),
                    Err(e) => Err(render_failure(e)),
                },
                None => Ok(None),
            },
        };
        match result {
            Ok(None) => {
                run.steps.insert(step.id.clone(), json!({"status": "succeeded"}));
                run.next += 1;
            }
            Ok(Some(d)) => {
                effects.push(log(
                    &step.id,
                    kind,
                    "send",
                    json!({"delivery_id": d.id, "request": d.request.redacted(), "wait": d.wait}),
                ));
                let wait = d.wait;
                let delivery_id = d.id.clone();
                effects.push(Effect::Send(Box::new(d)));
                if wait {
                    run.status = RunStatus::Waiting { step: step.id.clone(), delivery_id };
                    return;
                }
                run.steps.insert(step.id.clone(), json!({"status": "sent"}));
                run.next += 1;
            }
            Err(e) => {
                run.steps.insert(step.id.clone(), json!({"status": "failed", "error": e}));
                if !fail_step(flow, run, index, &e, effects) {
                    return;
                }
            }
        }
    }
}

fn delivery(flow: &CompiledFlow, run: &Run, step: &str, h: &HttpStep, request: OutboundRequest) -> Delivery {
    let sign = match &h.sign {
        Some(StepSign::Spec(s)) => Some(s.clone()),
        Some(StepSign::Off(_)) => None,
        None => flow.flow.sign.clone(),
    };
    Delivery {
        // Deterministic: re-driving the same input yields the same id.
        id: format!("msg_{}_{}", run.id.trim_start_matches("run_"), run.executed),
        run_id: run.id.clone(),
        event_id: run.event_id.clone(),
        tenant: run.tenant.clone(),
        flow_id: run.flow_id.clone(),
        step: step.to_string(),
        status_policy: h.status.clone().unwrap_or_default(),
        retry: h.retry.as_ref().map(RetryPolicy::from_spec).unwrap_or_default(),
        sign,
        timeout: h.timeout.map_or(DEFAULT_TIMEOUT, |t| t.get()),
        wait: h.wait_for_response,
        purpose: Purpose::Step,
        secret_hosts: secret_hosts(&flow.flow, &request),
        shaped: false,
        limit: request.url.url_host().and_then(|h| crate::limit::for_host(&flow.flow.limits, &run.tenant, &h)),
        request,
    }
}

/// The flow's `secrets:` rules of the secrets `request` carries.
fn secret_hosts(flow: &Flow, request: &OutboundRequest) -> BTreeMap<String, SecretRule> {
    if flow.secrets.is_empty() {
        return BTreeMap::new();
    }
    request
        .secret_names()
        .into_iter()
        .filter_map(|n| n.split('#').next())
        .filter_map(|n| flow.secrets.get(n).map(|r| (n.to_string(), r.clone())))
        .collect()
}

/// Renders a reply: a `respond` step's, or a trigger's immediate answer.
pub fn render_reply(
    templates: &Templates,
    status: &StatusValue,
    headers: &Map<String, Value>,
    body: Option<&crate::flow::Body>,
    ctx: &Context,
    field: &str,
) -> Result<Reply, Error> {
    let status = match status {
        StatusValue::Code(c) => *c,
        StatusValue::Template(t) => {
            let expr = single_expression(t).unwrap_or(t);
            let v = templates
                .eval(expr, ctx)
                .map_err(|source| Error::Render { field: format!("{field}.status"), source })?;
            let n = match &v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            match n {
                Some(n @ 100..=599) => n as u16,
                _ => {
                    return Err(Error::request(
                        format!("{field}.status"),
                        format!("rendered to {v}, not a status code"),
                    ));
                }
            }
        }
    };
    let mut out_headers = Vec::new();
    // No cookie, whatever an older stored flow says (validation refuses
    // one): see `validate`'s `no_cookie`.
    for (k, v) in headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("set-cookie")) {
        let text = match v {
            Value::String(s) => templates
                .render_text(s, ctx)
                .map_err(|source| Error::Render { field: format!("{field}.headers.{k}"), source })?,
            other => other.to_string(),
        };
        if text.contains(['\r', '\n', '\0']) {
            return Err(Error::request(format!("{field}.headers.{k}"), "rendered value contains CR, LF or NUL"));
        }
        out_headers.push((k.clone(), text));
    }
    let (body, ct) = match body {
        Some(b) => render_body(templates, b, ctx, &format!("{field}.body"))?,
        None => (None, None),
    };
    if let Some(ct) = ct
        && !out_headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        out_headers.push(("Content-Type".into(), ct));
    }
    Ok(Reply { status, headers: out_headers, body: if status == 204 { None } else { body } })
}

/// The immediate answer of an async trigger (default `202 {"event_id": …}`).
pub fn async_reply(flow: &CompiledFlow, run: &Run) -> Result<Reply, Error> {
    let r = &flow.flow.trigger.respond;
    let ctx = run.context();
    match &r.body {
        Some(_) => render_reply(
            &flow.templates,
            &StatusValue::Code(r.status),
            &r.headers,
            r.body.as_ref(),
            &ctx,
            "trigger.respond",
        ),
        None => {
            let mut reply =
                render_reply(&flow.templates, &StatusValue::Code(r.status), &r.headers, None, &ctx, "trigger.respond")?;
            if r.status != 204 {
                reply.body = Some(json!({"event_id": run.event_id}).to_string());
                if !reply.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                    reply.headers.push(("Content-Type".into(), "application/json".into()));
                }
            }
            Ok(reply)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::load_flow;
    use std::path::Path;

    fn flow(text: &str) -> CompiledFlow {
        load_flow(Path::new("t.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn request(body: Value) -> InboundRequest {
        InboundRequest {
            method: "POST".into(),
            path: "/hooks/acme/x".into(),
            headers: [("Content-Type", "application/json")].into_iter().collect(),
            body: body.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn a_runs_trigger_gives_its_request_back_for_a_replay() {
        let f = flow(SYNC);
        let req = InboundRequest {
            query: json!({"a": "1"}).as_object().cloned().unwrap(),
            source_ip: "127.0.0.1".into(),
            received_at: "2026-11-30T00:00:00Z".into(),
            ..request(json!({"sku": "A-1"}))
        };
        let run = Run::new(&f.flow, "run_1", "evt_1", &req);
        let stored: Run = serde_json::from_str(&stored_state(&run)).unwrap();
        let back = InboundRequest::from_trigger(&stored.trigger).unwrap();
        // Header names come back lower case (as `trigger.headers` has them).
        assert_eq!(
            back,
            InboundRequest { headers: [("content-type", "application/json")].into_iter().collect(), ..req }
        );
        assert_eq!(InboundRequest::from_trigger(&json!({"type": "order.paid"})), None, "an event's run has no request");
    }

    #[test]
    fn a_stored_run_keeps_its_trigger_body_once_and_loads_back_whole() {
        let f = flow(SYNC);
        let form = InboundRequest {
            headers: [("Content-Type", "application/x-www-form-urlencoded")].into_iter().collect(),
            body: "a=1&b=two".into(),
            ..request(json!(null))
        };
        let text = InboundRequest { headers: Default::default(), body: "plain words".into(), ..request(json!(null)) };
        for req in [request(json!({"sku": "A-1", "n": [1, 2]})), form, text, request(json!(null))] {
            let run = Run::new(&f.flow, "run_1", "evt_1", &req);
            let stored = stored_state(&run);
            let v: Value = serde_json::from_str(&stored).unwrap();
            assert!(v["trigger"].get("body").is_none(), "the parsed body is not stored: {stored}");
            let back: Run = serde_json::from_str(&stored).unwrap();
            assert_eq!(back, run, "{stored}");
        }
        // A body that raw_body does not give back is kept.
        let mut odd = Run::new(&f.flow, "run_2", "evt_2", &request(json!({"a": 1})));
        odd.trigger["body"] = json!({"changed": true});
        let back: Run = serde_json::from_str(&stored_state(&odd)).unwrap();
        assert_eq!(back.trigger["body"], json!({"changed": true}));
    }

    const SYNC: &str = r#"
id: quote
tenant: acme
trigger: { type: webhook, path: quote, respond: { mode: sync } }
steps:
  - id: price
    type: http
    url: https://pricing.example/quote/{sku}
    params: { sku: "{{ trigger.body.sku }}" }
    headers: { X-Key: "{{ secrets.pricing_key }}" }
  - id: big
    if: steps.price.response.body.amount > 100
    type: set
    vars: { tier: gold }
  - id: answer
    type: respond
    status: "{{ 201 if vars.tier is defined else 200 }}"
    body: { json: { amount: "{{ steps.price.response.body.amount }}", tier: "{{ vars.tier | default('none') }}" } }
"#;

    fn start(f: &CompiledFlow, body: Value) -> (Run, Vec<Effect>) {
        let run = Run::new(&f.flow, "run_1", "evt_1", &request(body));
        advance(f, run, Input::Start).unwrap()
    }

    fn sent(effects: &[Effect]) -> &Delivery {
        effects.iter().find_map(|e| if let Effect::Send(d) = e { Some(d.as_ref()) } else { None }).expect("a send")
    }

    #[test]
    fn a_waiting_step_parks_and_its_response_feeds_later_steps() {
        let f = flow(SYNC);
        let (run, effects) = start(&f, json!({"sku": "a/b"}));
        let d = sent(&effects);
        assert_eq!(d.request.url.redacted(), "https://pricing.example/quote/a%2Fb");
        assert_eq!(d.request.header("x-key").unwrap().redacted(), "***");
        assert!(matches!(run.status, RunStatus::Waiting { .. }));
        let resp = CapturedResponse::new(200, Headers::new(), r#"{"amount": 150}"#);
        let (run, effects) = advance(
            &f,
            run,
            Input::StepResult {
                step: "price".into(),
                delivery_id: d.id.clone(),
                outcome: StepOutcome::Succeeded { response: resp },
            },
        )
        .unwrap();
        assert_eq!(run.status, RunStatus::Succeeded);
        let reply = effects.iter().find_map(|e| if let Effect::Reply(r) = e { Some(r) } else { None }).unwrap();
        assert_eq!(reply.status, 201);
        assert_eq!(reply.body.as_deref(), Some(r#"{"amount":150,"tier":"gold"}"#));
    }

    #[test]
    fn a_run_whose_waited_step_was_edited_away_fails_instead_of_retrying() {
        let f = flow(SYNC);
        let (run, effects) = start(&f, json!({"sku": "a"}));
        let d = sent(&effects).id.clone();
        let edited = flow(&SYNC.replace("id: price", "id: quote").replace("steps.price", "steps.quote"));
        let resp = CapturedResponse::new(200, Headers::new(), r#"{"amount": 5}"#);
        let input = Input::StepResult {
            step: "price".into(),
            delivery_id: d,
            outcome: StepOutcome::Succeeded { response: resp },
        };
        let (run, effects) = advance(&edited, run, input).expect("a final answer, not an error to retry");
        assert!(
            matches!(&run.status, RunStatus::Failed { step, reason } if step == "price" && reason.contains("no longer")),
            "{:?}",
            run.status
        );
        assert!(effects.iter().any(|e| matches!(e, Effect::Finished { .. })));
    }

    #[test]
    fn a_delivery_carries_the_host_rules_of_the_secrets_it_sends() {
        let (_, effects) = start(&flow(SYNC), json!({"sku": "a"}));
        assert!(sent(&effects).secret_hosts.is_empty(), "no rule, nothing carried");
        let bound = SYNC.replacen(
            "steps:\n",
            "secrets:\n  pricing_key: { hosts: [pricing.example] }\n  unused: { hosts: [x.example] }\nsteps:\n",
            1,
        );
        let (_, effects) = start(&flow(&bound), json!({"sku": "a"}));
        let d = sent(&effects);
        assert_eq!(d.secret_hosts.keys().collect::<Vec<_>>(), ["pricing_key"], "only the secrets it sends");
        assert_eq!(d.secret_refused("pricing.example"), None);
        assert_eq!(
            d.secret_refused("evil.example").as_deref(),
            Some("secret `pricing_key` may be sent only to pricing.example, not to evil.example")
        );
    }

    #[test]
    fn a_false_condition_skips() {
        let f = flow(SYNC);
        let (run, effects) = start(&f, json!({"sku": "a"}));
        let d = sent(&effects).id.clone();
        let resp = CapturedResponse::new(200, Headers::new(), r#"{"amount": 5}"#);
        let (run, effects) = advance(
            &f,
            run,
            Input::StepResult {
                step: "price".into(),
                delivery_id: d,
                outcome: StepOutcome::Succeeded { response: resp },
            },
        )
        .unwrap();
        assert_eq!(run.steps["big"]["status"], "skipped");
        let reply = effects.iter().find_map(|e| if let Effect::Reply(r) = e { Some(r) } else { None }).unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.as_deref(), Some(r#"{"amount":5,"tier":"none"}"#));
    }

    const FALLBACK: &str = r#"
id: fb
tenant: acme
trigger: { type: webhook, path: fb }
steps:
  - id: main
    type: http
    url: https://a.example/
    on_failure: { goto: backup }
  - id: done
    type: set
    vars: { ok: true }
  - id: backup
    type: http
    url: https://b.example/
    body: { json: { why: "{{ steps.main.error.message }}" } }
    wait_for_response: false
"#;

    #[test]
    fn on_failure_goto_runs_the_fallback_with_the_error() {
        let f = flow(FALLBACK);
        let (run, effects) = start(&f, json!({}));
        let d = sent(&effects).id.clone();
        let err = StepError { kind: FailureKind::Halted, message: "status 400 halts".into(), status: Some(400) };
        let (run, effects) = advance(
            &f,
            run,
            Input::StepResult {
                step: "main".into(),
                delivery_id: d,
                outcome: StepOutcome::Failed { error: err, response: None },
            },
        )
        .unwrap();
        let backup = sent(&effects);
        assert_eq!(backup.step, "backup");
        assert_eq!(backup.request.body.as_deref(), Some(r#"{"why":"status 400 halts"}"#));
        assert!(!backup.wait);
        assert_eq!(run.status, RunStatus::Succeeded);
        assert!(run.steps.get("done").is_none());
    }

    #[test]
    fn stop_fails_the_run_with_the_reason() {
        let f = flow(&FALLBACK.replace("on_failure: { goto: backup }", "on_failure: stop"));
        let (run, effects) = start(&f, json!({}));
        let d = sent(&effects).id.clone();
        let err =
            StepError { kind: FailureKind::Exhausted, message: "gave up after 15 attempts".into(), status: Some(503) };
        let (run, effects) = advance(
            &f,
            run,
            Input::StepResult {
                step: "main".into(),
                delivery_id: d,
                outcome: StepOutcome::Failed { error: err, response: None },
            },
        )
        .unwrap();
        assert_eq!(run.status, RunStatus::Failed { step: "main".into(), reason: "gave up after 15 attempts".into() });
        assert!(matches!(effects.last(), Some(Effect::Finished { .. })));
    }

    #[test]
    fn results_for_deliveries_not_awaited_are_ignored() {
        let f = flow(SYNC);
        let (run, _) = start(&f, json!({"sku": "a"}));
        let before = run.clone();
        let resp = CapturedResponse::new(200, Headers::new(), "");
        let (run, effects) = advance(
            &f,
            run,
            Input::StepResult {
                step: "price".into(),
                delivery_id: "other".into(),
                outcome: StepOutcome::Succeeded { response: resp },
            },
        )
        .unwrap();
        assert_eq!(run, before);
        assert!(matches!(&effects[0], Effect::Log(e) if e.decision == "ignored"));
        assert!(advance(&f, run, Input::Start).is_err());
    }

    #[test]
    fn a_render_failure_is_a_step_failure() {
        let f = flow(SYNC);
        // `trigger.body.sku` is missing: strict templates fail the step.
        let (run, effects) = start(&f, json!({}));
        assert!(matches!(run.status, RunStatus::Failed { ref step, .. } if step == "price"));
        assert!(effects.iter().all(|e| !matches!(e, Effect::Send(_))));
    }

    #[test]
    fn async_reply_defaults_to_202_with_the_event_id() {
        let f = flow(FALLBACK);
        let run = Run::new(&f.flow, "run_1", "evt_9", &request(json!({})));
        let r = async_reply(&f, &run).unwrap();
        assert_eq!(r.status, 202);
        assert_eq!(r.body.as_deref(), Some(r#"{"event_id":"evt_9"}"#));
    }

    #[test]
    fn goto_loops_are_bounded() {
        let text = r#"
id: loop
tenant: acme
trigger: { type: webhook, path: loop }
steps:
  - id: a
    type: set
    vars: { x: "{{ trigger.body.missing }}" }
    on_failure: { goto: b }
  - id: b
    type: set
    vars: { y: "{{ trigger.body.missing }}" }
    on_failure: { goto: a }
"#;
        let f = flow(text);
        let (run, _) = start(&f, json!({}));
        assert!(matches!(run.status, RunStatus::Failed { ref reason, .. } if reason.contains("goto loop")));
        assert_eq!(run.executed, MAX_STEPS_PER_RUN);
    }

    #[test]
    fn form_bodies_reach_templates_as_objects() {
        let req = InboundRequest {
            headers: [("content-type", "application/x-www-form-urlencoded")].into_iter().collect(),
            body: "a=1+2&b=%C3%A9".into(),
            ..Default::default()
        };
        assert_eq!(req.parsed_body(), json!({"a": "1 2", "b": "é"}));
    }
}
