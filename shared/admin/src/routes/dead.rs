//! `/v1/dead`: dead deliveries listed a page at a time, one replayed.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::json;

use crate::backend::{Backend, Page};

use super::Admin;
use super::plumbing::{ApiError, ApiResult, Query, ok};

pub(super) async fn list_dead<B: Backend>(State(a): State<Arc<Admin<B>>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let after = match (q.text("after_at"), q.text("after_id")) {
        (Some(_), Some(id)) => Some((q.int("after_at", 0, 0..=i64::MAX)?, id)),
        (None, None) => None,
        _ => {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "bad_parameter",
                "after_at",
                "`after_at` and `after_id` go together: the `at` and `delivery_id` of the last row of the page before",
            ));
        }
    };
    let page = Page {
        offset: q.int("offset", 0, 0..=i64::MAX)? as usize,
        limit: q.int("limit", 1_000, 1..=10_000)? as usize,
        after,
    };
    let (dead, total) = a.backend.dead(q.text("flow_id").as_deref(), page).await?;
    ok(StatusCode::OK, json!({ "dead": dead, "total": total }))
}

pub(super) async fn replay_dead<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path(delivery_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let tenant = Query::of(q).text("tenant").filter(|t| !t.is_empty());
    if !a.backend.replay(&delivery_id, tenant.as_deref()).await? {
        return Err(ApiError::not_found("such dead delivery"));
    }
    ok(StatusCode::ACCEPTED, json!({"replayed": delivery_id}))
}
