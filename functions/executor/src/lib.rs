//! The executor: one SQS batch of run inputs in, runs advanced.
//!
//! For each message: the run is loaded, its flow found by id, the input fed
//! to [`advance`], and what the effects ask for ([`engine::record`]) applied
//! — the run's new state and log in DynamoDB, its deliveries and next
//! inputs on SQS. A message delivered twice (SQS is at-least-once) finds the
//! input already applied: a second start is dropped, a second step result
//! is ignored by the run itself. Two copies handled at the same moment race
//! on the run's revision ([`hookflow_aws::table::Table::write`]): the loser
//! of a start is dropped, any other loser is retried and then finds the
//! input applied.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookflow_aws::Error;
use hookflow_aws::batch::each_message;
use hookflow_aws::queue::Message;
use hookflow_aws::store::Store;
use hookflow_core::commit::{JobKind, RunJob};
use hookflow_core::engine;
use hookflow_core::engine::Level;
use hookflow_core::ports::{Clock, SystemClock};
use hookflow_core::run::{Input, advance};
use hookflow_io::Logger;
use serde_json::json;

/// What the executor needs, built once per container.
pub struct Executor {
    pub store: Store,
    pub logger: Logger,
}

impl Executor {
    /// Handles one SQS batch.
    pub async fn handle(self: &Arc<Self>, event: SqsEvent) -> SqsBatchResponse {
        each_message(event, &self.logger, |body| {
            let me = self.clone();
            async move { me.one(&body).await }
        })
        .await
    }

    fn drop_message(&self, m: &Message, why: &str) -> Result<(), Error> {
        self.logger.log(Level::Warn, "run input dropped", json!({"job": m.id, "tenant": m.tenant, "reason": why}));
        Ok(())
    }

    async fn one(&self, body: &str) -> Result<(), Error> {
        let now = SystemClock.now_ms();
        let m = Message::parse(body)?;
        if m.kind != JobKind::Run {
            return Err(Error::Malformed(format!("message {}: a {} job on the runs queue", m.id, m.kind.as_str())));
        }
        if self.store.queues.postpone(&m, now).await? {
            return Ok(());
        }
        let job: RunJob =
            serde_json::from_str(&m.payload).map_err(|e| Error::Malformed(format!("message {}: {e}", m.id)))?;
        let Some(run) = self.store.table.load_run(&job.run_id).await? else {
            return self.drop_message(&m, "its run does not exist");
        };
        let flow = self.store.table.by_id(&run.tenant, &run.flow_id).await?;
        let Some(flow) = flow else {
            return self.drop_message(&m, "its flow no longer exists");
        };
        let start = matches!(job.input, Input::Start);
        let loaded = run.revision;
        let (run, effects) = match advance(&flow, run, job.input) {
            Ok(next) => next,
            Err(hookflow_core::Error::Run(why)) if start => return self.drop_message(&m, &why),
            Err(e) => return Err(e.into()),
        };
        let mut out = engine::Outcome::default();
        engine::record(&mut out, &run, effects, SystemClock.now_ms());
        if run.revision == loaded {
            // The input changed nothing (a result nobody waits for): keep
            // its log entry, leave the run as it is.
            out.commit.runs.clear();
        }
        self.logger.lines(out.lines);
        match self.store.apply(out.commit, SystemClock.now_ms()).await {
            // Another worker applied this start first.
            Err(Error::Conflict(why)) if start => self.drop_message(&m, &why),
            other => other,
        }
    }
}
