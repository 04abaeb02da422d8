//! # hookflow-io
//!
//! The I/O both runtimes share — `hookflow dev` and the Lambda functions:
//!
//! | module | role |
//! |---|---|
//! | [`sender`] | one HTTP attempt: secrets resolved, signed, SSRF-guarded, no redirects |
//! | [`logger`] | JSON lines on stdout (CloudWatch reads the same), secret values redacted |
//! | [`probe`] | a request of the operator's own to the deployment's trigger (the console's test request) |
//! | `server` | (feature `server`) the bounded HTTP/1 server of every listener `hookflow` opens |

pub mod logger;
pub mod probe;
pub mod sender;
#[cfg(feature = "server")]
pub mod server;

pub use logger::{Format, Logger};
pub use probe::Probe;
pub use sender::Sender;

/// Errors of building the I/O.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
}
