//! Secret values taken out of what a receiver answered.
//!
//! A receiver may echo what it was sent: a debugging endpoint returns the
//! request's headers, a misbehaving API puts the `Authorization` header in
//! an error message. What it answers is stored (the request log, a run's
//! `steps.<id>.response`, on AWS DynamoDB items) and shown (the admin API,
//! the CLI), so every secret value an attempt sent is replaced by `***` in
//! the captured response before anything keeps it — in the forms it may
//! come back in: as sent; base64, standard and URL-safe, on its own or
//! anywhere inside a longer base64 run (a `Basic` credential, a whole
//! `Authorization: Bearer …` line encoded); hex in either case;
//! percent-encoded in either case (a query parameter); JSON-escaped, with
//! `\/` (PHP) and with `\uXXXX` escapes; HTML-escaped; and each whole
//! header value a secret was rendered into (`Basic dXNlcjpwYXNz` holds no
//! secret verbatim, only `user:pass` encoded).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use serde_json::Value;

use crate::text::encode_component;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Values shorter than this are not scrubbed: replacing every `ab` in a
/// response would make it unreadable and hide nothing worth hiding.
pub const MIN_LEN: usize = 4;

/// The shortest part of a secret's base64 looked for inside longer base64
/// (secrets of 6 bytes and more).
const MIN_INSIDE_BASE64: usize = 8;

/// The strings to take out of a response, longest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scrubber {
    needles: Vec<String>,
}

impl Scrubber {
    /// Scrubs `secrets` (the values an attempt used) and `rendered` (the
    /// header values a secret was rendered into), in every form they may
    /// be echoed in.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>, rendered: impl IntoIterator<Item = &'a str>) -> Self {
        let mut needles = Vec::new();
        for s in secrets.into_iter().filter(|s| s.len() >= MIN_LEN) {
            needles.push(s.to_string());
            needles.push(STANDARD.encode(s));
            needles.push(STANDARD_NO_PAD.encode(s));
            needles.push(URL_SAFE_NO_PAD.encode(s));
            needles.extend(inside_base64(s.as_bytes()));
            let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
            needles.push(hex.to_ascii_uppercase());
            needles.push(hex);
            let percent = encode_component(s);
            needles.push(escapes_in_case(&percent, "%", 2, false));
            needles.push(percent);
            let json = escaped(s);
            needles.push(json.replace('/', "\\/"));
            needles.push(json);
            let unicode: String = s
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c.to_string() } else { format!("\\u{:04x}", c as u32) })
                .collect();
            needles.push(escapes_in_case(&unicode, "\\u", 4, true));
            needles.push(unicode);
            needles.push(html(s));
        }
        for r in rendered {
            needles.push(r.to_string());
            needles.push(escaped(r));
            // The credential of `Scheme credential` on its own.
            if let Some((_, credential)) = r.trim().split_once(' ') {
                needles.push(credential.trim().to_string());
            }
        }
        needles.retain(|n| n.len() >= MIN_LEN);
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Scrubber { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// The length of the longest form scrubbed (0 when none).
    pub fn longest(&self) -> usize {
        self.needles.first().map_or(0, String::len)
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), MASK);
            }
        }
        out
    }

    /// Scrubs every string of a JSON value, keys included, and a number
    /// that is a secret whole.
    pub fn json(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.text(s),
            Value::Number(n) if self.needles.contains(&n.to_string()) => *v = Value::String(MASK.into()),
            Value::Array(items) => items.iter_mut().for_each(|i| self.json(i)),
            Value::Object(map) => {
                let old = std::mem::take(map);
                for (k, mut item) in old {
                    self.json(&mut item);
                    map.insert(self.text(&k), item);
                }
            }
            _ => {}
        }
    }
}

/// The parts of `bytes`' base64 that any base64 run holding them shows,
/// whatever came before them (three alignments) and after (the last,
/// partial character is left out): standard and URL-safe alphabets.
fn inside_base64(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for k in 0..3usize {
        let mut padded = vec![0u8; k];
        padded.extend_from_slice(bytes);
        let encoded = STANDARD_NO_PAD.encode(&padded);
        // The first characters mix in the filler; the last one the next byte.
        let start = [0, 2, 3][k];
        let end = encoded.len() - usize::from(padded.len() % 3 != 0);
        // Shorter runs would match innocent base64 (a 4-byte secret's are
        // 4 characters): only runs long enough to be the secret's.
        if let Some(part) = encoded.get(start..end).filter(|p| p.len() >= MIN_INSIDE_BASE64) {
            out.push(part.to_string());
            out.push(part.replace('+', "-").replace('/', "_"));
        }
    }
    out
}

/// `text` with the `digits` hex digits after each `marker` (`%`, `\u`) in
/// upper or lower case.
fn escapes_in_case(text: &str, marker: &str, digits: usize, upper: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let (before, from) = rest.split_at(at + marker.len());
        out.push_str(before);
        let n = from.char_indices().nth(digits).map_or(from.len(), |(i, _)| i);
        let (hex, after) = from.split_at(n);
        out.push_str(&if upper { hex.to_ascii_uppercase() } else { hex.to_ascii_lowercase() });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// `s` HTML-escaped (`&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;`).
fn html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// `s` as it appears inside a JSON string.
fn escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_secret_is_taken_out_in_every_form_it_comes_back_in() {
        let s = Scrubber::new(["tok/en+sec\"ret"], []);
        for echoed in [
            "tok/en+sec\"ret".to_string(),
            STANDARD.encode("tok/en+sec\"ret"),
            URL_SAFE_NO_PAD.encode("tok/en+sec\"ret"),
            "tok%2Fen%2Bsec%22ret".to_string(),
            r#"tok/en+sec\"ret"#.to_string(),
        ] {
            let got = s.text(&format!("you sent [{echoed}] ok"));
            assert_eq!(got, "you sent [***] ok", "{echoed}");
        }
    }

    #[test]
    fn hex_percent_unicode_php_html_and_base64_inside_a_line_are_caught_too() {
        let secret = "tok/en+sec\"ret<&>";
        let s = Scrubber::new([secret], []);
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        let unicode: String = secret
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_string() } else { format!("\\u{:04x}", c as u32) })
            .collect();
        for echoed in [
            hex.clone(),
            hex.to_ascii_uppercase(),
            "tok%2fen%2bsec%22ret%3c%26%3e".to_string(),
            unicode.clone(),
            secret
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c.to_string() } else { format!("\\u{:04X}", c as u32) })
                .collect(),
            r#"tok\/en+sec\"ret<&>"#.to_string(),
            "tok/en+sec&quot;ret&lt;&amp;&gt;".to_string(),
        ] {
            let got = s.text(&format!("you sent [{echoed}] ok"));
            assert!(!got.contains(&echoed) && got.contains("***"), "{echoed}: {got}");
        }
        // A whole header line encoded, the secret at each alignment.
        for line in ["Authorization: Bearer ", "Authorization: Bearer x", "Authorization: Bearer xy"] {
            for engine in [STANDARD, base64::engine::general_purpose::URL_SAFE] {
                let encoded = engine.encode(format!("{line}{secret} and more"));
                let got = s.text(&encoded);
                assert!(got.contains("***"), "{line:?}: {encoded} -> {got}");
            }
        }
    }

    #[test]
    fn a_u_in_the_secret_is_no_escape_and_a_short_secret_masks_no_stray_base64() {
        let s = Scrubber::new(["user/pass"], []);
        assert_eq!(s.text(r"[user\u002Fpass]"), "[***]", "upper-case \\u escapes of a secret holding `u`");
        let short = Scrubber::new(["abcd"], []);
        let innocent = STANDARD.encode("xxabcdyy and more");
        assert_eq!(short.text(&innocent), innocent, "4 bytes' base64 inside a run is too short to look for");
    }

    #[test]
    fn a_rendered_header_is_taken_out_whole_and_by_its_credential() {
        // `Basic base64(user:pass)` holds the password only encoded with
        // the user name.
        let header = format!("Basic {}", STANDARD.encode("alice:pa55word"));
        let s = Scrubber::new(["pa55word"], [header.as_str()]);
        assert_eq!(s.text(&format!("authorization: {header}")), "authorization: ***");
        assert_eq!(s.text(&format!("token={}", STANDARD.encode("alice:pa55word"))), "token=***");
    }

    #[test]
    fn json_strings_and_keys_are_scrubbed_and_the_rest_kept() {
        let s = Scrubber::new(["sk_live_123"], []);
        let mut v =
            json!({"echo": {"authorization": "Bearer sk_live_123"}, "sk_live_123": 1, "n": 5, "list": ["sk_live_123"]});
        s.json(&mut v);
        assert_eq!(v, json!({"echo": {"authorization": "Bearer ***"}, "***": 1, "n": 5, "list": ["***"]}));
    }

    #[test]
    fn a_parsed_body_keeps_its_structure() {
        // A numeric secret inside a longer number, or spelling `true`: the
        // JSON stays JSON; a number that is the secret whole is masked.
        let s = Scrubber::new(["1234", "true"], []);
        let mut v = json!({"amount": 12345, "ok": true, "pin": 1234, "note": "pin 1234"});
        s.json(&mut v);
        assert_eq!(v, json!({"amount": 12345, "ok": true, "pin": "***", "note": "pin ***"}));
    }

    #[test]
    fn short_values_are_left_alone() {
        let s = Scrubber::new(["ab"], []);
        assert!(s.is_empty());
        assert_eq!(s.text("abab"), "abab");
    }
}
