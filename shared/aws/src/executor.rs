//! The executor: one SQS batch of run inputs in, runs advanced.
//!
//! For each message: the run is loaded, its flow found by id, the input fed
//! to [`advance`], and what the effects ask for ([`engine::record`]) applied
//! — the run's new state and log in DynamoDB, its deliveries and next
//! inputs on SQS, with those messages kept in the run's item as its outbox
//! ([`crate::outbox`]).
//!
//! A message that comes back (its send failed after the table write, the
//! function died or timed out, or SQS delivered it twice) finds its input
//! already applied: the run does not start twice or take a result twice.
//! If the run's outbox was made by this very input, the outbox is sent
//! again — the run waits on it, and which copy this is (SQS's duplicate, the
//! message back after a try that did not finish, one moved back from the
//! DLQ) cannot be told. Otherwise the message is dropped (a start) or its
//! `ignored` entry logged (a result nobody waits for). Two
//! copies handled at the same moment race on the run's revision
//! ([`crate::table::Table::write`]): the loser fails its message,
//! which comes back and finds the input applied.

use std::sync::Arc;

use crate::Error;
use crate::batch::{Received, each_message};
use crate::queue::Message;
use crate::store::{Applied, Store};
use crate::table::StoredRun;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
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
        each_message(event, &self.logger, |m| {
            let me = self.clone();
            async move { me.one(&m).await }
        })
        .await
    }

    fn drop_message(&self, m: &Message, why: &str) -> Result<(), Error> {
        self.logger.log(Level::Warn, "run input dropped", json!({"job": m.id, "tenant": m.tenant, "reason": why}));
        Ok(())
    }

    async fn one(&self, received: &Received) -> Result<(), Error> {
        let now = SystemClock.now_ms();
        let m = Message::parse(&received.body)?;
        if m.kind != JobKind::Run {
            return Err(Error::Malformed(format!("message {}: a {} job on the runs queue", m.id, m.kind.as_str())));
        }
        if self.store.queues.postpone(&m, now).await? {
            return Ok(());
        }
        let job: RunJob =
            serde_json::from_str(&m.payload).map_err(|e| Error::Malformed(format!("message {}: {e}", m.id)))?;
        let Some(StoredRun { run, outbox, log }) = self.store.table.load_stored(&job.run_id).await? else {
            return self.drop_message(&m, "its run does not exist");
        };
        let flow = self.store.table.flow_of(&run).await?;
        let Some(flow) = flow else {
            return self.drop_message(&m, "its flow no longer exists");
        };
        let start = matches!(job.input, Input::Start);
        let loaded = run.revision;
        let advanced = advance(&flow, run, job.input);
        let applied = match &advanced {
            Err(hookflow_core::Error::Run(_)) => start,
            Ok((run, _)) => run.revision == loaded,
            Err(_) => false,
        };
        if applied && outbox.caused_by(&m.id) {
            // This input's commit is written; its send may not have
            // finished. Which copy this is (SQS's duplicate, the message
            // back after a failed try, one moved back from the DLQ) cannot
            // be told, so every one sends again: at least once.
            let again = self.store.redrive(&outbox, SystemClock.now_ms()).await?;
            self.logger.log(
                Level::Info,
                "run input applied already: its messages sent again",
                json!({"job": m.id, "tenant": m.tenant, "messages": again.messages, "receives": received.receives}),
            );
            self.unlogged(&m, again);
            return Ok(());
        }
        let (run, effects) = match advanced {
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
        let applied = self.store.apply_from(out.commit, Some(&m.id), Some(&log), SystemClock.now_ms()).await?;
        self.unlogged(&m, applied);
        Ok(())
    }

    /// Logs the log items a commit left unwritten (its run stands).
    fn unlogged(&self, m: &Message, applied: Applied) {
        if let Some(e) = applied.unlogged {
            self.logger.log(
                Level::Warn,
                "log items of a run's commit not written",
                json!({"job": m.id, "tenant": m.tenant, "error": e.to_string()}),
            );
        }
    }
}
