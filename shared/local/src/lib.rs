//! # hookflow-local
//!
//! The embedded runtime: everything `hookflow dev` needs to run flows on one
//! machine with no AWS and no Docker. Same core as the Lambda functions; the
//! adapters differ. The HTTP sender and the logger come from `hookflow-io`,
//! shared with the Lambda functions.
//!
//! | module | role |
//! |---|---|
//! | [`store`] | SQLite: runs, job queue with delays and leases, request log, idempotency, dead deliveries |
//! | [`secrets`] | secrets from a file and `HOOKFLOW_SECRET_*` variables |
//! | [`subscriptions`] | subscriptions and keyrings, cached over the store |
//! | [`runtime`] | the flows, the workers that drive runs and deliveries |
//! | [`inbound`] | the trigger endpoint `ANY /hooks/{tenant}/{path}` |
//! | [`admin`] | the admin API's backend (routes in `hookflow-admin`): flow files, the store's subscriptions and events |

pub mod admin;
pub mod dev;
pub mod inbound;
pub mod runtime;
pub mod secrets;
pub mod store;
pub mod subscriptions;

pub use hookflow_io::{logger, sender};
pub use runtime::{Runtime, RuntimeConfig};

/// Errors of the embedded runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Store(String),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Core(#[from] hookflow_core::Error),
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock)
}

pub use hookflow_core::duration::rfc3339;
