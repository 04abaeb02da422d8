//! `/v1/runs/{id}`: read a run with its log, replay it as a new run.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::backend::Backend;

use super::Admin;
use super::plumbing::{ApiError, ApiResult, ok, optional_body};

pub(super) async fn get_run<B: Backend>(State(a): State<Arc<Admin<B>>>, Path(id): Path<String>) -> ApiResult {
    let (run, log) = a.backend.run(&id).await?.ok_or_else(|| ApiError::not_found("such run"))?;
    ok(StatusCode::OK, json!({"run": run, "log": log}))
}

/// Replays a run: its request, as stored (credentials were stripped before
/// it was), accepted again by the flow's current version as a new run.
/// `key` names the replay: the same key again (a retry) is the same run.
pub(super) async fn replay_run<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Replay {
        #[serde(default)]
        key: Option<String>,
    }
    let want: Replay = optional_body(&bytes)?;
    if let Some(k) = &want.key
        && (k.is_empty() || k.len() > 64 || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "key",
            "`key` is 1 to 64 letters, digits, `-` or `_`",
        ));
    }
    let (run, _) = a.backend.run(&id).await?.ok_or_else(|| ApiError::not_found("such run"))?;
    let text = |k: &str| run.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (tenant, flow_id) = (text("tenant"), text("flow_id"));
    let request = run.get("trigger").and_then(hookflow_core::run::InboundRequest::from_trigger).ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, "conflict", "this run has no request to replay (an event started it)")
    })?;
    let flow = a.backend.current_flow(&tenant, &flow_id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("flow `{tenant}/{flow_id}` is gone: nothing to replay it with"),
        )
    })?;
    let now = a.backend.now_ms();
    let key = want.key.unwrap_or_else(|| now.to_string());
    let accepted = hookflow_core::inbound::replay(&flow, &request, &id, &key, now);
    let (run_id, event_id) = (accepted.run.id.clone(), accepted.run.event_id.clone());
    let new = a.backend.start_run(accepted).await?;
    ok(
        StatusCode::ACCEPTED,
        json!({"run_id": run_id, "event_id": event_id, "replay_of": id, "flow_version": flow.version, "new": new}),
    )
}
