//! # hookflow-local
//!
//! The embedded runtime: everything `hookflow dev` needs to run flows on one
//! machine with no AWS and no Docker. Same core and the same pipelines
//! (`hookflow-pipeline`) as the Lambda functions; the adapters differ
//! (SQLite, a secrets file). The HTTP sender and the logger come from
//! `hookflow-io`, shared with the Lambda functions. Its modules are listed
//! in `docs/ARCHITECTURE.md` ("Modules").

pub mod admin;
pub mod dev;
pub mod flows;
pub mod inbound;
pub mod limiter;
pub mod metrics;
pub mod runtime;
pub mod secrets;
mod server;
pub mod store;
pub mod subscriptions;

pub use hookflow_io::{logger, sender};
pub use runtime::{Runtime, RuntimeConfig};

/// Errors of the embedded runtime. Callers act on the variant, never on the
/// message: SQLite's failures are sorted by their result codes
/// ([`store`]'s `From<rusqlite::Error>`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not do what was asked (I/O, a full disk, a busy
    /// database past its timeout, the writer thread gone); trying again
    /// later may work.
    #[error("store: {0}")]
    Unavailable(String),
    /// A change computed over a record that changed since it was read (a
    /// subscription's version): nothing of the commit was written.
    #[error("store: conflict: {0}")]
    Conflict(String),
    /// A unique record exists already (an event id inside its window):
    /// nothing of the commit was written.
    #[error("store: duplicate: {0}")]
    Duplicate(String),
    /// A stored row or job is not what this version wrote.
    #[error("store: malformed: {0}")]
    Malformed(String),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Core(#[from] hookflow_core::Error),
}

impl hookflow_core::ports::Classify for Error {
    fn kind(&self) -> hookflow_core::ports::ErrorKind {
        use hookflow_core::ports::ErrorKind;
        match self {
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Duplicate(_) => ErrorKind::Duplicate,
            Error::Malformed(_) | Error::Config(_) | Error::Core(_) => ErrorKind::Other,
        }
    }
}

impl From<hookflow_core::ports::PortError> for Error {
    fn from(e: hookflow_core::ports::PortError) -> Self {
        if e.transient { Error::Unavailable(e.message) } else { Error::Malformed(e.message) }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock)
}

pub use hookflow_core::duration::rfc3339;
