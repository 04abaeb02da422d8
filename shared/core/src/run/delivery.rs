//! An outbound request to send, with everything a dispatcher needs, and
//! what it is for.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::flow::{SecretRule, SignSpec};
use crate::request::OutboundRequest;
use crate::retry::RetryPolicy;
use crate::status::StatusPolicy;

/// An outbound request to send, with everything the dispatcher needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Also the `webhook-id`: stable across retries, so receivers can dedupe.
    pub id: String,
    pub run_id: String,
    pub event_id: String,
    pub tenant: String,
    pub flow_id: String,
    pub step: String,
    pub request: OutboundRequest,
    pub status_policy: StatusPolicy,
    pub retry: RetryPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<SignSpec>,
    pub timeout: Duration,
    /// The run waits for the outcome.
    pub wait: bool,
    /// What the delivery is for: a flow's step (the default), an event for
    /// a subscription, or a subscription's verification request.
    #[serde(default, skip_serializing_if = "Purpose::is_step")]
    pub purpose: Purpose,
    /// The hosts each secret the request carries may go to (the flow's
    /// `secrets:`), checked by the sender before it connects.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_hosts: BTreeMap<String, SecretRule>,
    /// Its request is its subscription's transform's already (done at
    /// the first attempt; retries and replays send it as it is).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shaped: bool,
    /// A flow step's destination limits (its flow's `limits:` for the
    /// host it goes to), as they were when it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<crate::limit::Keyed>,
}

impl Delivery {
    /// Whether it goes to an AWS destination (its URL an ARN), read off
    /// the URL as stored: nothing is built.
    pub fn to_aws(&self) -> bool {
        matches!(self.request.url.0.first(), Some(crate::request::Part::Text(t)) if crate::destination::is_arn(t))
    }

    /// The signature headers of `body` sent at `timestamp` (seconds), if
    /// it is signed, with the signing secret's value from `secrets`; why
    /// not otherwise (a secret unset or unusable: the attempt's `secret`
    /// failure). Both senders, HTTP and AWS, sign with it.
    pub fn signature(
        &self,
        secrets: &std::collections::HashMap<String, String>,
        body: &[u8],
        timestamp: i64,
    ) -> Result<Vec<(String, String)>, String> {
        let Some(spec) = &self.sign else { return Ok(Vec::new()) };
        let Some(secret) = secrets.get(&spec.secret) else {
            return Err(format!("signing secret `{}` is not set", spec.secret));
        };
        crate::request::signature_headers(spec, secret, &self.id, timestamp, body)
            .map_err(|e| format!("signing secret `{}`: {e}", spec.secret))
    }

    /// Why the request may not go to `host` with the secrets it carries:
    /// a secret bound to other hosts (the name, or its part before `#`).
    pub fn secret_refused(&self, host: &str) -> Option<String> {
        self.request.secret_names().into_iter().find_map(|name| {
            let rule = self.secret_hosts.get(name).or_else(|| self.secret_hosts.get(name.split('#').next()?))?;
            (!rule.allows(host))
                .then(|| format!("secret `{name}` may be sent only to {}, not to {host}", rule.hosts.join(", ")))
        })
    }
}

/// What a delivery is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Purpose {
    /// A flow's `http` step.
    #[default]
    Step,
    /// A published event, to a subscription.
    Event { subscription: String },
    /// A subscription's verification request: only a response that echoes
    /// `token` succeeds.
    Verify { subscription: String, token: String },
}

impl Purpose {
    pub fn is_step(&self) -> bool {
        matches!(self, Purpose::Step)
    }

    /// The subscription the delivery is for, if any.
    pub fn subscription(&self) -> Option<&str> {
        match self {
            Purpose::Step => None,
            Purpose::Event { subscription } | Purpose::Verify { subscription, .. } => Some(subscription),
        }
    }
}
