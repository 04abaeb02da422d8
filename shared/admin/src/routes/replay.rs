//! `POST /v1/subscriptions/{id}/enable`: a disabled subscription enabled
//! and, with `replay: true`, the events it missed queued a page at a time
//! from a cursor kept in the subscription, so that a request stopped
//! anywhere resumes where nothing before the cursor is unsent.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookflow_core::subscription::{Event, Replay, Status, Subscription};
use serde_json::json;

use crate::backend::{Backend, BackendError};

use super::Admin;
use super::plumbing::{ApiError, ApiResult, ok, optional_body};
use super::subscriptions::{subscription, view};

/// How many events a replay reads, and queues, at a time.
const REPLAY_PAGE: usize = 1_000;
/// How many missed events an enable without replay counts, at most.
const COUNT_MAX: usize = 10_000;
/// How long one request replays before it answers with the rest pending
/// (the AWS admin function answers within API Gateway's 29 s).
const REPLAY_BUDGET_MS: i64 = 10_000;

/// Enables a disabled subscription and, with `replay: true`, queues the
/// matching events it missed: see [`replay`]. A request that stops anywhere
/// (its time budget, a failed send, a failed write) leaves the cursor where
/// nothing before it is unsent, and the same request again resumes there.
pub(super) async fn enable_subscription<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Enable {
        #[serde(default)]
        replay: bool,
        #[serde(default)]
        since: Option<i64>,
    }
    let want: Enable = optional_body(&bytes)?;
    let sub = subscription(&a, &id).await?;
    let started = a.backend.now_ms();
    let settle = a.backend.settings().replay_settle.as_millis() as i64;
    if let Some(since) = want.since {
        let refuse = |m: &str| Err(ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "since", m));
        if !want.replay {
            return refuse("`since` chooses where a replay starts: send it with `replay: true`");
        }
        if !(0..=started).contains(&since) {
            return refuse("`since` must be a time in the past (ms since the epoch)");
        }
    }
    let (sub, since) = match (sub.status, sub.replay, want.since) {
        // A recovery: every selected event since the time chosen, sent
        // again (same `webhook-id`s), disabled or not.
        (Status::Disabled | Status::Active, None, Some(since)) | (Status::Disabled, Some(_), Some(since)) => {
            if sub.status == Status::Disabled {
                a.backend.flush_disabled(&sub).await?;
            }
            let recovering = sub.recovering(since, started + settle, started);
            let from = recovering.replay.map_or(since, |r| r.from);
            a.backend.save_subscription(&recovering, Some(sub.updated_at), Vec::new()).await?;
            (widen(&a, recovering, settle).await?, from)
        }
        (Status::Active, Some(_), Some(_)) => {
            return Err(ApiError::field(
                StatusCode::CONFLICT,
                "conflict",
                "since",
                "a replay of this subscription is unfinished: finish it first (`replay: true` without `since`)",
            ));
        }
        (Status::Disabled, _, None) => {
            a.backend.flush_disabled(&sub).await?;
            let since = sub.missed_since();
            let enabled = sub.enabled(started, want.replay.then_some(started + settle));
            a.backend.save_subscription(&enabled, Some(sub.updated_at), Vec::new()).await?;
            (widen(&a, enabled, settle).await?, since)
        }
        // An earlier replay stopped before its end: this one goes on.
        (Status::Active, Some(r), None) if want.replay => (sub, r.next),
        (status, _, _) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "the subscription is {}; only a disabled one can be enabled (or an active one whose replay \
                     is unfinished, with `replay: true`; or, to recover, a disabled or active one with `replay: true` and `since`)",
                    status.as_str()
                ),
            ));
        }
    };
    let (sub, missed, replayed) = match sub.replay {
        Some(_) => {
            let (sub, n) = replay(&a, sub, started).await?;
            (sub, n, n)
        }
        None => {
            let events = a.backend.events(Some(&sub.tenant), since, COUNT_MAX).await?;
            let missed = events.iter().filter(|e| sub.takes(e)).count();
            (sub, missed, 0)
        }
    };
    ok(
        StatusCode::OK,
        json!({"subscription": view(&sub), "missed": missed, "missed_since": since, "replayed": replayed,
               "replay_pending": sub.replay.is_some()}),
    )
}

/// Queues the events of `sub`'s [`Replay`] window a page at a time (read
/// from the cursor, queued, then the cursor moved past them), until the
/// window is done or the time budget is spent; the subscription as saved
/// last, and how many deliveries were queued.
///
/// A publish stamps its event, reads the subscriptions, then writes the
/// event: one in flight when the subscription was enabled can miss the
/// fan-out and land after the first read. So the window runs `settle`
/// past the enable (`until`), and once read to its end it is read once
/// more (`last_pass`) from `settle` before the enable, after `until +
/// settle`: events sent twice (same `webhook-id`s), none skipped.
async fn replay<B: Backend>(
    a: &Admin<B>,
    mut sub: Subscription,
    started: i64,
) -> Result<(Subscription, usize), ApiError> {
    let Some(Replay { until, .. }) = sub.replay else { return Ok((sub, 0)) };
    let settle = a.backend.settings().replay_settle.as_millis() as i64;
    // Events this request queued: a read that meets them again (its first
    // event, the last pass) does not queue them twice.
    let mut queued = std::collections::HashSet::new();
    let mut limit = REPLAY_PAGE;
    // Done, another window's (finished elsewhere, or a disable and enable
    // began another), or no longer active: stop.
    while let Some(r) = sub.replay.filter(|r| r.until == until && sub.status == Status::Active) {
        // The last pass reads only once publishes in flight have landed
        // (a request resumed early waits too).
        if r.last_pass {
            let now = a.backend.now_ms();
            // At most the settling time twice, whatever the clock did.
            let wait = (until + settle - now).clamp(0, 2 * settle);
            if wait > 0 && now + wait - started >= REPLAY_BUDGET_MS {
                break;
            }
            if wait > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
            }
        }
        let read = a.backend.events(Some(&sub.tenant), r.next, limit).await?;
        let last = read.last().map(|e| e.at);
        let cut = read.len() == limit && last.is_some_and(|at| at < until);
        if cut && last == Some(r.next) {
            // A whole read at one millisecond: read more of it at once.
            limit *= 2;
            continue;
        }
        let page: Vec<&Event> =
            read.iter().filter(|e| e.at < until && sub.takes(e) && !queued.contains(&(e.at, e.id.clone()))).collect();
        if !page.is_empty() {
            let now = a.backend.now_ms();
            // Jobs of this window's own (the delivery, its `webhook-id`,
            // unchanged): the FIFO queue drops a message whose
            // deduplication id it saw in the last five minutes, and the
            // original's may be that recent.
            let jobs = page
                .iter()
                .map(|e| {
                    let mut job = sub.event_job(e, &e.envelope().to_string(), a.backend.settings(), now);
                    job.id = format!("d:replay:{until}:{}", job.id.trim_start_matches("d:"));
                    job
                })
                .collect();
            a.backend.queue(jobs).await?;
            queued.extend(page.iter().map(|e| (e.at, e.id.clone())));
        }
        let next = match (last, cut, r.last_pass) {
            // More of the window: on from the last event read (its
            // millisecond is read again).
            (Some(at), true, _) => Some(Replay { next: at, ..r }),
            // Read to its end: once more from `settle` before the enable
            // (or past this read, if earlier), once publishes in flight
            // have landed.
            (_, _, false) => {
                let past = last.map_or(r.next, |at| at + 1);
                Some(Replay { next: past.min((until - 2 * settle).max(r.from)), last_pass: true, ..r })
            }
            (_, _, true) => None,
        };
        sub = advance(a, sub, next, until).await?;
        if a.backend.now_ms() - started >= REPLAY_BUDGET_MS {
            break;
        }
    }
    Ok((sub, queued.len()))
}

/// Ends the replay window of `sub` (just enabled) `settle` past when its
/// enable was seen written, if its write took so long that the window
/// (`settle` past the enable's start) ended first: a publish stamped
/// before that moment may not have seen the enable in either of its
/// reads, and its event must be in the window. (A second write, only
/// then.)
async fn widen<B: Backend>(a: &Admin<B>, sub: Subscription, settle: i64) -> Result<Subscription, ApiError> {
    let seen = a.backend.now_ms();
    let Some(r) = sub.replay.filter(|r| seen >= r.until) else { return Ok(sub) };
    let mut wider = sub.clone();
    wider.replay = Some(Replay { until: seen + settle, ..r });
    wider.updated_at = seen.max(sub.updated_at + 1);
    a.backend.save_subscription(&wider, Some(sub.updated_at), Vec::new()).await?;
    Ok(wider)
}

/// Saves the replay's cursor as `next` (`None`: done) over whatever else
/// changed meanwhile (a delivery's health change). A cursor of another
/// window (the replay finished elsewhere, or a new one began) is left
/// alone.
async fn advance<B: Backend>(
    a: &Admin<B>,
    mut sub: Subscription,
    next: Option<Replay>,
    until: i64,
) -> Result<Subscription, ApiError> {
    for _ in 0..3 {
        if sub.replay.is_none_or(|r| r.until != until) {
            return Ok(sub);
        }
        let prev = sub.updated_at;
        let mut moved = sub.clone();
        moved.replay = next;
        moved.updated_at = a.backend.now_ms().max(prev + 1);
        match a.backend.save_subscription(&moved, Some(prev), Vec::new()).await {
            Ok(()) => return Ok(moved),
            Err(BackendError::Conflict { .. }) => sub = subscription(a, &sub.id).await?,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "the subscription kept changing during the replay; send the same request again to go on",
    ))
}
