//! What one delivery attempt means: delivered, try again later, or dead.
//!
//! The dispatcher sends; this decides. Every sender (the dev server's
//! workers, the AWS dispatcher) calls [`decide`] with the attempt's result,
//! so retries, `Retry-After`, halting and exhaustion behave the same
//! everywhere.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::run::{CapturedResponse, Delivery, FailureKind, Purpose, StepError, StepOutcome, final_outcome};
use crate::status::Verdict;

/// Why an attempt got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptError {
    Timeout,
    Connect,
    Dns,
    Tls,
    /// The target address is not allowed (halts: retrying cannot help).
    Ssrf,
    /// A secret was missing or unusable (retried: it may be created later).
    Secret,
    /// The request could not be built (halts).
    Request,
}

/// The result of sending one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    pub response: Option<CapturedResponse>,
    /// What the receiver asked for with `Retry-After`.
    pub retry_after: Option<Duration>,
    pub error: Option<(AttemptError, String)>,
}

/// One attempt as the sender reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub result: AttemptResult,
    pub duration_ms: u64,
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Done: hand the outcome to the run (if it waits).
    Delivered(StepOutcome),
    /// Send again after this delay, with the same `webhook-id`.
    RetryIn(Duration),
    /// Halted or out of attempts: record it as dead, hand the failure to the run.
    Dead { outcome: StepOutcome, reason: String },
}

/// Classifies attempt number `attempts` (1-based) of `d`, made `age` after
/// the first one.
pub fn decide(
    d: &Delivery,
    r: &AttemptResult,
    attempts: u32,
    age: Duration,
    rng: &mut impl Rng,
) -> (Verdict, Decision) {
    let verdict = match (&r.response, &r.error, &d.purpose) {
        // A verification succeeds only when the endpoint echoes the token.
        (Some(resp), _, Purpose::Verify { token, .. })
            if d.status_policy.classify(resp.status) == Verdict::Success && !echoes(&resp.body, token) =>
        {
            Verdict::Retry
        }
        (Some(resp), ..) => d.status_policy.classify(resp.status),
        (None, Some((AttemptError::Ssrf | AttemptError::Request, _)), _) => Verdict::Halt,
        (None, ..) => Verdict::Retry,
    };
    if verdict == Verdict::Success
        && let Some(response) = &r.response
    {
        return (verdict, Decision::Delivered(StepOutcome::Succeeded { response: response.clone() }));
    }
    if verdict == Verdict::Retry
        && let Some(delay) = d.retry.next_delay(attempts, age, r.retry_after, rng)
    {
        return (verdict, Decision::RetryIn(delay));
    }
    let outcome = match &r.response {
        Some(resp) => final_outcome(verdict, resp.clone(), attempts),
        None => {
            let (class, msg) = r.error.clone().unwrap_or((AttemptError::Connect, String::new()));
            let (kind, message) = match (class, verdict) {
                (AttemptError::Ssrf, _) => (FailureKind::Ssrf, msg),
                (_, Verdict::Halt) => (FailureKind::Halted, msg),
                _ => (FailureKind::Exhausted, format!("gave up after {attempts} attempt(s): {msg}")),
            };
            StepOutcome::Failed { error: StepError { kind, message, status: None }, response: None }
        }
    };
    let mut reason = match &outcome {
        StepOutcome::Failed { error, .. } => error.message.clone(),
        StepOutcome::Succeeded { .. } => String::new(),
    };
    // An AWS destination's answer names its error: say it.
    if let Some(resp) = r.response.as_ref().filter(|_| d.to_aws())
        && let Some(code) = resp.body.get("error").and_then(Value::as_str)
    {
        let message = resp.body.get("message").and_then(Value::as_str).unwrap_or_default();
        reason = format!("{reason} ({code}: {message})");
    }
    (verdict, Decision::Dead { outcome, reason })
}

/// Whether a verification response echoes `token`: a JSON body
/// `{"token": …}` or the token as plain text.
pub fn echoes(body: &Value, token: &str) -> bool {
    match body {
        Value::String(s) => s.trim() == token,
        Value::Object(o) => o.get("token").and_then(Value::as_str) == Some(token),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::Span;
    use crate::headers::Headers;
    use crate::request::{OutboundRequest, SecretText};
    use crate::retry::{RetryPolicy, RetrySpec};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn delivery(max_attempts: u32) -> Delivery {
        Delivery {
            id: "msg_1".into(),
            run_id: "run_1".into(),
            event_id: "evt_1".into(),
            tenant: "t".into(),
            flow_id: "f".into(),
            step: "s".into(),
            request: OutboundRequest {
                method: crate::flow::Method::Post,
                url: SecretText::plain("https://x.example/"),
                headers: vec![],
                body: None,
            },
            status_policy: Default::default(),
            retry: RetryPolicy::from_spec(&RetrySpec {
                schedule: Some(vec![Span::secs(1)]),
                max_attempts: Some(max_attempts),
                ..Default::default()
            }),
            sign: None,
            timeout: Duration::from_secs(10),
            wait: true,
            purpose: Default::default(),
            secret_hosts: Default::default(),
            shaped: false,
            limit: None,
        }
    }

    fn response(status: u16) -> AttemptResult {
        AttemptResult {
            response: Some(CapturedResponse::new(status, Headers::new(), "{}")),
            retry_after: None,
            error: None,
        }
    }

    fn error(e: AttemptError) -> AttemptResult {
        AttemptResult { response: None, retry_after: None, error: Some((e, "boom".into())) }
    }

    fn run(r: &AttemptResult, attempts: u32, max: u32) -> (Verdict, Decision) {
        decide(&delivery(max), r, attempts, Duration::ZERO, &mut StdRng::seed_from_u64(1))
    }

    #[test]
    fn success_is_delivered() {
        assert!(matches!(
            run(&response(200), 1, 3),
            (Verdict::Success, Decision::Delivered(StepOutcome::Succeeded { .. }))
        ));
    }

    #[test]
    fn retryable_failures_retry_until_attempts_run_out() {
        assert!(matches!(run(&response(503), 1, 3), (Verdict::Retry, Decision::RetryIn(_))));
        assert!(matches!(run(&error(AttemptError::Timeout), 2, 3), (Verdict::Retry, Decision::RetryIn(_))));
        assert!(matches!(run(&error(AttemptError::Secret), 1, 3), (Verdict::Retry, Decision::RetryIn(_))));
        let (_, d) = run(&error(AttemptError::Connect), 3, 3);
        let Decision::Dead { reason, outcome } = d else { panic!() };
        assert_eq!(reason, "gave up after 3 attempt(s): boom");
        assert!(matches!(outcome, StepOutcome::Failed { error: StepError { kind: FailureKind::Exhausted, .. }, .. }));
        let (_, d) = run(&response(500), 3, 3);
        assert!(matches!(d, Decision::Dead { reason, .. } if reason == "gave up after 3 attempt(s); last status 500"));
    }

    #[test]
    fn halts_are_dead_at_once() {
        let (v, d) = run(&response(400), 1, 10);
        assert_eq!(v, Verdict::Halt);
        assert!(matches!(d, Decision::Dead { reason, .. } if reason == "status 400 halts the step"));
        let (v, d) = run(&response(410), 1, 10);
        assert_eq!(v, Verdict::Gone);
        assert!(matches!(
            d,
            Decision::Dead {
                outcome: StepOutcome::Failed { error: StepError { kind: FailureKind::Gone, .. }, .. },
                ..
            }
        ));
        let (_, d) = run(&error(AttemptError::Ssrf), 1, 10);
        assert!(matches!(
            d,
            Decision::Dead {
                outcome: StepOutcome::Failed { error: StepError { kind: FailureKind::Ssrf, .. }, .. },
                ..
            }
        ));
    }

    #[test]
    fn retry_after_sets_the_delay() {
        let mut r = response(429);
        r.retry_after = Some(Duration::from_secs(2));
        let mut del = delivery(3);
        del.retry.max_delay = Duration::from_secs(60);
        let (_, d) = decide(&del, &r, 1, Duration::ZERO, &mut StdRng::seed_from_u64(1));
        assert_eq!(d, Decision::RetryIn(Duration::from_secs(2)));
        // Capped at max_delay.
        del.retry.max_delay = Duration::from_secs(1);
        let (_, d) = decide(&del, &r, 1, Duration::ZERO, &mut StdRng::seed_from_u64(1));
        assert_eq!(d, Decision::RetryIn(Duration::from_secs(1)));
    }
}
