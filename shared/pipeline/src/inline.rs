//! A sync trigger answered from the request itself: the steps the run
//! waits on are sent inline, one attempt each, each result fed back to the
//! run, until it answers, ends, needs a retry, or `respond.timeout`
//! passes. What is left (retries, later steps) goes to the queues with the
//! commit. The ingress Lambda answers sync triggers this way (it has no
//! workers to wait for); `hookflow dev` lets its workers run the steps and
//! waits for the reply.

use hookflow_core::CompiledFlow;
use hookflow_core::commit::{JobKind, NewJob, Payload, RunJob};
use hookflow_core::engine::{self, Outcome};
use hookflow_core::inbound::{Accepted, DEFAULT_SYNC_TIMEOUT};
use hookflow_core::ports::{Clock, SecretStore, Sender};
use hookflow_core::run::{Reply, Run, RunStatus, advance};

use crate::inbound::Admitted;
use crate::limits::{Admission, Limiter};

/// Settles `accepted` before it is stored: for a sync flow that waits on a
/// step, runs it inline within `respond.timeout`; the answer is recorded
/// under the idempotency scope `idem` (scope, expiry) when there is one.
/// Returns the outcome to store and the answer.
pub async fn settle(
    secrets: &impl SecretStore,
    sender: &impl Sender,
    limiter: &impl Limiter,
    clock: &impl Clock,
    flow: &CompiledFlow,
    accepted: Accepted,
    idem: Option<&(String, i64)>,
) -> (Outcome, Admitted) {
    let Accepted { mut run, mut outcome, mut reply, waits } = accepted;
    let mut timed_out = false;
    if waits {
        let timeout = flow.flow.trigger.respond.timeout.map_or(DEFAULT_SYNC_TIMEOUT, |t| t.get());
        let deadline = tokio::time::Instant::now() + timeout;
        let ports = Inline { secrets, sender, limiter, clock };
        reply = run_inline(&ports, flow, &mut run, &mut outcome, deadline).await;
        timed_out = reply.is_none() && !run.status.is_finished();
        // The key keeps the answer, a 500 or 504 too: a retry with it gets
        // that again, not a second run.
        if let Some((scope, expires)) = idem {
            let answer = hookflow_core::inbound::answer(reply.clone(), timed_out, &run.event_id);
            outcome.commit.idempotency =
                Some((scope.clone(), serde_json::to_string(&answer).unwrap_or_default(), *expires));
        }
    }
    (outcome, Admitted { reply, timed_out })
}

/// What the inline steps go through.
struct Inline<'a, S, T, L, C> {
    secrets: &'a S,
    sender: &'a T,
    limiter: &'a L,
    clock: &'a C,
}

/// Sends the steps a sync run waits on, one attempt each, feeding each
/// result back to the run, until it answers, ends, needs a retry, or the
/// deadline passes. Whatever is left stays in `out` for the queues. A step
/// to a limited host waits for its slot and place here while the answer's
/// time allows, else goes to the queue holding its slot.
async fn run_inline<S: SecretStore, T: Sender, L: Limiter, C: Clock>(
    ports: &Inline<'_, S, T, L, C>,
    flow: &CompiledFlow,
    run: &mut Run,
    out: &mut Outcome,
    deadline: tokio::time::Instant,
) -> Option<Reply> {
    loop {
        if let Some(r) = out.replies.first() {
            return Some(r.clone());
        }
        let RunStatus::Waiting { delivery_id, .. } = &run.status else { return None };
        let id = format!("d:{delivery_id}");
        let at = out.commit.jobs.iter().position(|j| j.kind() == JobKind::Delivery && j.id == id)?;
        let job = out.commit.jobs.remove(at);
        let Payload::Delivery(mut dj) = job.payload.clone() else {
            out.commit.jobs.push(job);
            return None;
        };
        let limited = crate::limits::of(&dj, None);
        let permit = loop {
            match crate::limits::admit(ports.limiter, limited.clone(), &mut dj, ports.clock.now_ms()).await {
                Ok(Admission::Go(permit)) => break permit,
                Ok(Admission::Wait(wait)) if tokio::time::Instant::now() + wait < deadline => {
                    tokio::time::sleep(wait).await;
                }
                // Its slot is past the answer's time: the dispatcher sends
                // it then (the job holds the slot).
                Ok(Admission::Wait(wait)) => {
                    let not_before = ports.clock.now_ms() + wait.as_millis() as i64;
                    out.commit.jobs.push(NewJob { payload: Payload::Delivery(dj), not_before, ..job });
                    return None;
                }
                // The limiter did not answer: the dispatcher tries.
                Err(_) => {
                    out.commit.jobs.push(NewJob { payload: Payload::Delivery(dj), ..job });
                    return None;
                }
            }
        };
        let Ok(values) = crate::secrets::resolve(ports.secrets, &dj.delivery).await else {
            if let Some(permit) = permit {
                ports.limiter.leave(permit, 0).await;
            }
            out.commit.jobs.push(job);
            return None;
        };
        let started = tokio::time::Instant::now();
        let sent = tokio::time::timeout_at(deadline, ports.sender.send(&dj.delivery, &values)).await;
        if let Some(permit) = permit {
            ports.limiter.leave(permit, started.elapsed().as_millis() as u64).await;
        }
        let attempt = match sent {
            Ok(a) => a,
            Err(_) => {
                // Out of time: the dispatcher sends it (again, with the
                // same webhook-id).
                out.commit.jobs.push(job);
                return None;
            }
        };
        let now = ports.clock.now_ms();
        let step = engine::after_attempt(job.id.clone(), dj, &attempt, now, &mut rand::rng());
        out.lines.extend(step.lines);
        let mut c = step.commit;
        out.commit.log.append(&mut c.log);
        if c.dead.is_some() {
            out.commit.dead = c.dead.take();
        }
        if let Some((id, next, due)) = c.reschedule.take() {
            // A retry is the dispatcher's: the answer waits no longer.
            out.commit.jobs.push(NewJob {
                id,
                payload: Payload::Delivery(next),
                not_before: due,
                tenant: run.tenant.clone(),
                leased_for: None,
                group: None,
            });
            return None;
        }
        // The result goes straight back to the run.
        let next = c.jobs.iter().position(|j| j.kind() == JobKind::Run);
        let input = next.map(|i| c.jobs.remove(i));
        out.commit.jobs.append(&mut c.jobs);
        let Payload::Run(RunJob { input, .. }) = input?.payload else { return None };
        let Ok((advanced, effects)) = advance(flow, run.clone(), input) else { return None };
        *run = advanced;
        out.commit.runs.retain(|r| r.id != run.id);
        engine::record(out, run, effects, now);
    }
}
