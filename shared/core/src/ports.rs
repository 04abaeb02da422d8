//! The ports: what the engine needs from the world, as traits.
//!
//! Each has two adapters (the HTTP [`Sender`] is one, shared): `hookflow-local` (SQLite, a secrets file, reqwest)
//! for `hookflow dev` and the tests, and `hookflow-aws` (DynamoDB, SQS,
//! Secrets Manager) for the Lambda functions. The core never calls them
//! itself — its functions take data and return data ([`crate::run::advance`],
//! [`crate::attempt::decide`], [`crate::commit::Commit`]) — so the traits
//! say what an adapter must offer the code that drives the core.
//!
//! Futures are `Send` so the drivers can run on a multi-threaded runtime.

use std::future::Future;
use std::sync::Arc;

use crate::CompiledFlow;
use crate::attempt::Attempt;
use crate::commit::{Commit, LogEntry, NewJob};
use crate::run::{Delivery, Reply, Run};

/// A failure of an adapter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    pub message: String,
    /// Trying again later may succeed (throttling, a network blip); a
    /// permanent error (a malformed item, a missing table) will not.
    pub transient: bool,
}

impl PortError {
    pub fn transient(message: impl Into<String>) -> Self {
        PortError { message: message.into(), transient: true }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        PortError { message: message.into(), transient: false }
    }
}

/// Where the flows are: looked up by trigger route on every inbound
/// request, by id when a run goes on.
pub trait FlowStore: Send + Sync {
    fn by_route(
        &self,
        tenant: &str,
        path: &str,
    ) -> impl Future<Output = Result<Option<Arc<CompiledFlow>>, PortError>> + Send;
    fn by_id(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Arc<CompiledFlow>>, PortError>> + Send;
}

/// Runs, the request log and idempotency records.
pub trait RunStore: Send + Sync {
    /// Applies a [`Commit`] as one unit (see its docs for what "one unit"
    /// means on each adapter). Its jobs go to the [`Queue`].
    fn commit(&self, commit: Commit) -> impl Future<Output = Result<(), PortError>> + Send;
    fn load_run(&self, id: &str) -> impl Future<Output = Result<Option<Run>, PortError>> + Send;
    /// The reply stored under an idempotency scope, unless it has expired.
    fn idempotent_reply(
        &self,
        scope: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<Reply>, PortError>> + Send;
    /// Request-log entries of one run, oldest first.
    fn run_log(&self, run_id: &str) -> impl Future<Output = Result<Vec<LogEntry>, PortError>> + Send;
}

/// The job queue: jobs become visible at `not_before`.
pub trait Queue: Send + Sync {
    fn enqueue(&self, jobs: Vec<NewJob>, now_ms: i64) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Secret values by name (`name` or `name#key` for a JSON secret's field).
/// `Ok(None)` is "no such secret": the caller decides whether that rejects
/// (inbound verification) or retries (a delivery: it may be created later).
pub trait SecretStore: Send + Sync {
    fn secret(&self, name: &str) -> impl Future<Output = Result<Option<String>, PortError>> + Send;
}

/// Sends one attempt of a delivery: resolves its secret placeholders,
/// signs, guards against SSRF, and reports what happened. Never fails:
/// every failure is an [`Attempt`] with an error class, which
/// [`crate::attempt::decide`] turns into retry or halt.
pub trait Sender: Send + Sync {
    /// `secrets` holds the values of the secrets the delivery uses, fetched
    /// through a [`SecretStore`] just before; a missing one fails the
    /// attempt as `secret` (retried).
    fn send(
        &self,
        delivery: &Delivery,
        secrets: &std::collections::HashMap<String, String>,
    ) -> impl Future<Output = Attempt> + Send;
}

/// The time, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}
