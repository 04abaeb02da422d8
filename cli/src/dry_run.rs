//! `hookflow test`: run a flow on a sample or recorded request without
//! sending anything, printing every decision as a JSON line.
//!
//! It drives the same state machine as the runtime, through
//! [`hookflow_core::dry::dry_run`] (which the admin API's test of a flow
//! uses too); outbound steps get stand-in responses instead of network
//! calls.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hookflow_core::run::CapturedResponse;
use serde::Deserialize;
use serde_json::Value;

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
        hookflow_core::dry::response_of(self.status, &self.headers, self.body)
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

pub fn run(flow_path: &Path, sample: bool, request: Option<&Path>, responses: &[String]) -> Result<ExitCode> {
    let flow = match flows::load(flow_path)? {
        Ok(f) => f,
        Err(e) => {
            out!("{e}");
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
        let mut r = hookflow_core::dry::request_of(Some(f.method), &f.headers, f.query, f.body);
        r.path = f.path;
        r
    } else if sample {
        match hookflow_core::dry::sample_request(&flow) {
            Some(r) => r,
            None => bail!("{}: --sample needs `trigger.expect.body.sample` in the flow", flow_path.display()),
        }
    } else {
        bail!("give --sample or --request FILE");
    };
    let done = hookflow_core::dry::dry_run(&flow, inbound, &stand_ins)?;
    for line in done.lines {
        out!("{line}");
    }
    Ok(if done.failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
