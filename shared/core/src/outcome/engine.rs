//! The engine's steps as pure functions. Each takes what happened — a run
//! advanced, an attempt made — and returns the unit of work to apply (a
//! [`Commit`]), the replies a waiting caller should get and the log lines
//! to write. The embedded runtime and the Lambda functions do the I/O
//! around them through the [ports](crate::ports), so a run behaves the same
//! in `hookflow dev` and on AWS.

use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};

use crate::attempt::{Attempt, Decision, decide};
use crate::commit::{Commit, DeadRow, DeliveryJob, EntryKind, LogEntry, NewJob};
use crate::duration::human;
use crate::headers::shown;
use crate::run::{Delivery, Effect, FailureKind, Input, Purpose, Reply, Run, RunStatus, StepError, StepOutcome};
use crate::status::Verdict;

/// How much an operational log line matters; Lambda's log levels, in
/// order (the default is the lowest: a logger set to it writes everything).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    #[default]
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// A level as configured (`AWS_LAMBDA_LOG_LEVEL`: `TRACE`, `DEBUG`,
    /// `INFO`, `WARN`, `ERROR`, `FATAL`; any case); anything else is `Info`.
    pub fn parse(name: &str) -> Level {
        match name.to_ascii_lowercase().as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "warn" | "warning" => Level::Warn,
            "error" | "fatal" => Level::Error,
            _ => Level::Info,
        }
    }
}

/// One line for the operational log (stdout / CloudWatch), with the run's
/// correlation fields.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
    pub fields: Value,
}

/// What a step of the engine produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub commit: Commit,
    /// Replies of `respond` steps, for a caller waiting on the run.
    pub replies: Vec<Reply>,
    pub lines: Vec<LogLine>,
    /// What the attempt decided, when the step was an attempt.
    pub decision: Option<AttemptSummary>,
    /// What the attempt says about a subscription's endpoint (subscription
    /// id, health), for the driver to apply with
    /// [`Subscription::apply`](crate::subscription::Subscription::apply).
    pub health: Option<(String, Health)>,
}

/// What an attempt says about a subscription's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The verification token was echoed.
    Verified,
    /// The verification attempts ran out.
    Unverified,
    /// An event was delivered.
    Delivered,
    /// An attempt failed (retried or not).
    Failed,
    /// `410 Gone`.
    Gone,
}

/// The gist of an attempt's decision, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptSummary {
    Delivered,
    Retried,
    Dead,
}

fn line(level: Level, message: impl Into<String>, fields: Value) -> LogLine {
    LogLine { level, message: message.into(), fields }
}

/// Adds to `out` what `effects` of `run` ask for: the run's new state, a
/// delivery job per `Send` (due at `now`), the request-log entries and log
/// lines, and the replies.
pub fn record(out: &mut Outcome, run: &Run, effects: Vec<Effect>, now: i64) {
    out.commit.run(run);
    for effect in effects {
        match effect {
            Effect::Send(d) => {
                let job = DeliveryJob::new(*d, now);
                out.commit.jobs.push(NewJob::delivery(&job, now));
            }
            Effect::Reply(r) => out.replies.push(r),
            Effect::Log(e) => {
                out.lines.push(line(
                    Level::Info,
                    format!("step {} {}", e.step, e.decision),
                    // The rendered request stays in the request log; the
                    // line gets its delivery id.
                    json!({"tenant": run.tenant, "flow_id": run.flow_id, "run_id": run.id, "event_id": run.event_id,
                           "step": e.step, "delivery_id": e.detail.get("delivery_id")}),
                ));
                let detail = serde_json::to_value(&e).unwrap_or_default();
                out.commit.log.push(LogEntry::for_run(run, now, EntryKind::Step, &e.decision, detail));
            }
            Effect::Finished { status } => {
                let failed = matches!(status, RunStatus::Failed { .. });
                out.lines.push(line(
                    if failed { Level::Warn } else { Level::Info },
                    "run finished",
                    json!({"tenant": run.tenant, "flow_id": run.flow_id, "run_id": run.id, "event_id": run.event_id, "status": status}),
                ));
                let outcome = if failed { "failed" } else { "succeeded" };
                let detail = serde_json::to_value(&status).unwrap_or_default();
                out.commit.log.push(LogEntry::for_run(run, now, EntryKind::Run, outcome, detail));
            }
        }
    }
}

/// What follows attempt number `job.attempts + 1` of a delivery: the
/// attempt's log entry, and either the job done (and the outcome handed to
/// the run if it waits), rescheduled with the same `webhook-id`, or dead.
pub fn after_attempt(job_id: String, mut job: DeliveryJob, attempt: &Attempt, now: i64, rng: &mut impl Rng) -> Outcome {
    job.attempts += 1;
    let d = &job.delivery;
    // Waiting on a destination's limits is not age: it spends no budget.
    let age = Duration::from_millis(((now - job.first_at).max(0) as u64).saturating_sub(job.waited_ms));
    let (verdict, decision) = decide(d, &attempt.result, job.attempts, age, rng);
    let mut out = Outcome::default();
    let mut fields = json!({
        "tenant": d.tenant, "flow_id": d.flow_id, "run_id": d.run_id, "event_id": d.event_id,
        "delivery_id": d.id, "step": d.step, "attempt": job.attempts,
        "status": attempt.result.response.as_ref().map(|r| r.status),
        "duration_ms": attempt.duration_ms,
        "error_class": attempt.result.error.as_ref().map(|e| e.0),
        "error": attempt.result.error.as_ref().map(|e| e.1.clone()),
        "verdict": verdict,
    });
    let mut entry = attempt_log(d, attempt, job.attempts, verdict, now);
    // A failure that would be retried but has no attempts left ends the
    // delivery: its entry says so rather than `retry`.
    if verdict == Verdict::Retry && matches!(decision, Decision::Dead { .. }) {
        entry.outcome = Some("dead".into());
    }
    out.commit.log.push(entry);
    let outcome = match decision {
        Decision::Delivered(outcome) => {
            out.lines.push(line(Level::Info, "delivered", fields));
            out.decision = Some(AttemptSummary::Delivered);
            Some(outcome)
        }
        Decision::RetryIn(delay) => {
            fields["retry_in_ms"] = json!(delay.as_millis() as u64);
            out.lines.push(line(Level::Warn, format!("attempt failed; retrying in {}", human(delay)), fields));
            let due = now + delay.as_millis() as i64;
            out.commit.reschedule = Some((job_id.clone(), job.clone(), due));
            out.decision = Some(AttemptSummary::Retried);
            None
        }
        Decision::Dead { outcome, reason } => {
            fields["reason"] = json!(reason);
            // The line says what became of the delivery, not the verdict
            // (`retry`) of an attempt that had no retries left.
            fields["verdict"] = json!("dead");
            out.lines.push(line(Level::Error, "delivery dead", fields));
            out.commit.dead = Some(DeadRow::of(&job, reason));
            out.decision = Some(AttemptSummary::Dead);
            Some(outcome)
        }
    };
    if out.commit.reschedule.is_none() {
        out.commit.done = Some(job_id);
    }
    let d = &job.delivery;
    out.health = health(&d.purpose, out.decision, verdict);
    if let Some(outcome) = outcome
        && d.wait
    {
        let input = Input::StepResult { step: d.step.clone(), delivery_id: d.id.clone(), outcome };
        out.commit.jobs.push(NewJob::run(&d.tenant, &d.run_id, &d.id, input, now));
    }
    out
}

/// A subscription's delivery ended without being sent (see
/// [`crate::subscription::gate`]): done, logged, and recorded as dead when
/// `dead` (replayable).
pub fn unsent(job_id: String, job: &DeliveryJob, why: &str, dead: bool, now: i64) -> Outcome {
    let d = &job.delivery;
    let mut out = Outcome::default();
    out.lines.push(line(
        Level::Warn,
        if dead { "delivery dead" } else { "delivery dropped" },
        json!({"tenant": d.tenant, "delivery_id": d.id, "event_id": d.event_id, "reason": why}),
    ));
    out.commit.done = Some(job_id);
    out.commit.log.push(LogEntry {
        at: now,
        kind: EntryKind::Attempt,
        tenant: Some(d.tenant.clone()),
        run_id: Some(d.run_id.clone()),
        event_id: Some(d.event_id.clone()),
        delivery_id: Some(d.id.clone()),
        outcome: Some(if dead { "dead" } else { "dropped" }.into()),
        detail: json!({"reason": why, "subscription_id": d.purpose.subscription()}),
        ..Default::default()
    });
    if dead {
        out.commit.dead = Some(DeadRow::of(job, why));
        out.decision = Some(AttemptSummary::Dead);
    }
    out
}

/// A delivery given up without an attempt, for `why` (its message moved to
/// a dead-letter queue, or held past what its queue keeps): dead like one
/// whose retries ran out — listed, replayable — and, when a run waits on
/// it, the run told so (`exhausted`), so that it never waits on a message
/// that is gone.
pub fn given_up(job_id: String, job: &DeliveryJob, why: &str, now: i64) -> Outcome {
    let mut out = unsent(job_id, job, why, true, now);
    let d = &job.delivery;
    if d.wait {
        let error = StepError { kind: FailureKind::Exhausted, message: why.to_string(), status: None };
        let outcome = StepOutcome::Failed { error, response: None };
        let input = Input::StepResult { step: d.step.clone(), delivery_id: d.id.clone(), outcome };
        out.commit.jobs.push(NewJob::run(&d.tenant, &d.run_id, &d.id, input, now));
    }
    out
}

/// What an attempt of a subscription's delivery says about its endpoint.
fn health(purpose: &Purpose, decision: Option<AttemptSummary>, verdict: Verdict) -> Option<(String, Health)> {
    let h = match (purpose, decision?) {
        (Purpose::Step, _) => return None,
        (Purpose::Verify { .. }, AttemptSummary::Delivered) => Health::Verified,
        (Purpose::Verify { .. }, AttemptSummary::Dead) => Health::Unverified,
        (Purpose::Verify { .. }, AttemptSummary::Retried) => return None,
        (Purpose::Event { .. }, AttemptSummary::Delivered) => Health::Delivered,
        (Purpose::Event { .. }, AttemptSummary::Dead) if verdict == Verdict::Gone => Health::Gone,
        (Purpose::Event { .. }, _) => Health::Failed,
    };
    Some((purpose.subscription()?.to_string(), h))
}

/// The request-log entry of one attempt: request with secrets as `***` and
/// sensitive headers redacted, response status, headers and body (the first
/// 16 KiB), duration and error class.
pub fn attempt_log(d: &Delivery, a: &Attempt, n: u32, verdict: Verdict, now: i64) -> LogEntry {
    let mut request = d.request.redacted();
    if let Some(Value::Object(h)) = request.get_mut("headers") {
        for (k, v) in h.iter_mut() {
            if let Value::String(text) = v {
                *v = json!(shown(k, text));
            }
        }
    }
    let response = a.result.response.as_ref().map(|r| {
        let headers: serde_json::Map<String, Value> =
            r.headers.iter().map(|(k, v)| (k.to_string(), json!(shown(k, v)))).collect();
        json!({"status": r.status, "headers": headers, "body": r.body})
    });
    let mut detail = json!({
        "attempt": n,
        "step": d.step,
        "request": request,
        "response": response,
        "duration_ms": a.duration_ms,
        "error_class": a.result.error.as_ref().map(|e| e.0),
        "error": a.result.error.as_ref().map(|e| e.1.clone()),
    });
    // A subscription's delivery names it: its attempts are found by it.
    if let Some(sub) = d.purpose.subscription() {
        detail["subscription_id"] = json!(sub);
    }
    LogEntry {
        at: now,
        kind: EntryKind::Attempt,
        tenant: Some(d.tenant.clone()),
        flow_id: Some(d.flow_id.clone()),
        run_id: Some(d.run_id.clone()),
        event_id: Some(d.event_id.clone()),
        delivery_id: Some(d.id.clone()),
        outcome: Some(
            serde_json::to_value(verdict).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
        ),
        detail,
        seq: None,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::attempt::AttemptResult;
    use crate::commit::JobKind;
    use crate::run::{CapturedResponse, InboundRequest, advance};

    const FLOW: &str = r#"
id: f
tenant: acme
trigger: { type: webhook, path: in }
steps:
  - id: ask
    type: http
    url: https://partner.example/ask
    wait_for_response: true
    on_failure: continue
"#;

    fn started() -> (Run, Outcome) {
        let flow = crate::load_flow("f.yaml".as_ref(), FLOW).unwrap();
        let req = InboundRequest {
            method: "POST".into(),
            path: "/hooks/acme/in".into(),
            headers: Default::default(),
            query: Default::default(),
            body: "{}".into(),
            source_ip: "192.0.2.1".into(),
            received_at: "2026-11-23T00:00:00.000Z".into(),
        };
        let run = Run::new(&flow.flow, "run_1", "evt_1", &req);
        let (run, effects) = advance(&flow, run, Input::Start).unwrap();
        let mut out = Outcome::default();
        record(&mut out, &run, effects, 1_000);
        (run, out)
    }

    fn attempt(status: u16) -> Attempt {
        let response = CapturedResponse::new(status, Default::default(), "{}");
        Attempt { result: AttemptResult { response: Some(response), retry_after: None, error: None }, duration_ms: 3 }
    }

    #[test]
    fn record_stores_the_run_queues_the_delivery_and_logs_the_step() {
        let (run, out) = started();
        assert_eq!(out.commit.runs[0].id, run.id);
        assert_eq!(out.commit.runs[0].status, "waiting");
        let [job] = &out.commit.jobs[..] else { panic!("{:?}", out.commit.jobs) };
        assert_eq!((job.kind(), job.not_before, job.tenant.as_str()), (JobKind::Delivery, 1_000, "acme"));
        assert_eq!(out.commit.log[0].kind, EntryKind::Step);
        assert_eq!(out.lines[0].fields["run_id"], "run_1");
    }

    #[test]
    fn attempts_retry_with_the_same_job_then_hand_the_response_to_the_run() {
        let (_, out) = started();
        let job = &out.commit.jobs[0];
        let dj: DeliveryJob = job.payload.as_delivery().unwrap().clone();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);

        let retry = after_attempt(job.id.clone(), dj.clone(), &attempt(500), 2_000, &mut rng);
        let (id, again, due) = retry.commit.reschedule.clone().expect("rescheduled");
        assert_eq!(id, job.id);
        assert!(due > 2_000);
        assert_eq!((again.attempts, &again.delivery.id), (1, &dj.delivery.id));
        assert_eq!((retry.commit.done.clone(), retry.decision), (None, Some(AttemptSummary::Retried)));
        assert_eq!(retry.commit.log[0].outcome.as_deref(), Some("retry"));
        let said = &retry.lines[0];
        assert!(said.message.starts_with("attempt failed; retrying in ") && said.message.ends_with('s'), "{said:?}");
        assert_eq!(said.fields["retry_in_ms"].as_i64(), Some(due - 2_000));

        // The same failure with no attempts left ends the delivery, and
        // both its entry and its line say `dead`, not `retry`.
        let last = DeliveryJob { attempts: dj.delivery.retry.max_attempts - 1, ..dj.clone() };
        let dead = after_attempt(job.id.clone(), last, &attempt(500), 2_000, &mut rng);
        assert_eq!(dead.decision, Some(AttemptSummary::Dead));
        assert_eq!(dead.commit.log[0].outcome.as_deref(), Some("dead"));
        assert_eq!(
            (dead.lines[0].message.as_str(), &dead.lines[0].fields["verdict"]),
            ("delivery dead", &json!("dead"))
        );

        let ok = after_attempt(job.id.clone(), again, &attempt(200), 3_000, &mut rng);
        assert_eq!(ok.commit.done.as_deref(), Some(job.id.as_str()));
        let [resume] = &ok.commit.jobs[..] else { panic!("the waiting run is resumed") };
        let rj = resume.payload.as_run().unwrap();
        assert!(matches!(rj.input, Input::StepResult { ref step, .. } if step == "ask"));
    }

    #[test]
    fn time_waited_on_a_destination_s_limits_is_not_counted_in_a_delivery_s_age() {
        let (_, out) = started();
        let job = &out.commit.jobs[0];
        let mut dj: DeliveryJob = job.payload.as_delivery().unwrap().clone();
        dj.delivery.retry.max_age = Some(Duration::from_secs(60));
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        // First tried two minutes after it was made, all of it waited.
        let late = 1_000 + 120_000;
        let aged = after_attempt(job.id.clone(), dj.clone(), &attempt(500), late, &mut rng);
        assert_eq!(aged.decision, Some(AttemptSummary::Dead), "past max_age, had it not waited");
        dj.waited_ms = 119_000;
        let waited = after_attempt(job.id.clone(), dj, &attempt(500), late, &mut rng);
        assert_eq!(waited.decision, Some(AttemptSummary::Retried), "its wait spent no budget");
    }

    #[test]
    fn a_halting_status_makes_the_delivery_dead() {
        let (_, out) = started();
        let job = &out.commit.jobs[0];
        let dj: DeliveryJob = job.payload.as_delivery().unwrap().clone();
        let dead = after_attempt(job.id.clone(), dj, &attempt(400), 2_000, &mut rand::rngs::StdRng::seed_from_u64(1));
        assert_eq!(dead.decision, Some(AttemptSummary::Dead));
        assert!(dead.commit.dead.as_ref().unwrap().reason.contains("400"), "{:?}", dead.commit.dead);
        assert_eq!(dead.commit.jobs.len(), 1, "the run takes its on_failure path");
    }

    #[test]
    fn a_delivery_given_up_is_dead_and_its_waiting_run_is_told_it_failed() {
        let (_, out) = started();
        let job = &out.commit.jobs[0];
        let dj: DeliveryJob = job.payload.as_delivery().unwrap().clone();
        let given = given_up(job.id.clone(), &dj, "moved to the dead-letter queue", 2_000);
        assert_eq!(given.commit.done.as_deref(), Some(job.id.as_str()));
        let dead = given.commit.dead.as_ref().expect("listed, replayable");
        assert_eq!(
            (dead.delivery_id.as_str(), dead.reason.as_str()),
            (dj.delivery.id.as_str(), "moved to the dead-letter queue")
        );
        let [resume] = &given.commit.jobs[..] else { panic!("the waiting run is told: {:?}", given.commit.jobs) };
        let Input::StepResult { outcome: StepOutcome::Failed { error, .. }, .. } =
            &resume.payload.as_run().unwrap().input
        else {
            panic!("a failed step result")
        };
        assert_eq!(error.kind, FailureKind::Exhausted);
        let unwaited = DeliveryJob { delivery: Delivery { wait: false, ..dj.delivery.clone() }, ..dj };
        assert!(given_up("j".into(), &unwaited, "why", 2_000).commit.jobs.is_empty(), "no run waits: nothing to tell");
    }
}
