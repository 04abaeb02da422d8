//! Human-friendly durations in flow files: `500ms`, `5s`, `2h`, `1h 30m`, or a
//! bare number of seconds.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written as `5s`, `2h`, `500ms`, `1h 30m` or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub Duration);

impl Span {
    pub const fn secs(s: u64) -> Self {
        Span(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        Span(Duration::from_millis(ms))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl std::str::FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u64>() {
            return Ok(Span::secs(n));
        }
        humantime::parse_duration(t)
            .map(Span)
            .map_err(|e| format!("invalid duration `{s}` ({e}); write e.g. `500ms`, `5s`, `10m`, `2h`"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Span;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `5s`, `10m`, `2h` or a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Span, E> {
                Ok(Span::secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Span, E> {
                u64::try_from(v).map(Span::secs).map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Span, E> {
                Duration::try_from_secs_f64(v)
                    .map(Span)
                    .map_err(|_| E::custom("a duration must be a non-negative number of seconds"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Span, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Span {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: `500ms`, `5s`, `10m`, `2h`, `1h 30m`, or a number of seconds.",
            "oneOf": [
                { "type": "string", "pattern": "^\\s*[0-9]+\\s*[a-zA-Z]*(\\s*[0-9]+\\s*[a-zA-Z]+)*\\s*$" },
                { "type": "number", "minimum": 0 }
            ]
        })
    }
}

/// A duration as a person reads it: `250ms`, `1.5s`, `10m 1s`, `2h 5m`
/// (below a minute to a tenth of a second, above it to the second).
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let tenths = ms / 100;
        return if tenths.is_multiple_of(10) {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        };
    }
    let secs = ms / 1000;
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
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
    fn human_durations_read_as_people_say_them() {
        let h = |ms| human(Duration::from_millis(ms));
        assert_eq!([h(0), h(999), h(1000), h(1500), h(59_990)], ["0ms", "999ms", "1s", "1.5s", "59.9s"]);
        assert_eq!([h(601_271), h(3_600_000), h(7_500_000), h(90_061_000)], ["10m 1s", "1h", "2h 5m", "1d 1h 1m 1s"]);
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339(1_614_265_330_123), "2021-02-25T15:02:10.123Z");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    use super::*;

    #[test]
    fn parses_units_and_bare_seconds() {
        assert_eq!("5s".parse::<Span>().unwrap(), Span::secs(5));
        assert_eq!("2h".parse::<Span>().unwrap(), Span::secs(7200));
        assert_eq!("500ms".parse::<Span>().unwrap(), Span::millis(500));
        assert_eq!("1h 30m".parse::<Span>().unwrap(), Span::secs(5400));
        assert_eq!("42".parse::<Span>().unwrap(), Span::secs(42));
    }

    #[test]
    fn bad_durations_say_what_is_expected() {
        let e = "5 parsecs".parse::<Span>().unwrap_err();
        assert!(e.contains("invalid duration `5 parsecs`"), "{e}");
        let e: Result<Span, _> = serde_json::from_str("-3");
        assert!(e.unwrap_err().to_string().contains("negative"));
    }
}
