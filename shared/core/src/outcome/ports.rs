//! The ports: what the engine needs from the world, as traits.
//!
//! Each has two adapters (the HTTP [`Sender`] is one, shared): `hookflow-local` (SQLite, a secrets file, reqwest)
//! for `hookflow dev` and the tests, and `hookflow-aws` (DynamoDB, SQS,
//! Secrets Manager) for the Lambda functions. The core never calls them
//! itself — its functions take data and return data ([`crate::run::advance`],
//! [`crate::attempt::decide`], [`crate::commit::Commit`]) — and the
//! pipelines (`hookflow-pipeline`: the inbound request, the delivery
//! attempt) are generic over them. Only what a pipeline uses is a port.
//!
//! Futures are `Send` so the drivers can run on a multi-threaded runtime.

use std::future::Future;

use crate::attempt::Attempt;
use crate::run::{Delivery, Reply};

/// A failure of an adapter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    pub message: String,
    /// Trying again later may succeed (throttling, a network blip); a
    /// permanent error (a malformed item, a missing table) will not.
    pub transient: bool,
    /// The value exists but can never be read as it is (a keyring sealed
    /// under another key): no retry helps, a new secret does. A delivery
    /// of a subscription's event whose keyring is unreadable is dead at
    /// once; any other secret failure is retried.
    pub unreadable: bool,
}

impl PortError {
    pub fn transient(message: impl Into<String>) -> Self {
        PortError { message: message.into(), transient: true, unreadable: false }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        PortError { message: message.into(), transient: false, unreadable: false }
    }

    pub fn unreadable(message: impl Into<String>) -> Self {
        PortError { message: message.into(), transient: false, unreadable: true }
    }
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key is new (or its record expired): go on.
    Claimed,
    /// A request with this key is being handled now.
    InProgress,
    /// A request with this key was answered: answer the same.
    Completed(Reply),
}

/// What kind of failure an adapter's error is, for the pipelines to act on
/// (never by matching message text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A conditional write lost: another worker changed the record since it
    /// was read. Read again and recompute.
    Conflict,
    /// A unique record (an event id inside its window) exists already:
    /// nothing of the write was applied.
    Duplicate,
    /// Something does not fit the store or the queue (refused before
    /// anything was written).
    TooLarge,
    /// The store or a service did not answer; trying again later may work.
    Unavailable,
    /// Anything else: malformed data, configuration.
    Other,
}

/// An adapter error that says what kind of failure it is.
pub trait Classify: std::error::Error + Send + Sync + 'static {
    fn kind(&self) -> ErrorKind;
}

impl Classify for PortError {
    fn kind(&self) -> ErrorKind {
        if self.transient { ErrorKind::Unavailable } else { ErrorKind::Other }
    }
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
