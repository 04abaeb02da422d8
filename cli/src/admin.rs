//! `hookflow subscriptions …` and `hookflow events …`: the admin API's
//! routes from the shell, the way the `stripe` and `svix` CLIs work — over
//! HTTP to a running `hookflow dev` (its admin token), or, for a
//! deployment (`--stack`/`--table`), in this process with the caller's own
//! AWS credentials, as `hookflow console --stack` does. Either way the
//! same routes answer, with the same checks and errors.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::console::From;

/// Where the admin API is.
pub enum Target {
    /// A running `hookflow dev`: its address and admin token.
    Dev { url: String, token: Option<String> },
    /// A deployment, in process.
    Deployment { from: From, region: Option<String> },
}

/// One admin API request.
pub struct Call {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
}

impl Call {
    pub fn get(path: impl Into<String>) -> Self {
        Call { method: "GET", path: path.into(), body: None }
    }

    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Call { method: "POST", path: path.into(), body: Some(body) }
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Call { method: "DELETE", path: path.into(), body: None }
    }
}

/// The answer: its status and JSON (`null` when it had no body).
async fn send(target: Target, call: Call) -> Result<(u16, Value)> {
    match target {
        Target::Dev { url, token } => {
            let token = token.filter(|t| !t.trim().is_empty()).context(
                "give the admin token `hookflow dev` printed or was given (--admin-token, or HOOKFLOW_ADMIN_TOKEN)",
            )?;
            let probe = hookflow_io::probe::Probe::new()?;
            let headers = [
                ("Authorization".to_string(), format!("Bearer {token}")),
                ("Content-Type".into(), "application/json".into()),
            ];
            let body = call.body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
            let at = format!("{}{}", url.trim_end_matches('/'), call.path);
            let answer = probe.send(call.method, &at, &headers, body).await.map_err(|e| {
                anyhow::anyhow!("{e} (is `hookflow dev` running there? --url gives its address, HOST:PORT or a URL)")
            })?;
            let value = if answer.body.trim().is_empty() { Value::Null } else { serde_json::from_str(&answer.body)? };
            Ok((answer.status, value))
        }
        Target::Deployment { from, region } => {
            let token = hookflow_core::signature::WebhookSecret::generate().expose().replacen("whsec_", "hfa_", 1);
            let (router, _, _) = crate::console::deployment(&from, region, &token).await?;
            let api = hookflow_console::Api::new(router, token);
            let method: axum::http::Method = call.method.parse().context("a method")?;
            match api.call(method, &call.path, call.body.as_ref()).await {
                Ok(v) => Ok((200, v)),
                Err(f) => Ok((f.status.as_u16(), json!({"error": {"message": f.message, "problems": f.problems}}))),
            }
        }
    }
}

/// How an answer is printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Print {
    /// The JSON, pretty.
    Json,
    /// A subscriptions list, a line each (`--json`: the JSON).
    Subscriptions,
    /// An events list, a line each.
    Events,
}

/// Makes `call` and prints its answer; an error answer is printed to
/// stderr with each refused field, and exits 1.
pub fn run(target: Target, call: Call, print: Print) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, answer) = rt.block_on(send(target, call))?;
    if !(200..300).contains(&status) {
        let message = answer.pointer("/error/message").and_then(Value::as_str).unwrap_or("no message");
        eprintln!("{status}: {message}");
        for p in answer.pointer("/error/problems").and_then(Value::as_array).into_iter().flatten() {
            eprintln!("  {}: {}", p["field"].as_str().unwrap_or(""), p["message"].as_str().unwrap_or(""));
        }
        return Ok(ExitCode::FAILURE);
    }
    let text = |v: &Value, k: &str| v.get(k).map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string));
    match print {
        Print::Json => out!("{}", serde_json::to_string_pretty(&answer)?),
        Print::Subscriptions => {
            for s in answer["subscriptions"].as_array().into_iter().flatten() {
                let types: Vec<&str> =
                    s["event_types"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                out!(
                    "{}  {:<9} {}  {}",
                    text(s, "id").unwrap_or_default(),
                    text(s, "status").unwrap_or_default(),
                    text(s, "url").unwrap_or_default(),
                    types.join(",")
                );
            }
        }
        Print::Events => {
            for e in answer["events"].as_array().into_iter().flatten() {
                out!(
                    "{}  {}  {}",
                    text(e, "id").unwrap_or_default(),
                    text(e, "type").unwrap_or_default(),
                    e.get("data").map(Value::to_string).unwrap_or_default()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
