//! Configuration from the environment, read in one place. The SAM template
//! sets these variables on every function; `scripts/local-aws up` prints
//! them for an emulator.

use std::time::Duration;

use hookflow_core::duration::Span;
use hookflow_core::subscription::Settings;

use crate::Error;

/// Names of the AWS resources Hookflow uses.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsConfig {
    /// The DynamoDB table (`HOOKFLOW_TABLE`).
    pub table: String,
    /// The `runs` queue URL (`HOOKFLOW_RUNS_QUEUE_URL`).
    pub runs_queue_url: String,
    /// The `deliveries` queue URL (`HOOKFLOW_DELIVERIES_QUEUE_URL`).
    pub deliveries_queue_url: String,
    /// The FIFO queue of per-key ordered deliveries
    /// (`HOOKFLOW_ORDERED_QUEUE_URL`). Optional: without it, subscriptions
    /// with `ordering: per_key` are refused (501).
    pub ordered_queue_url: Option<String>,
    /// Prefix of secret names in Secrets Manager (`HOOKFLOW_SECRETS_PREFIX`,
    /// default `hookflow/`): the flow's `secret: partner-token` reads
    /// `hookflow/partner-token`.
    pub secrets_prefix: String,
    /// Days the request log and finished runs are kept
    /// (`HOOKFLOW_LOG_RETENTION_DAYS`, default 14).
    pub retention_days: u32,
    /// Days a dead delivery stays listed and replayable
    /// (`HOOKFLOW_DEAD_RETENTION_DAYS`, default 30).
    pub dead_retention_days: u32,
    /// Private ranges outbound requests may reach anyway
    /// (`HOOKFLOW_ALLOW_PRIVATE_TARGETS`, comma-separated CIDRs; empty by
    /// default: a deployment only calls public addresses).
    pub allow_private_targets: Vec<ipnet::IpNet>,
    /// The lowest level logged (`AWS_LAMBDA_LOG_LEVEL`, which Lambda sets
    /// from the function's `LoggingConfig`; default `INFO`).
    pub log_level: String,
    /// Subscriptions' schedules and windows: `HOOKFLOW_EVENT_RETRY` and
    /// `HOOKFLOW_VERIFICATION_RETRY` (comma-separated delays after the
    /// first attempt, e.g. `5s,5m,30m`), `HOOKFLOW_DISABLE_AFTER`,
    /// `HOOKFLOW_ROTATION_GRACE` (a span, e.g. `5d`); the defaults of
    /// [`Settings`] otherwise. The admin function and the dispatcher must
    /// agree: set them in the template's `Globals`. The AWS destinations
    /// allowed, `HOOKFLOW_DESTINATIONS` (comma-separated ARN patterns, the
    /// stack's `AllowedDestinationArns`; default none).
    pub subscriptions: Settings,
    /// How long the ordered queue keeps a message
    /// (`HOOKFLOW_ORDERED_RETENTION`, a span; default `14d`, the
    /// template's `MessageRetentionPeriod`): an ordered delivery is given up
    /// before the queue would drop it ([`crate::dispatcher`]).
    pub ordered_retention: Duration,
    /// The dead-letter queues whose messages the dispatcher reads back into
    /// dead deliveries (`HOOKFLOW_DEAD_LETTER_ARNS`, comma-separated ARNs).
    pub dead_letter_arns: Vec<String>,
}

impl AwsConfig {
    /// Reads the configuration; names every missing variable at once.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut missing = Vec::new();
        let mut need = |k: &str| {
            get(k).filter(|v| !v.is_empty()).unwrap_or_else(|| {
                missing.push(k.to_string());
                String::new()
            })
        };
        let table = need("HOOKFLOW_TABLE");
        let runs_queue_url = need("HOOKFLOW_RUNS_QUEUE_URL");
        let deliveries_queue_url = need("HOOKFLOW_DELIVERIES_QUEUE_URL");
        if !missing.is_empty() {
            return Err(Error::Config(format!("set {}", missing.join(", "))));
        }
        let days = |name: &str, default: u32| match get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .ok()
                .filter(|d| *d > 0)
                .ok_or_else(|| Error::Config(format!("{name}: `{v}` is not a positive number of days"))),
        };
        let retention_days = days("HOOKFLOW_LOG_RETENTION_DAYS", 14)?;
        let dead_retention_days = days("HOOKFLOW_DEAD_RETENTION_DAYS", 30)?;
        let mut allow_private_targets = Vec::new();
        for cidr in get("HOOKFLOW_ALLOW_PRIVATE_TARGETS").unwrap_or_default().split(',').map(str::trim) {
            if cidr.is_empty() {
                continue;
            }
            allow_private_targets.push(cidr.parse().map_err(|e| {
                Error::Config(format!("HOOKFLOW_ALLOW_PRIVATE_TARGETS: `{cidr}` is not a CIDR range: {e}"))
            })?);
        }
        let spans = |k: &str| -> Result<Vec<Duration>, Error> {
            get(k)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| v.parse::<Span>().map(Span::get).map_err(|e| Error::Config(format!("{k}: `{v}`: {e}"))))
                .collect()
        };
        let mut subscriptions =
            Settings::default().with_schedules(&spans("HOOKFLOW_EVENT_RETRY")?, &spans("HOOKFLOW_VERIFICATION_RETRY")?);
        for (k, field) in [
            ("HOOKFLOW_DISABLE_AFTER", &mut subscriptions.disable_after),
            ("HOOKFLOW_ROTATION_GRACE", &mut subscriptions.rotation_grace),
        ] {
            match spans(k)?.as_slice() {
                [] => {}
                [one] => *field = *one,
                _ => return Err(Error::Config(format!("{k}: one span, e.g. `5d`"))),
            }
        }
        let ordered_retention = match spans("HOOKFLOW_ORDERED_RETENTION")?.as_slice() {
            [] => Duration::from_secs(14 * 86_400),
            [one] if *one >= Duration::from_secs(60) => *one,
            _ => {
                return Err(Error::Config(
                    "HOOKFLOW_ORDERED_RETENTION: one span of at least 60s, the ordered queue's MessageRetentionPeriod"
                        .into(),
                ));
            }
        };
        let dead_letter_arns: Vec<String> = get("HOOKFLOW_DEAD_LETTER_ARNS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect();
        let ordered_queue_url = get("HOOKFLOW_ORDERED_QUEUE_URL").filter(|v| !v.is_empty());
        // The stack's own queues are never a destination, whatever the
        // patterns allow.
        let own =
            [&runs_queue_url, &deliveries_queue_url].into_iter().chain(&ordered_queue_url).chain(&dead_letter_arns);
        subscriptions.destinations =
            hookflow_core::destination::Allowed::parse(&get("HOOKFLOW_DESTINATIONS").unwrap_or_default())
                .except_own(own.map(String::as_str));
        Ok(AwsConfig {
            ordered_retention,
            dead_letter_arns,
            allow_private_targets,
            subscriptions,
            ordered_queue_url,
            log_level: get("AWS_LAMBDA_LOG_LEVEL").unwrap_or_else(|| "INFO".into()),
            table,
            runs_queue_url,
            deliveries_queue_url,
            secrets_prefix: get("HOOKFLOW_SECRETS_PREFIX").unwrap_or_else(|| "hookflow/".into()),
            retention_days,
            dead_retention_days,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_missing_variable() {
        let e = AwsConfig::from_lookup(|k| (k == "HOOKFLOW_TABLE").then(|| "t".to_string())).unwrap_err();
        assert_eq!(e.to_string(), "configuration: set HOOKFLOW_RUNS_QUEUE_URL, HOOKFLOW_DELIVERIES_QUEUE_URL");
    }

    #[test]
    fn defaults_and_bad_retention() {
        let env = |extra: Option<&'static str>| {
            move |k: &str| match k {
                "HOOKFLOW_TABLE" => Some("t".to_string()),
                "HOOKFLOW_RUNS_QUEUE_URL" | "HOOKFLOW_DELIVERIES_QUEUE_URL" => Some("u".to_string()),
                "HOOKFLOW_LOG_RETENTION_DAYS" | "HOOKFLOW_DEAD_RETENTION_DAYS" => extra.map(String::from),
                _ => None,
            }
        };
        let c = AwsConfig::from_lookup(env(None)).unwrap();
        assert_eq!((c.secrets_prefix.as_str(), c.retention_days, c.dead_retention_days), ("hookflow/", 14, 30));
        let e = AwsConfig::from_lookup(env(Some("two weeks"))).unwrap_err();
        assert!(e.to_string().contains("HOOKFLOW_LOG_RETENTION_DAYS: `two weeks`"), "{e}");
        assert_eq!(AwsConfig::from_lookup(env(Some("90"))).unwrap().dead_retention_days, 90);
        assert_eq!(c.ordered_queue_url, None);
        assert_eq!(c.subscriptions.disable_after, Settings::default().disable_after);
        assert_eq!((c.ordered_retention, c.dead_letter_arns.len()), (Duration::from_secs(1_209_600), 0));
    }

    #[test]
    fn destinations_are_the_stack_s_patterns_never_its_own_queues() {
        let env = |k: &str| match k {
            "HOOKFLOW_TABLE" => Some("t".to_string()),
            "HOOKFLOW_RUNS_QUEUE_URL" => Some("https://sqs.us-east-1.amazonaws.com/123456789012/runs".to_string()),
            "HOOKFLOW_DELIVERIES_QUEUE_URL" => Some("https://sqs.us-east-1.amazonaws.com/123456789012/dq".to_string()),
            "HOOKFLOW_DEAD_LETTER_ARNS" => Some("arn:aws:sqs:us-east-1:123456789012:dlq".to_string()),
            "HOOKFLOW_DESTINATIONS" => Some("arn:aws:sqs:us-east-1:123456789012:*".to_string()),
            _ => None,
        };
        let allowed = AwsConfig::from_lookup(env).unwrap().subscriptions.destinations;
        assert!(allowed.check("arn:aws:sqs:us-east-1:123456789012:orders").is_ok());
        for own in ["runs", "dq", "dlq"] {
            assert!(allowed.check(&format!("arn:aws:sqs:us-east-1:123456789012:{own}")).is_err(), "{own}");
        }
        let none = AwsConfig::from_lookup(|k| if k == "HOOKFLOW_DESTINATIONS" { None } else { env(k) }).unwrap();
        assert!(none.subscriptions.destinations.check("arn:aws:sqs:us-east-1:123456789012:orders").is_err());
    }

    #[test]
    fn subscription_settings_from_spans() {
        let env = |k: &str| match k {
            "HOOKFLOW_TABLE" | "HOOKFLOW_RUNS_QUEUE_URL" | "HOOKFLOW_DELIVERIES_QUEUE_URL" => Some("u".to_string()),
            "HOOKFLOW_EVENT_RETRY" => Some("1s, 2s".to_string()),
            "HOOKFLOW_DISABLE_AFTER" => Some("3d".to_string()),
            "HOOKFLOW_ORDERED_QUEUE_URL" => Some("fifo".to_string()),
            "HOOKFLOW_ORDERED_RETENTION" => Some("2m".to_string()),
            "HOOKFLOW_DEAD_LETTER_ARNS" => Some("arn:a, arn:b.fifo".to_string()),
            _ => None,
        };
        let c = AwsConfig::from_lookup(env).unwrap();
        assert_eq!(
            c.subscriptions.retry,
            Settings::default().with_schedules(&[Duration::from_secs(1), Duration::from_secs(2)], &[]).retry
        );
        assert_ne!(c.subscriptions.retry, Settings::default().retry);
        assert_eq!(c.subscriptions.disable_after, Duration::from_secs(3 * 86_400));
        assert_eq!(c.ordered_queue_url.as_deref(), Some("fifo"));
        assert_eq!(c.ordered_retention, Duration::from_secs(120));
        assert_eq!(c.dead_letter_arns, ["arn:a", "arn:b.fifo"]);
        let bad = |k: &'static str, v: &'static str| move |q: &str| if q == k { Some(v.to_string()) } else { env(q) };
        let e = AwsConfig::from_lookup(bad("HOOKFLOW_EVENT_RETRY", "1s,soon")).unwrap_err();
        assert!(e.to_string().contains("HOOKFLOW_EVENT_RETRY: `soon`"), "{e}");
        let e = AwsConfig::from_lookup(bad("HOOKFLOW_ROTATION_GRACE", "1h,2h")).unwrap_err();
        assert!(e.to_string().contains("HOOKFLOW_ROTATION_GRACE"), "{e}");
        let e = AwsConfig::from_lookup(bad("HOOKFLOW_ORDERED_RETENTION", "30s")).unwrap_err();
        assert!(e.to_string().contains("HOOKFLOW_ORDERED_RETENTION: one span of at least 60s"), "{e}");
    }
}
