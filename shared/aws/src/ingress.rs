//! The ingress's side of the AWS driver: the AWS adapters as the one
//! inbound pipeline's ports ([`hookflow_pipeline::inbound::handle`], the
//! same as `hookflow dev`'s `inbound.rs`). The ingress function turns API
//! Gateway's event into a [`Call`] and the [`Reply`] into its response.
//!
//! An async flow is answered after its run is stored and its deliveries
//! queued. The run's item keeps what was queued (its outbox,
//! [`crate::outbox`]): a request whose send failed after the run was
//! written is answered 503, and the caller's retry with the same
//! idempotency key, answered as the first was accepted, sends it again.
//!
//! A sync flow runs inline until its `respond` step
//! ([`hookflow_pipeline::inline`]): steps that wait for a response are sent
//! from here, within `respond.timeout`, and whatever is left when the
//! answer is ready (or the time is up: 504) goes to the queues.

use std::sync::Arc;
use std::time::Duration;

use crate::outbox::ACCEPTED;
use crate::sdk::Sender;
use crate::secrets::Secrets;
use crate::store::Store;
use crate::table::StoredRun;
use crate::{Error, metrics};
use hookflow_core::CompiledFlow;
use hookflow_core::commit::{Commit, LogEntry};
use hookflow_core::engine::Level;
use hookflow_core::engine::LogLine;
use hookflow_core::inbound::Accepted;
use hookflow_core::ports::{Claim, Clock, SystemClock};
use hookflow_core::run::Reply;
use hookflow_io::Logger;
use hookflow_pipeline::Sampler;
use hookflow_pipeline::inbound::{self, Admitted, Body, Call, InboundPorts, Verdict};

/// What the ingress needs, built once per container.
pub struct Ingress {
    pub store: Store,
    pub secrets: Secrets,
    pub sender: Sender,
    pub logger: Logger,
    /// Which requests to unknown trigger paths are logged (per instance).
    pub unknown_routes: Sampler,
}

impl Ingress {
    /// Handles one trigger request, transport-free.
    pub async fn handle<B: Body>(&self, call: Call<B>) -> Reply {
        inbound::handle(self, call).await
    }
}

/// DynamoDB, SQS and Secrets Manager as the inbound pipeline's ports.
impl InboundPorts for Ingress {
    type Error = Error;

    fn now_ms(&self) -> i64 {
        SystemClock.now_ms()
    }

    async fn flow(&self, tenant: &str, route: &str) -> Result<Option<Arc<CompiledFlow>>, Error> {
        self.store.table.by_route(tenant, route).await
    }

    async fn secret(&self, name: &str) -> Result<Option<String>, Error> {
        self.secrets.get(name).await
    }

    fn how_to_set(&self, name: &str) -> String {
        self.secrets.how_to_set(name)
    }

    /// A conditional claim: new, in progress (409) or answered. A key
    /// answered but not yet `completed` (the send after its commit may have
    /// failed) whose run has not moved on has the run's first messages sent
    /// again before it is answered; one whose run has moved on (its first
    /// messages were taken) or is gone is completed then, so that the next
    /// duplicate reads no run.
    async fn claim(&self, scope: &str, now_ms: i64) -> Result<Claim, Error> {
        // The claim outlives the longest this function can take.
        let (claim, run) = self.store.table.claim_run(scope, now_ms, Duration::from_secs(60)).await?;
        if let (Claim::Completed(_), Some(run)) = (&claim, run) {
            let done = match self.store.table.load_stored(&run).await? {
                // A copy still unwritten keeps the key `accepted`, for the
                // next retry to write it.
                Some(StoredRun { outbox, .. }) if outbox.caused_by(ACCEPTED) => {
                    self.store.redrive(&outbox, SystemClock.now_ms()).await?.unlogged.is_none()
                }
                _ => true,
            };
            if done {
                let _ = self.store.table.idempotency_sent(scope).await;
            }
        }
        Ok(claim)
    }

    async fn release(&self, scope: &str) {
        let _ = self.store.table.release(scope).await;
    }

    /// Runs a sync flow's waiting steps inline, then stores the run and
    /// queues what is left.
    async fn admit(
        &self,
        flow: &Arc<CompiledFlow>,
        accepted: Accepted,
        idem: Option<(String, i64)>,
    ) -> Result<Admitted, Error> {
        let (mut out, admitted) = hookflow_pipeline::inline::settle(
            &self.secrets,
            &self.sender,
            &self.store.table,
            &SystemClock,
            flow,
            accepted,
            idem.as_ref(),
        )
        .await;
        let lines = std::mem::take(&mut out.lines);
        // A new run: its item keeps its log from the start.
        let applied = self.store.apply_from(out.commit, Some(ACCEPTED), Some(""), SystemClock.now_ms()).await?;
        self.lines(lines);
        if let Some(e) = applied.unlogged {
            // Accepted all the same: the run, its entries and its messages
            // are stored and sent; only `hookflow logs` misses the request.
            self.logger.log(
                Level::Warn,
                "a request's log copy under its tenant not written",
                serde_json::json!({"tenant": flow.flow.tenant, "flow_id": flow.flow.id, "error": e.to_string()}),
            );
        }
        Ok(admitted)
    }

    /// The rejection's log entry is best effort: the answer does not wait
    /// on it failing.
    async fn log_request(&self, entry: LogEntry) {
        let at = entry.at;
        if let Err(e) = self.store.table.write(&Commit { log: vec![entry], ..Default::default() }, at).await {
            self.logger.log(Level::Error, "request log write failed", serde_json::json!({"error": e.to_string()}));
        }
    }

    fn lines(&self, lines: Vec<LogLine>) {
        self.logger.lines(lines);
    }

    fn unknown_routes(&self) -> &Sampler {
        &self.unknown_routes
    }

    fn counted(&self, verdict: Verdict, _flow: Option<&CompiledFlow>, received: i64) {
        self.logger.raw(&metrics::inbound(verdict.as_str(), received));
    }
}
