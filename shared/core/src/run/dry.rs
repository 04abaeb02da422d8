//! A dry run: a flow driven through the run state machine on one request,
//! every outbound step answered by a stand-in instead of the network —
//! what `hookflow test` prints and the admin API's
//! `POST /v1/flows/{tenant}/{id}/test` answers. Nothing is sent or
//! stored; secrets stay placeholders (a rendered request shows `***`).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::headers::Headers;
use crate::run::{
    CapturedResponse, Effect, InboundRequest, Input, Run, RunStatus, advance, async_reply, final_outcome,
};
use crate::status::Verdict;
use crate::validate::CompiledFlow;

/// What a dry run decided, in order, and whether its run failed.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRun {
    /// One JSON object a decision: the answer, each step's rendered request
    /// and stand-in response, the run's end.
    pub lines: Vec<Value>,
    pub failed: bool,
}

fn text_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), String::from)
}

/// A request given as JSON parts (a request file, the admin API's
/// `request`): header and query values as text; a body that is JSON but
/// not a string is sent as JSON, with that content type unless one is
/// given.
pub fn request_of(
    method: Option<String>,
    headers: &Map<String, Value>,
    query: Map<String, Value>,
    body: Value,
) -> InboundRequest {
    let mut headers: Headers = headers.iter().map(|(k, v)| (k.clone(), text_of(v))).collect();
    let body = match body {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => {
            if headers.get("content-type").is_none() {
                headers.push("Content-Type", "application/json");
            }
            other.to_string()
        }
    };
    InboundRequest { method: method.unwrap_or_else(|| "POST".into()), headers, query, body, ..Default::default() }
}

/// A stand-in response given as JSON parts.
pub fn response_of(status: u16, headers: &Map<String, Value>, body: Value) -> CapturedResponse {
    CapturedResponse { status, headers: headers.iter().map(|(k, v)| (k.clone(), text_of(v))).collect(), body }
}

/// The request a flow's sample makes (`trigger.expect.body.sample`, as
/// JSON, with the trigger's first method), if the flow has one.
pub fn sample_request(flow: &CompiledFlow) -> Option<InboundRequest> {
    let body = flow.flow.trigger.expect.as_ref()?.body.as_ref()?.sample.clone()?;
    Some(InboundRequest {
        method: flow.flow.trigger.methods.first().map_or("POST", |m| m.as_str()).into(),
        headers: [("Content-Type", "application/json")].into_iter().collect::<Headers>(),
        body: body.to_string(),
        ..Default::default()
    })
}

/// The response a step declares for dry runs (`sample`), if any.
fn step_sample(flow: &CompiledFlow, step: &str) -> Option<CapturedResponse> {
    let action = &flow.flow.steps.iter().find(|s| s.id == step)?.action;
    let sample = action.http()?.sample.clone()?;
    Some(CapturedResponse {
        status: sample.status,
        headers: sample.headers.into_iter().collect(),
        body: sample.body.unwrap_or(Value::Null),
    })
}

/// Drives `flow` on `inbound`; a step with no stand-in in `stand_ins` (by
/// step id) is answered with its `sample`, else `200 {}` (the line says
/// `assumed`: `sample` or `default`). A step whose stand-in would be
/// retried is taken as out of attempts.
pub fn dry_run(
    flow: &CompiledFlow,
    mut inbound: InboundRequest,
    stand_ins: &HashMap<String, CapturedResponse>,
) -> Result<DryRun, Error> {
    if inbound.path.is_empty() {
        inbound.path = flow.flow.trigger_path();
    }
    inbound.received_at = "1970-01-01T00:00:00Z".into();
    inbound.source_ip = "127.0.0.1".into();
    let mut lines = Vec::new();
    let run = Run::new(&flow.flow, "run_dryrun", "evt_dryrun", &inbound);
    if flow.flow.trigger.respond.mode == crate::flow::RespondMode::Async {
        let reply = async_reply(flow, &run)?;
        lines.push(json!({"trigger": flow.flow.trigger_path(), "decision": "answer", "reply": reply}));
    }
    let (mut run, mut effects) = advance(flow, run, Input::Start)?;
    loop {
        let mut next = None;
        for effect in effects {
            match effect {
                Effect::Log(event) => lines.push(serde_json::to_value(&event).unwrap_or(Value::Null)),
                Effect::Reply(reply) => lines.push(json!({"decision": "reply", "reply": reply})),
                Effect::Finished { status } => lines.push(json!({"run": status})),
                Effect::Send(d) => {
                    if let Some(sign) = &d.sign {
                        lines.push(
                            json!({"step": d.step, "decision": "sign", "scheme": sign.scheme, "secret": sign.secret}),
                        );
                    }
                    if !d.wait {
                        continue;
                    }
                    let (response, assumed) = match stand_ins.get(&d.step) {
                        Some(r) => (r.clone(), None),
                        None => match step_sample(flow, &d.step) {
                            Some(r) => (r, Some("sample")),
                            // An AWS step's answer has its shape: a message id.
                            None if d.to_aws() => {
                                let body = r#"{"message_id":"00000000-0000-0000-0000-000000000000"}"#;
                                (CapturedResponse::new(200, Headers::new(), body), Some("default"))
                            }
                            None => (CapturedResponse::new(200, Headers::new(), "{}"), Some("default")),
                        },
                    };
                    let verdict = d.status_policy.classify(response.status);
                    let mut line =
                        json!({"step": d.step, "decision": "response", "status": response.status, "verdict": verdict});
                    if let Some(from) = assumed {
                        line["assumed"] = json!(from);
                    }
                    if verdict == Verdict::Retry {
                        line["note"] = json!(format!(
                            "would be retried up to {} attempts; the dry run treats retries as exhausted",
                            d.retry.max_attempts
                        ));
                    }
                    lines.push(line);
                    let outcome = final_outcome(verdict, response, d.retry.max_attempts);
                    next = Some(Input::StepResult { step: d.step.clone(), delivery_id: d.id.clone(), outcome });
                }
            }
        }
        match next {
            Some(input) => (run, effects) = advance(flow, run, input)?,
            None => break,
        }
    }
    Ok(DryRun { lines, failed: matches!(run.status, RunStatus::Failed { .. }) })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const FLOW: &str = "id: f\ntenant: t\ntrigger:\n  type: webhook\n  path: p\n  expect:\n    body:\n      sample: { id: 7 }\n\
        steps:\n  - id: send\n    type: http\n    url: https://example.com/in\n    headers: { Authorization: \"Bearer {{ secrets.token }}\" }\n    \
        body: { json: { order: \"{{ trigger.body.id }}\" } }\n";

    #[test]
    fn a_dry_run_renders_each_request_with_secrets_hidden_and_takes_the_stand_ins() {
        let flow = crate::load_flow(Path::new("f.yaml"), FLOW).unwrap();
        let sample = sample_request(&flow).expect("the flow has a sample");
        let ok = dry_run(&flow, sample.clone(), &HashMap::new()).unwrap();
        let text = serde_json::to_string(&ok.lines).unwrap();
        assert!(text.contains("\"decision\":\"send\"") && text.contains("***"), "{text}");
        assert!(text.contains(r#"{\"order\":7}"#) || text.contains(r#"\"order\":7"#), "{text}");
        assert!(!ok.failed);
        let halt = HashMap::from([("send".to_string(), CapturedResponse::new(400, Headers::new(), "{}"))]);
        let failed = dry_run(&flow, sample, &halt).unwrap();
        assert!(failed.failed, "{:?}", failed.lines);
        let with_sample = FLOW.to_string() + "    sample: { status: 404, body: { gone: true } }\n";
        let flow = crate::load_flow(Path::new("f.yaml"), &with_sample).unwrap();
        let sampled = dry_run(&flow, sample_request(&flow).unwrap(), &HashMap::new()).unwrap();
        let response = sampled.lines.iter().find(|l| l["decision"] == "response").unwrap();
        assert_eq!((response["status"].as_u64(), response["assumed"].as_str()), (Some(404), Some("sample")));
        assert!(sampled.failed, "a sampled 404 is a halt: {:?}", sampled.lines);
        let none =
            crate::load_flow(Path::new("f.yaml"), &FLOW.replace("  expect:\n    body:\n      sample: { id: 7 }\n", ""));
        assert!(sample_request(&none.unwrap()).is_none());
    }
}
