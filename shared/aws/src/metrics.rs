//! CloudWatch metrics in Embedded Metric Format: a JSON log line that
//! CloudWatch turns into metrics, with no API call and no agent. Namespace
//! `Hookflow`; the template's dashboard reads these names.

use serde_json::{Value, json};

/// `Deliveries` by `Outcome` (`succeeded` / `retried` / `halted` / `dead`),
/// with the attempt's latency as `DeliveryLatency` (ms).
pub fn delivery(outcome: &str, latency_ms: u64, now_ms: i64) -> Value {
    json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": "Hookflow",
                "Dimensions": [["Outcome"]],
                "Metrics": [{"Name": "Deliveries", "Unit": "Count"}, {"Name": "DeliveryLatency", "Unit": "Milliseconds"}],
            }],
        },
        "Outcome": outcome,
        "Deliveries": 1,
        "DeliveryLatency": latency_ms,
    })
}

/// `Inbound` by `Verdict` (`accepted` / `rejected` / `duplicate`).
pub fn inbound(verdict: &str, now_ms: i64) -> Value {
    json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": "Hookflow",
                "Dimensions": [["Verdict"]],
                "Metrics": [{"Name": "Inbound", "Unit": "Count"}],
            }],
        },
        "Verdict": verdict,
        "Inbound": 1,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_declared_metric_and_dimension_is_in_the_line() {
        for line in [super::delivery("dead", 12, 5), super::inbound("accepted", 5)] {
            let spec = &line["_aws"]["CloudWatchMetrics"][0];
            for m in spec["Metrics"].as_array().unwrap() {
                assert!(line[m["Name"].as_str().unwrap()].is_number(), "{line}");
            }
            for d in spec["Dimensions"][0].as_array().unwrap() {
                assert!(line[d.as_str().unwrap()].is_string(), "{line}");
            }
        }
    }
}
