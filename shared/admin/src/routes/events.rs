//! `/v1/events`: publish an event, list events.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use hookflow_core::subscription::NewEvent;
use serde_json::json;

use crate::backend::{Backend, BackendError};

use super::Admin;
use super::plumbing::{ApiError, ApiResult, Query, body, ok};

pub(super) async fn publish_event<B: Backend>(State(a): State<Arc<Admin<B>>>, bytes: Bytes) -> ApiResult {
    let new: NewEvent = body(&bytes)?;
    let event = new.into_event(a.backend.now_ms()).map_err(ApiError::invalid)?;
    let id = event.id.clone();
    match a.backend.publish(event).await {
        Ok(p) => ok(
            StatusCode::ACCEPTED,
            json!({"id": id, "duplicate": false, "deliveries": p.deliveries, "filtered": p.filtered, "runs": p.runs}),
        ),
        Err(BackendError::Duplicate(id)) => {
            ok(StatusCode::OK, json!({"id": id, "duplicate": true, "deliveries": 0, "filtered": 0, "runs": []}))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn list_events<B: Backend>(State(a): State<Arc<Admin<B>>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let since = q.int("since", 0, 0..=i64::MAX)?;
    let limit = q.int("limit", 100, 1..=1000)? as usize;
    let events = a.backend.events(q.text("tenant").as_deref(), since, limit).await?;
    ok(StatusCode::OK, json!({ "events": events }))
}
