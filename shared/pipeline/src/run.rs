//! The run pipeline: one input of one run, from its job to the commit.
//! Both drivers advance every run through it — `hookflow dev`'s workers
//! and the executor Lambda — so a run goes on the same way everywhere:
//!
//! 1. **load** the run and the flow version it started on; a job whose run
//!    or flow is gone is dropped, said in the log ([`RunPorts::dropped`]);
//! 2. **advance** it with the input ([`advance`]);
//! 3. **applied already?** An input that changes nothing was applied by an
//!    earlier copy of its job (or nobody waits for it): where the driver's
//!    commit and its sends are not one transaction, that copy's messages
//!    may be unsent, and the driver sends them again
//!    ([`RunPorts::applied`], on AWS the run's outbox);
//! 4. **record** what the effects ask for ([`engine::record`]);
//! 5. **commit** by the driver ([`RunPorts::commit`]: a transaction; on
//!    AWS the run's item with its outbox, then the sends).

use std::future::Future;
use std::sync::Arc;

use hookflow_core::CompiledFlow;
use hookflow_core::commit::RunJob;
use hookflow_core::engine::{self, LogLine, Outcome};
use hookflow_core::run::{Input, Run, advance};

/// What the run pipeline needs from a driver.
pub trait RunPorts: Sync {
    type Error: From<hookflow_core::Error> + Send;
    /// What the driver keeps beside a run and hands back to its commit (on
    /// AWS the run's outbox and kept log; nothing where a commit is one
    /// transaction).
    type Kept: Send;

    fn now_ms(&self) -> i64;

    /// The run `run_id`, with what the driver keeps beside it.
    fn load(&self, run_id: &str) -> impl Future<Output = Result<Option<(Run, Self::Kept)>, Self::Error>> + Send;

    /// The flow version `run` started on.
    fn flow(&self, run: &Run) -> impl Future<Output = Result<Option<Arc<CompiledFlow>>, Self::Error>> + Send;

    /// The job cannot run (`why`: its run or flow is gone, or a start of a
    /// run that started): it leaves the queue, said in the log.
    fn dropped(&self, job_id: &str, job: &RunJob, why: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The input of `job_id` changed nothing (or is a start of a run that
    /// started): whether that is because an earlier copy of this very job
    /// committed it, whose messages the driver has now sent again (the job
    /// is then done). A driver whose commit and sends are one transaction
    /// answers `false`.
    fn applied(&self, _job_id: &str, _kept: &Self::Kept) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        async { Ok(false) }
    }

    /// Writes operational log lines.
    fn lines(&self, lines: Vec<LogLine>);

    /// Commits what the input made of `run` (`out`; with no run row when
    /// it changed nothing), the job `job_id` done by it.
    fn commit(
        &self,
        job_id: &str,
        run: &Run,
        out: Outcome,
        kept: Self::Kept,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Feeds the input of `job` (job id `job_id`) to its run: load, advance,
/// record, commit. An error fails the job, which is tried again.
pub async fn step<P: RunPorts>(ports: &P, job_id: &str, job: RunJob) -> Result<(), P::Error> {
    let Some((run, kept)) = ports.load(&job.run_id).await? else {
        return ports.dropped(job_id, &job, "its run does not exist").await;
    };
    let Some(flow) = ports.flow(&run).await? else {
        return ports.dropped(job_id, &job, "its flow no longer exists").await;
    };
    let loaded = run.revision;
    let RunJob { run_id, input } = job;
    let start = matches!(input, Input::Start);
    let (run, effects) = match advance(&flow, run, input) {
        Ok(next) => next,
        // A start of a run that started: this job's own earlier copy, or
        // a job that should not be.
        Err(hookflow_core::Error::Run(why)) if start => {
            if ports.applied(job_id, &kept).await? {
                return Ok(());
            }
            return ports.dropped(job_id, &RunJob { run_id, input: Input::Start }, &why).await;
        }
        Err(e) => return Err(e.into()),
    };
    let unchanged = run.revision == loaded;
    if unchanged && ports.applied(job_id, &kept).await? {
        return Ok(());
    }
    let mut out = Outcome::default();
    engine::record(&mut out, &run, effects, ports.now_ms());
    if unchanged {
        // A result nobody waits for: its log entry is kept, the run left
        // as it is.
        out.commit.runs.clear();
    }
    ports.lines(std::mem::take(&mut out.lines));
    ports.commit(job_id, &run, out, kept).await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use hookflow_core::commit::JobKind;
    use hookflow_core::run::InboundRequest;

    use super::*;
    use crate::testing::Fault;

    const FLOW: &str = r#"
id: f
tenant: acme
trigger: { type: webhook, path: in }
steps:
  - id: send
    type: http
    url: https://receiver.example/hook
"#;

    /// A driver whose run is `run` (if any), and which says its commits
    /// and drops; `applied`: whether an unchanged input was this job's own
    /// earlier copy.
    #[derive(Default)]
    struct Fake {
        run: Option<Run>,
        flow: Option<Arc<CompiledFlow>>,
        applied: bool,
        asked_applied: Mutex<u32>,
        dropped: Mutex<Vec<String>>,
        commits: Mutex<Vec<(String, Outcome)>>,
    }

    impl RunPorts for Fake {
        type Error = Fault;
        type Kept = ();

        fn now_ms(&self) -> i64 {
            1_000
        }

        async fn load(&self, _run_id: &str) -> Result<Option<(Run, ())>, Fault> {
            Ok(self.run.clone().map(|r| (r, ())))
        }

        async fn flow(&self, _run: &Run) -> Result<Option<Arc<CompiledFlow>>, Fault> {
            Ok(self.flow.clone())
        }

        async fn dropped(&self, _job_id: &str, _job: &RunJob, why: &str) -> Result<(), Fault> {
            self.dropped.lock().unwrap().push(why.to_string());
            Ok(())
        }

        async fn applied(&self, _job_id: &str, _kept: &()) -> Result<bool, Fault> {
            *self.asked_applied.lock().unwrap() += 1;
            Ok(self.applied)
        }

        fn lines(&self, _lines: Vec<LogLine>) {}

        async fn commit(&self, job_id: &str, _run: &Run, out: Outcome, _: ()) -> Result<(), Fault> {
            self.commits.lock().unwrap().push((job_id.to_string(), out));
            Ok(())
        }
    }

    fn world() -> Fake {
        let flow = hookflow_core::load_flow("f.yaml".as_ref(), FLOW).unwrap();
        let run = Run::new(&flow.flow, "run_1", "evt_1", &InboundRequest::default());
        Fake { run: Some(run), flow: Some(Arc::new(flow)), ..Default::default() }
    }

    fn start() -> RunJob {
        RunJob { run_id: "run_1".into(), input: Input::Start }
    }

    #[tokio::test]
    async fn a_start_is_advanced_recorded_and_committed_as_its_job() {
        let fake = world();
        step(&fake, "r:run_1:start", start()).await.unwrap();
        let commits = fake.commits.lock().unwrap();
        let [(job, out)] = &commits[..] else { panic!("one commit") };
        assert_eq!(job, "r:run_1:start");
        assert_eq!(out.commit.runs.len(), 1, "the run's new state");
        assert!(out.commit.jobs.iter().any(|j| j.kind() == JobKind::Delivery), "its step's delivery");
        assert_eq!(*fake.asked_applied.lock().unwrap(), 0, "a change is never taken for a copy");
    }

    #[tokio::test]
    async fn a_job_whose_run_or_flow_is_gone_is_dropped_saying_which() {
        let fake = Fake { run: None, ..world() };
        step(&fake, "r:run_1:start", start()).await.unwrap();
        let fake2 = Fake { flow: None, ..world() };
        step(&fake2, "r:run_1:start", start()).await.unwrap();
        assert_eq!(fake.dropped.lock().unwrap().as_slice(), ["its run does not exist"]);
        assert_eq!(fake2.dropped.lock().unwrap().as_slice(), ["its flow no longer exists"]);
        assert!(fake.commits.lock().unwrap().is_empty() && fake2.commits.lock().unwrap().is_empty());
    }

    /// A start of a run that started: the driver's own earlier copy (its
    /// messages sent again, nothing else) or else dropped.
    #[tokio::test]
    async fn a_start_applied_already_is_sent_again_by_its_own_copy_or_else_dropped() {
        let fake = world();
        step(&fake, "r:run_1:start", start()).await.unwrap();
        let started = fake.commits.lock().unwrap()[0].1.commit.runs[0].state.clone();
        let run: Run = serde_json::from_str(&started).unwrap();

        let copy = Fake { run: Some(run.clone()), applied: true, ..world() };
        step(&copy, "r:run_1:start", start()).await.unwrap();
        assert!(copy.commits.lock().unwrap().is_empty() && copy.dropped.lock().unwrap().is_empty());
        assert_eq!(*copy.asked_applied.lock().unwrap(), 1);

        let stray = Fake { run: Some(run), applied: false, ..world() };
        step(&stray, "r:run_1:start", start()).await.unwrap();
        assert!(stray.commits.lock().unwrap().is_empty());
        assert_eq!(stray.dropped.lock().unwrap().len(), 1, "dropped, said why");
    }
}
