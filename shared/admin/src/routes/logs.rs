//! `GET /v1/logs`: the request log by tenant, flow, run, event or
//! subscription, by time or by `seq`, with the tail's count; `GET
//! /v1/requests`: the same log one row a request; `GET /v1/stats`: the
//! log summed up.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde_json::json;

use hookflow_core::requests::{self, RequestRow};
use hookflow_core::stats::StatsQuery;

use crate::backend::{Backend, LogFilter};

use super::Admin;
use super::plumbing::{ApiError, ApiResult, Query, ok};

pub(super) async fn logs<B: Backend>(State(a): State<Arc<Admin<B>>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let query = LogFilter {
        tenant: q.text("tenant"),
        flow_id: q.text("flow_id"),
        run_id: q.text("run_id"),
        event_id: q.text("event_id"),
        subscription_id: q.text("subscription_id"),
        since: q.int("since", 0, 0..=i64::MAX)?,
        until: q.text("until").map(|_| q.int("until", 0, 0..=i64::MAX)).transpose()?,
        after_seq: q.text("after_seq").map(|_| q.int("after_seq", 0, 0..=i64::MAX)).transpose()?,
        upto_seq: q.text("before_seq").map(|_| q.int("before_seq", 1, 1..=i64::MAX).map(|n| n - 1)).transpose()?,
        failed_only: q.flag("failed")?,
        limit: Some(q.int("limit", 500, 1..=10_000)? as usize),
    };
    let entries = a.backend.logs(query.clone()).await?;
    // The tail's count: every match after the cursor up to the newest entry
    // answered (the store commits in `seq` order: none below it is late).
    let count = match (query.after_seq, entries.iter().filter_map(|e| e.seq).max()) {
        (Some(_), Some(newest)) => a.backend.count_logs(LogFilter { upto_seq: Some(newest), ..query }).await?,
        (Some(_), None) if entries.is_empty() => Some(0),
        _ => None,
    };
    let mut answer = json!({ "entries": entries });
    if let Some(n) = count {
        answer["count"] = json!(n);
    }
    ok(StatusCode::OK, answer)
}

/// The most reads of one `GET /v1/requests` that keeps only failures:
/// past them it answers what it found, with where to go on.
const FAILED_READS: usize = 5;

pub(super) async fn list_requests<B: Backend>(State(a): State<Arc<Admin<B>>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let limit = q.int("limit", 50, 1..=500)? as usize;
    let failed = q.flag("failed")?;
    let mut read = LogFilter {
        tenant: q.text("tenant"),
        flow_id: q.text("flow_id"),
        run_id: q.text("run_id"),
        since: q.int("since", 0, 0..=i64::MAX)?,
        until: q.text("until").map(|_| q.int("until", 0, 0..=i64::MAX)).transpose()?,
        upto_seq: q.text("before_seq").map(|_| q.int("before_seq", 1, 1..=i64::MAX).map(|n| n - 1)).transpose()?,
        limit: Some(limit),
        ..Default::default()
    };
    let mut rows: Vec<RequestRow> = Vec::new();
    let mut next = None;
    for _ in 0..if failed { FAILED_READS } else { 1 } {
        let page = requests::fold(&a.backend.requests(read.clone()).await?);
        // A full read may have more behind it.
        let full = page.len() >= limit;
        let one_ms = page.first().map(|r| r.at) == page.last().map(|r| r.at);
        next = None;
        for (i, row) in page.iter().enumerate().take(limit) {
            if !failed || row.is_failure() {
                rows.push(row.clone());
            }
            if i + 1 == limit.min(page.len()) || rows.len() == limit {
                let more = i + 1 < page.len() || full;
                next = more.then(|| cursor(row, one_ms));
                break;
            }
        }
        match &next {
            Some(Next::Until(u)) if rows.len() < limit => read.until = Some(*u),
            Some(Next::BeforeSeq(s)) if rows.len() < limit => read.upto_seq = Some(s - 1),
            _ => break,
        }
    }
    let next = next.map(|n| match n {
        Next::Until(u) => json!({"until": u}),
        Next::BeforeSeq(s) => json!({"before_seq": s}),
    });
    ok(StatusCode::OK, json!({ "requests": rows, "next": next }))
}

/// Where the next page of requests starts.
enum Next {
    /// Before this `seq` (exact, where rows carry one).
    BeforeSeq(i64),
    /// Before this time (ms): the row's own millisecond again, so none of
    /// it is skipped, unless a whole page was of one millisecond.
    Until(i64),
}

fn cursor(row: &RequestRow, one_ms: bool) -> Next {
    match row.seq {
        Some(seq) => Next::BeforeSeq(seq),
        None if one_ms => Next::Until(row.at),
        None => Next::Until(row.at + 1),
    }
}

pub(super) async fn stats<B: Backend>(State(a): State<Arc<Admin<B>>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let until = q.int("until", a.backend.now_ms(), 1..=i64::MAX)?;
    let since = q.int("since", until.saturating_sub(86_400_000).max(0), 0..=i64::MAX)?;
    let bucket = q.int("bucket", 3_600_000, 1_000..=i64::MAX)?;
    let query = StatsQuery::new(q.text("tenant").filter(|t| !t.is_empty()), since, until, bucket).map_err(|why| {
        let field = if why.contains("`until`") { "until" } else { "bucket" };
        ApiError::field(StatusCode::BAD_REQUEST, "bad_parameter", field, why)
    })?;
    ok(StatusCode::OK, json!(a.backend.stats(query).await?))
}
