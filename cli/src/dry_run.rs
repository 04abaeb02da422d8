//! `hookflow test`: run a flow on a sample or recorded request without
//! sending anything, printing every decision as a JSON line.
//!
//! It drives the same state machine as the runtime ([`hookflow_core::run`]);
//! outbound steps get stand-in responses instead of network calls.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hookflow_core::headers::Headers;
use hookflow_core::run::{
    CapturedResponse, Effect, InboundRequest, Input, Run, RunStatus, advance, async_reply, final_outcome,
};
use hookflow_core::status::Verdict;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::flows;

/// A stand-in response file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseFile {
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    headers: serde_json::Map<String, Value>,
    #[serde(default)]
    body: Value,
}

fn ok() -> u16 {
    200
}

impl ResponseFile {
    fn capture(self) -> CapturedResponse {
        let headers: Headers = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), String::from)))
            .collect();
        CapturedResponse { status: self.status, headers, body: self.body }
    }
}

/// A recorded request file; `body` may be JSON or a string.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFile {
    #[serde(default = "post")]
    method: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    headers: serde_json::Map<String, Value>,
    #[serde(default)]
    query: serde_json::Map<String, Value>,
    #[serde(default)]
    body: Value,
}

fn post() -> String {
    "POST".into()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a valid file of this kind", path.display()))
}

fn emit(v: Value) {
    println!("{v}");
}

pub fn run(flow_path: &Path, sample: bool, request: Option<&Path>, responses: &[String]) -> Result<ExitCode> {
    let flow = match flows::load(flow_path)? {
        Ok(f) => f,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut stand_ins: HashMap<String, CapturedResponse> = HashMap::new();
    for r in responses {
        let (step, file) = r.split_once('=').with_context(|| format!("--response {r}: expected STEP=FILE"))?;
        if flow.flow.step_index(step).is_none() {
            bail!("--response {r}: the flow has no step `{step}`");
        }
        stand_ins.insert(step.to_string(), read_json::<ResponseFile>(Path::new(file))?.capture());
    }
    let inbound = if let Some(path) = request {
        let f: RequestFile = read_json(path)?;
        let mut headers: Headers = f
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), String::from)))
            .collect();
        let body = match f.body {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => {
                if headers.get("content-type").is_none() {
                    headers.push("Content-Type", "application/json");
                }
                other.to_string()
            }
        };
        InboundRequest { method: f.method, path: f.path, headers, query: f.query, body, ..Default::default() }
    } else if sample {
        let Some(body) = flow.flow.trigger.expect.as_ref().and_then(|e| e.body.as_ref()).and_then(|b| b.sample.clone())
        else {
            bail!("{}: --sample needs `trigger.expect.body.sample` in the flow", flow_path.display());
        };
        InboundRequest {
            method: flow.flow.trigger.methods[0].as_str().into(),
            headers: [("Content-Type", "application/json")].into_iter().collect(),
            body: body.to_string(),
            ..Default::default()
        }
    } else {
        bail!("give --sample or --request FILE");
    };
    let mut inbound = inbound;
    if inbound.path.is_empty() {
        inbound.path = flow.flow.trigger_path();
    }
    inbound.received_at = "1970-01-01T00:00:00Z".into();
    inbound.source_ip = "127.0.0.1".into();

    let run = Run::new(&flow.flow, "run_dryrun", "evt_dryrun", &inbound);
    if flow.flow.trigger.respond.mode == hookflow_core::flow::RespondMode::Async {
        let reply = async_reply(&flow, &run)?;
        emit(json!({"trigger": flow.flow.trigger_path(), "decision": "answer", "reply": reply}));
    }
    let (mut run, mut effects) = advance(&flow, run, Input::Start)?;
    loop {
        let mut next = None;
        for effect in effects {
            match effect {
                Effect::Log(event) => emit(serde_json::to_value(&event)?),
                Effect::Reply(reply) => emit(json!({"decision": "reply", "reply": reply})),
                Effect::Finished { status } => emit(json!({"run": status})),
                Effect::Send(d) => {
                    if let Some(sign) = &d.sign {
                        emit(json!({"step": d.step, "decision": "sign", "scheme": sign.scheme, "secret": sign.secret}));
                    }
                    if !d.wait {
                        continue;
                    }
                    let (response, assumed) = match stand_ins.get(&d.step) {
                        Some(r) => (r.clone(), false),
                        None => (CapturedResponse::new(200, Headers::new(), "{}"), true),
                    };
                    let verdict = d.status_policy.classify(response.status);
                    let mut line =
                        json!({"step": d.step, "decision": "response", "status": response.status, "verdict": verdict});
                    if assumed {
                        line["assumed"] = json!(true);
                    }
                    if verdict == Verdict::Retry {
                        line["note"] = json!(format!(
                            "would be retried up to {} attempts; the dry run treats retries as exhausted",
                            d.retry.max_attempts
                        ));
                    }
                    emit(line);
                    let outcome = final_outcome(verdict, response, d.retry.max_attempts);
                    next = Some(Input::StepResult { step: d.step.clone(), delivery_id: d.id.clone(), outcome });
                }
            }
        }
        match next {
            Some(input) => (run, effects) = advance(&flow, run, input)?,
            None => break,
        }
    }
    Ok(if matches!(run.status, RunStatus::Failed { .. }) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
