//! # hookflow-aws
//!
//! The AWS driver: every port of Hookflow's pipelines
//! ([`hookflow_core::ports`], [`hookflow_pipeline`]) and the admin API's
//! backend over DynamoDB (one table), SQS (runs, deliveries, ordered
//! deliveries) and Secrets Manager — the mirror of `hookflow-local`, which
//! does the same over SQLite. Each Lambda function's `main.rs` builds one
//! of [`Ingress`], [`Executor`], [`Dispatcher`] or [`AwsBackend`] and feeds
//! it its events. Its modules are listed in `docs/ARCHITECTURE.md`
//! ("Modules").
//!
//! Secrets never reach DynamoDB or SQS: what is stored and queued carries
//! placeholders, resolved only by the dispatcher at send time.

pub mod admin;
pub mod batch;
pub mod cache;
pub mod config;
pub mod dispatcher;
pub mod executor;
pub mod ingress;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod provision;
pub mod queue;
pub mod sdk;
pub mod secrets;
pub mod store;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;

pub use admin::AwsBackend;
pub use config::AwsConfig;
pub use dispatcher::Dispatcher;
pub use executor::Executor;
pub use ingress::Ingress;

pub use limits::{AFTER_SEND, MAX_STEP_TIMEOUT};

/// Errors of the AWS adapters.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required environment variable is missing or malformed.
    #[error("configuration: {0}")]
    Config(String),
    /// An AWS call failed; `transient` when trying again may help.
    #[error("{service} {operation}: {message}")]
    Aws { service: &'static str, operation: &'static str, message: String, transient: bool },
    /// A conditional write lost: another worker wrote this run (or key)
    /// first. The input it carried was applied, or is being applied, there.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A published event's id is inside its idempotency window: nothing of
    /// the commit was written.
    #[error("{0}")]
    Duplicate(String),
    /// A job does not fit in an SQS message: refused before anything of
    /// its commit is written.
    #[error("{0}")]
    TooLarge(String),
    /// An item or message is not what this version wrote.
    #[error("{0}")]
    Malformed(String),
    /// A message left unstarted: its attempt could not finish before the
    /// function's deadline. It goes back to the queue as it came.
    #[error("not started: {0}")]
    NotStarted(String),
    #[error(transparent)]
    Core(#[from] hookflow_core::Error),
}

impl Error {
    /// An SDK error, with its service error's message when there is one.
    pub(crate) fn aws<E, R>(
        service: &'static str,
        operation: &'static str,
        e: aws_sdk_dynamodb::error::SdkError<E, R>,
    ) -> Self
    where
        E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
        R: std::fmt::Debug + 'static,
    {
        use aws_sdk_dynamodb::error::SdkError;
        let transient =
            matches!(e, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_))
                || e.as_service_error().and_then(|s| s.code()).is_some_and(|c| {
                    c.contains("Throttl")
                        || c.contains("ProvisionedThroughputExceeded")
                        || c == "InternalServerError"
                        // Secrets Manager's name for its 5xx.
                        || c == "InternalServiceError"
                });
        let message = match e.as_service_error() {
            Some(s) => format!("{}: {}", s.code().unwrap_or("error"), s.message().unwrap_or("")),
            None => chain(&e),
        };
        Error::Aws { service, operation, message, transient }
    }
}

/// An error and its causes, each said once (no debug dump), and what to do
/// when the cause is a missing credential.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut said: Vec<String> = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !said.iter().any(|s| s.contains(&text)) {
            said.push(text);
        }
        cause = c.source();
    }
    let text = said.join(": ");
    if text.contains("credentials") {
        format!(
            "{text} — no usable AWS credentials: run `aws configure` (or `aws sso login`), or set AWS_PROFILE, \
             or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; and AWS_REGION"
        )
    } else {
        text
    }
}

impl hookflow_core::ports::Classify for Error {
    fn kind(&self) -> hookflow_core::ports::ErrorKind {
        use hookflow_core::ports::ErrorKind;
        match self {
            Error::Aws { transient: true, .. } => ErrorKind::Unavailable,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Duplicate(_) => ErrorKind::Duplicate,
            Error::TooLarge(_) => ErrorKind::TooLarge,
            // Not tried: trying again later works.
            Error::NotStarted(_) => ErrorKind::Unavailable,
            Error::Aws { .. } | Error::Config(_) | Error::Malformed(_) | Error::Core(_) => ErrorKind::Other,
        }
    }
}

/// A port's failure (the secret store's) as an AWS error.
impl From<hookflow_core::ports::PortError> for Error {
    fn from(e: hookflow_core::ports::PortError) -> Self {
        Error::Aws {
            service: "Secrets Manager",
            operation: "GetSecretValue",
            message: e.message,
            transient: e.transient,
        }
    }
}

impl From<Error> for hookflow_core::ports::PortError {
    fn from(e: Error) -> Self {
        let transient = matches!(e, Error::Aws { transient: true, .. });
        hookflow_core::ports::PortError { message: e.to_string(), transient, unreadable: false }
    }
}
