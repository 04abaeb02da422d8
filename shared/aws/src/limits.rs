//! What the AWS stack allows a flow, beyond what the flow language does:
//! checked by `hookflow apply` and the admin API's `PUT` of a flow before
//! anything is written.

use std::time::Duration;

use hookflow_core::CompiledFlow;

/// The longest a step's attempt may take on AWS. The dispatcher function's
/// timeout is 30 s (template.yaml); it keeps [`AFTER_SEND`] for what
/// follows a send and leaves 5 s for what precedes it (a cold start, the
/// subscription and secrets it reads). `hookflow dev` allows 5 minutes;
/// `hookflow apply` and the admin API refuse more than this on AWS, and
/// the dispatcher holds an older flow's steps to it.
pub const MAX_STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// The time a dispatcher keeps free after a send, within its invocation,
/// for what follows it (the attempt's commit, the result's message).
pub const AFTER_SEND: Duration = Duration::from_secs(5);

/// What in `flow` the AWS stack cannot run: (field, message) pairs.
pub fn problems(flow: &CompiledFlow) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, step) in flow.flow.steps.iter().enumerate() {
        let Some(t) = step.action.http().and_then(|h| h.timeout) else { continue };
        if t.get() > MAX_STEP_TIMEOUT {
            out.push((
                format!("steps[{i}].timeout"),
                format!(
                    "step `{}` may take {}s, more than the {}s a step may take on AWS (the dispatcher function's \
                     30 s timeout, less the time kept around the send); lower it (`hookflow dev` allows up to 5m)",
                    step.id,
                    t.get().as_secs_f64(),
                    MAX_STEP_TIMEOUT.as_secs(),
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_longer_than_the_dispatcher_allows_is_named_with_its_field_and_the_limit() {
        let text = |timeout: &str| {
            format!(
                "id: slow\ntenant: t\ntrigger: {{ type: webhook, path: slow }}\nsteps:\n  - id: quick\n    type: http\n    \
                 url: https://a.example/\n  - id: patient\n    type: http\n    url: https://a.example/\n    \
                 timeout: {timeout}\n"
            )
        };
        let flow = hookflow_core::load_flow("flows/slow.yaml".as_ref(), &text("21s")).unwrap();
        let p = problems(&flow);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "steps[1].timeout");
        assert!(p[0].1.starts_with("step `patient` may take 21s, more than the 20s"), "{}", p[0].1);
        let flow = hookflow_core::load_flow("flows/slow.yaml".as_ref(), &text("20s")).unwrap();
        assert!(problems(&flow).is_empty());
    }
}
