//! The executor: one SQS batch of run inputs in, runs advanced through the
//! one run pipeline ([`hookflow_pipeline::run::step`], the same as
//! `hookflow dev`'s workers), with DynamoDB and SQS as its ports: the run's
//! new state and log in its item, its deliveries and next inputs on SQS,
//! with those messages kept in the run's item as its outbox
//! ([`crate::outbox`]).
//!
//! A message that comes back (its send failed after the table write, the
//! function died or timed out, or SQS delivered it twice) finds its input
//! already applied: the run does not start twice or take a result twice.
//! If the run's outbox was made by this very input, the outbox is sent
//! again ([`RunPorts::applied`]) — the run waits on it, and which copy this
//! is (SQS's duplicate, the message back after a try that did not finish,
//! one moved back from the DLQ) cannot be told. Otherwise the message is
//! dropped (a start) or its `ignored` entry logged (a result nobody waits
//! for). Two copies handled at the same moment race on the run's revision
//! ([`crate::table::Table::write`]): the loser fails its message, which
//! comes back and finds the input applied.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookflow_core::CompiledFlow;
use hookflow_core::commit::{JobKind, Payload, RunJob};
use hookflow_core::engine::{Level, LogLine, Outcome};
use hookflow_core::ports::{Clock, SystemClock};
use hookflow_core::run::Run;
use hookflow_io::Logger;
use hookflow_pipeline::run::{self, RunPorts};
use serde_json::json;

use crate::Error;
use crate::batch::{Received, each_message};
use crate::outbox::Outbox;
use crate::queue::RawMessage;
use crate::store::{Applied, Store};
use crate::table::StoredRun;

/// What the executor needs, built once per container.
pub struct Executor {
    pub store: Store,
    pub logger: Logger,
}

impl Executor {
    /// Handles one SQS batch.
    pub async fn handle(self: &Arc<Self>, event: SqsEvent) -> SqsBatchResponse {
        each_message(event, &self.logger, |m| {
            let me = self.clone();
            async move { me.one(&m).await }
        })
        .await
    }

    /// One message: decoded, sent on if it came early, then the run
    /// pipeline.
    async fn one(&self, received: &Received) -> Result<(), Error> {
        let raw = RawMessage::parse(&received.body)?;
        if raw.kind != JobKind::Run {
            return Err(Error::Malformed(format!("message {}: a {} job on the runs queue", raw.id, raw.kind.as_str())));
        }
        // Sent on as it came, if it came early.
        if self.store.queues.postpone(&raw, SystemClock.now_ms()).await? {
            return Ok(());
        }
        let m = raw.decode()?;
        let Payload::Run(job) = m.payload else {
            return Err(Error::Malformed(format!("message {}: not a run's input", m.id)));
        };
        run::step(&RunInput { executor: self, tenant: &m.tenant, receives: received.receives }, &m.id, job).await
    }

    /// Logs the log items a commit left unwritten (its run stands).
    fn unlogged(&self, job_id: &str, tenant: &str, applied: Applied) {
        if let Some(e) = applied.unlogged {
            self.logger.log(
                Level::Warn,
                "log items of a run's commit not written",
                json!({"job": job_id, "tenant": tenant, "error": e.to_string()}),
            );
        }
    }
}

/// One message's input, as the run pipeline's ports.
struct RunInput<'a> {
    executor: &'a Executor,
    tenant: &'a str,
    receives: u32,
}

/// What a run's item keeps beside the run: its outbox and its kept log.
struct Kept {
    outbox: Outbox,
    log: String,
}

impl RunPorts for RunInput<'_> {
    type Error = Error;
    type Kept = Kept;

    fn now_ms(&self) -> i64 {
        SystemClock.now_ms()
    }

    async fn load(&self, run_id: &str) -> Result<Option<(Run, Kept)>, Error> {
        let stored = self.executor.store.table.load_stored(run_id).await?;
        Ok(stored.map(|StoredRun { run, outbox, log }| (run, Kept { outbox, log })))
    }

    async fn flow(&self, run: &Run) -> Result<Option<Arc<CompiledFlow>>, Error> {
        self.executor.store.table.flow_of(run).await
    }

    async fn dropped(&self, job_id: &str, _job: &RunJob, why: &str) -> Result<(), Error> {
        let fields = json!({"job": job_id, "tenant": self.tenant, "reason": why});
        self.executor.logger.log(Level::Warn, "run input dropped", fields);
        Ok(())
    }

    /// This input's commit is written when the run's outbox names it as
    /// its cause; its send may not have finished. Which copy this is
    /// cannot be told, so every one sends again: at least once.
    async fn applied(&self, job_id: &str, kept: &Kept) -> Result<bool, Error> {
        if !kept.outbox.caused_by(job_id) {
            return Ok(false);
        }
        let again = self.executor.store.redrive(&kept.outbox, SystemClock.now_ms()).await?;
        self.executor.logger.log(
            Level::Info,
            "run input applied already: its messages sent again",
            json!({"job": job_id, "tenant": self.tenant, "messages": again.messages, "receives": self.receives}),
        );
        self.executor.unlogged(job_id, self.tenant, again);
        Ok(true)
    }

    fn lines(&self, lines: Vec<LogLine>) {
        self.executor.logger.lines(lines);
    }

    async fn commit(&self, job_id: &str, _run: &Run, out: Outcome, kept: Kept) -> Result<(), Error> {
        let store = &self.executor.store;
        let applied = store.apply_from(out.commit, Some(job_id), Some(&kept.log), SystemClock.now_ms()).await?;
        self.executor.unlogged(job_id, self.tenant, applied);
        Ok(())
    }
}
