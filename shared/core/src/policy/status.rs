//! Which response codes count as success, which are worth retrying, and which
//! halt the step.
//!
//! Each list a step gives replaces that class's default; among the lists that
//! match a code, the narrowest range wins (so `retry: [408]` beats
//! `halt: [400-499]`), and a code no list matches halts. Defaults: `2xx`
//! succeeds; 408, 425, 429 and `5xx` retry; everything else halts, `410` as
//! "gone". Network errors and timeouts always retry.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// One status code (`404`) or an inclusive range (`"500-599"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub lo: u16,
    pub hi: u16,
}

impl StatusRange {
    pub const fn new(lo: u16, hi: u16) -> Self {
        StatusRange { lo, hi }
    }
    pub fn contains(&self, code: u16) -> bool {
        self.lo <= code && code <= self.hi
    }
    fn width(&self) -> u16 {
        self.hi - self.lo
    }
}

impl std::str::FromStr for StatusRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid status `{s}`: write a code from 100 to 599 or a range like `500-599`");
        let code = |t: &str| -> Result<u16, String> {
            let n: u16 = t.trim().parse().map_err(|_| bad())?;
            if (100..=599).contains(&n) { Ok(n) } else { Err(bad()) }
        };
        match s.split_once('-') {
            Some((a, b)) => {
                let (lo, hi) = (code(a)?, code(b)?);
                if lo > hi {
                    return Err(format!("invalid status range `{s}`: {lo} is above {hi}"));
                }
                Ok(StatusRange { lo, hi })
            }
            None => code(s).map(|c| StatusRange { lo: c, hi: c }),
        }
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi { write!(f, "{}", self.lo) } else { write!(f, "{}-{}", self.lo, self.hi) }
    }
}

impl Serialize for StatusRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.lo == self.hi { s.serialize_u16(self.lo) } else { s.collect_str(self) }
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Code(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Code(n) => n.to_string().parse().map_err(de::Error::custom),
            Raw::Text(t) => t.parse().map_err(de::Error::custom),
        }
    }
}

impl JsonSchema for StatusRange {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StatusRange".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A status code (`404`) or an inclusive range (`\"500-599\"`).",
            "oneOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "pattern": "^[1-5][0-9]{2}(-[1-5][0-9]{2})?$" }
            ]
        })
    }
}

/// A step's `status:` block. Each list given replaces that class's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusPolicy {
    /// Codes that count as success. Default: `200-299`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<Vec<StatusRange>>,
    /// Codes worth retrying. Default: 408, 425, 429, `500-599`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Vec<StatusRange>>,
    /// Codes that stop retrying at once. Default: every other code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt: Option<Vec<StatusRange>>,
}

/// What a response code means for the step that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Success,
    Retry,
    Halt,
    /// `410 Gone`: halts, and tells subscriptions to disable the endpoint.
    Gone,
}

const DEFAULT_SUCCESS: &[StatusRange] = &[StatusRange::new(200, 299)];
const DEFAULT_RETRY: &[StatusRange] =
    &[StatusRange::new(408, 408), StatusRange::new(425, 425), StatusRange::new(429, 429), StatusRange::new(500, 599)];

impl StatusPolicy {
    /// Classifies a response code.
    pub fn classify(&self, code: u16) -> Verdict {
        let success = self.success.as_deref().unwrap_or(DEFAULT_SUCCESS);
        let retry = self.retry.as_deref().unwrap_or(DEFAULT_RETRY);
        let halt = self.halt.as_deref().unwrap_or(&[]);
        let narrowest = |list: &[StatusRange]| list.iter().filter(|r| r.contains(code)).map(StatusRange::width).min();
        // Ties go to the first class in this order.
        let best = [
            (Verdict::Success, narrowest(success)),
            (Verdict::Retry, narrowest(retry)),
            (Verdict::Halt, narrowest(halt)),
        ]
        .into_iter()
        .filter_map(|(v, w)| w.map(|w| (v, w)))
        .min_by_key(|&(_, w)| w)
        .map(|(v, _)| v);
        match best {
            Some(Verdict::Halt) | None if code == 410 => Verdict::Gone,
            Some(v) => v,
            None => Verdict::Halt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(list: &[&str]) -> Option<Vec<StatusRange>> {
        Some(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    #[test]
    fn defaults() {
        let p = StatusPolicy::default();
        for (code, v) in [
            (200, Verdict::Success),
            (204, Verdict::Success),
            (299, Verdict::Success),
            (301, Verdict::Halt),
            (400, Verdict::Halt),
            (404, Verdict::Halt),
            (408, Verdict::Retry),
            (410, Verdict::Gone),
            (425, Verdict::Retry),
            (429, Verdict::Retry),
            (500, Verdict::Retry),
            (503, Verdict::Retry),
            (599, Verdict::Retry),
        ] {
            assert_eq!(p.classify(code), v, "code {code}");
        }
    }

    #[test]
    fn narrowest_range_wins() {
        let p = StatusPolicy {
            success: None,
            retry: ranges(&["408", "429", "500-599"]),
            halt: ranges(&["400-499", "503"]),
        };
        assert_eq!(p.classify(408), Verdict::Retry);
        assert_eq!(p.classify(429), Verdict::Retry);
        assert_eq!(p.classify(404), Verdict::Halt);
        assert_eq!(p.classify(503), Verdict::Halt);
        assert_eq!(p.classify(502), Verdict::Retry);
    }

    #[test]
    fn a_given_list_replaces_the_default() {
        let p = StatusPolicy { success: ranges(&["200", "202"]), ..Default::default() };
        assert_eq!(p.classify(202), Verdict::Success);
        assert_eq!(p.classify(204), Verdict::Halt);
        let p = StatusPolicy { success: ranges(&["200-299", "404"]), ..Default::default() };
        assert_eq!(p.classify(404), Verdict::Success);
        let p = StatusPolicy { retry: ranges(&["410"]), ..Default::default() };
        assert_eq!(p.classify(410), Verdict::Retry);
        assert_eq!(p.classify(503), Verdict::Halt);
    }

    #[test]
    fn malformed_ranges_are_rejected() {
        for bad in ["99", "600", "500-400", "2xx", "200-", "abc"] {
            assert!(bad.parse::<StatusRange>().is_err(), "{bad}");
        }
        let r: StatusRange = serde_json::from_str("\"500-599\"").unwrap();
        assert_eq!(r, StatusRange::new(500, 599));
        let r: StatusRange = serde_json::from_str("404").unwrap();
        assert_eq!(r, StatusRange::new(404, 404));
        assert!(serde_json::from_str::<StatusRange>("700").is_err());
    }
}
