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
//! | [`runtime`] | the flows, the workers that drive runs and deliveries |
//! | [`inbound`] | the trigger endpoint `ANY /hooks/{tenant}/{path}` |

pub mod dev;
pub mod inbound;
pub mod runtime;
pub mod secrets;
pub mod store;

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
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `2026-11-23T20:37:05.123Z` for a Unix time in milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339(1_614_265_330_123), "2021-02-25T15:02:10.123Z");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
