//! Publishing an event: its row, one delivery per matching active
//! subscription, one run per flow it starts, as one unit of work.

use std::collections::HashSet;

use serde_json::json;

use crate::commit::NewJob;

use super::event::Event;
use super::record::{Status, Subscription};
use super::settings::Settings;

/// What publishing an event does, as one unit of work.
#[derive(Debug, Default)]
pub struct Publication {
    /// The event's row (its id's window), a delivery per matching active
    /// subscription, a run per flow it starts (with their first steps), and
    /// the log entries.
    pub outcome: crate::engine::Outcome,
    pub deliveries: usize,
    /// Subscriptions that select its type and whose filter left it out:
    /// no delivery, no queue message, counted here.
    pub filtered: usize,
    pub runs: Vec<String>,
    /// The subscriptions it delivers to (their ids).
    pub reached: HashSet<String>,
}

/// What a publish did, as its caller is told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Deliveries to subscriptions.
    pub deliveries: usize,
    /// Subscriptions whose filter left it out.
    pub filtered: usize,
    /// Runs of flows the event starts.
    pub runs: Vec<String>,
}

/// Publishes `event` to `subs` (any; only the tenant's active matching ones
/// receive it) and to `flows` (those whose event trigger selects it).
pub fn publish<'a, 'b>(
    event: &Event,
    subs: impl IntoIterator<Item = &'a Subscription>,
    flows: impl IntoIterator<Item = &'b crate::CompiledFlow>,
    settings: &Settings,
    now: i64,
) -> Publication {
    let mut p = Publication::default();
    let commit = &mut p.outcome.commit;
    commit.event = Some(crate::commit::EventRow::of(event, settings.idempotency));
    let body = event.envelope().to_string();
    let seen = std::cell::OnceCell::new();
    for s in subs.into_iter().filter(|s| selects(s, event)) {
        if !s.passes_seen(&seen, event) {
            p.filtered += 1;
            continue;
        }
        commit.jobs.push(s.event_job(event, &body, settings, now));
        p.reached.insert(s.id.clone());
    }
    p.deliveries = commit.jobs.len();
    let request = crate::run::InboundRequest {
        method: "EVENT".into(),
        path: event.kind.clone(),
        body: event.envelope().to_string(),
        received_at: crate::duration::rfc3339(now),
        ..Default::default()
    };
    for flow in flows {
        if flow.flow.tenant != event.tenant || !flow.flow.started_by(&event.kind) {
            continue;
        }
        let run_id = format!("run_{}", uuid::Uuid::now_v7().simple());
        let accepted = crate::inbound::accept(flow, &request, (&run_id, &event.id), now, None);
        p.outcome.commit.merge(accepted.outcome.commit);
        p.outcome.lines.extend(accepted.outcome.lines);
        p.runs.push(run_id);
    }
    p.outcome.commit.log.push(crate::commit::LogEntry {
        at: now,
        kind: crate::commit::EntryKind::Event,
        tenant: Some(event.tenant.clone()),
        event_id: Some(event.id.clone()),
        outcome: Some("published".into()),
        detail: json!({"type": event.kind, "deliveries": p.deliveries, "filtered": p.filtered, "runs": p.runs}),
        ..Default::default()
    });
    p.outcome.lines.push(crate::engine::LogLine {
        level: crate::engine::Level::Info,
        message: "event published".into(),
        fields: json!({"tenant": event.tenant, "event_id": event.id, "type": event.kind,
                       "deliveries": p.deliveries, "filtered": p.filtered, "runs": p.runs.len()}),
    });
    p
}

/// One delivery job per active subscription of the event's tenant that
/// takes it (its type, its filter as it is now), with the body serialised
/// once.
pub fn fan_out<'a>(
    event: &Event,
    subs: impl IntoIterator<Item = &'a Subscription>,
    settings: &Settings,
    now: i64,
) -> Vec<NewJob> {
    let body = event.envelope().to_string();
    let seen = std::cell::OnceCell::new();
    subs.into_iter()
        .filter(|s| selects(s, event) && s.passes_seen(&seen, event))
        .map(|s| s.event_job(event, &body, settings, now))
        .collect()
}

/// Whether `sub` would receive `event` but for its filter: of its tenant,
/// selecting its type, and active when the event was stamped — active, or disabled since (a
/// publish that read it just after a disable: the delivery is dead at its
/// gate, replayable like the others queued when it was disabled; an
/// enable's replay starts at the disable).
fn selects(sub: &Subscription, event: &Event) -> bool {
    let was_active = match sub.status {
        Status::Active => true,
        Status::Disabled => sub.disabled_at.is_some_and(|at| at > event.at),
        _ => false,
    };
    was_active && sub.tenant == event.tenant && sub.selects(&event.kind)
}

/// The deliveries a publish's first read of the subscriptions missed,
/// from `subs` read again after its write (consistently): the ones that
/// receive the event and are not in `reached` (what the publish delivered
/// to). A repeat of a publish does not know what its first call reached:
/// with `reached` `None` it is the ones that became active since the event
/// was stamped (one active before was reached), and a subscription reached
/// both ways has one `webhook-id`.
///
/// This is what makes an enable's replay whole whatever a publish's
/// timing: an enable written before this read is seen by it; one written
/// after it finds the event written, and replays it.
pub fn missed<'a>(
    event: &Event,
    subs: impl IntoIterator<Item = &'a Subscription>,
    reached: Option<&HashSet<String>>,
    settings: &Settings,
    now: i64,
) -> Vec<NewJob> {
    let late = subs.into_iter().filter(|s| match reached {
        Some(r) => !r.contains(&s.id),
        None => s.activated_at >= event.at,
    });
    fan_out(event, late, settings, now)
}
