//! Event types and the patterns subscriptions choose them with.
//!
//! An event type is dotted lowercase words: `payment.received`,
//! `contact.address.changed`. A subscription lists patterns; in a pattern
//! `*` stands for exactly one word and `**`, only as the last part, for one
//! or more (`contact.**` matches `contact.created` and
//! `contact.address.changed`, not `contact` itself). Decision recorded in
//! docs/ARCHITECTURE.md: `**` needs at least one word so that a pattern
//! never matches its own prefix by surprise, as EventBridge's prefix
//! matching and Svix's event-type filters do not either.

use std::fmt;

/// The longest event type accepted.
pub const MAX_TYPE_LEN: usize = 128;

/// Checks an event type (`payment.received`); the error says what is wrong.
pub fn check_type(event_type: &str) -> Result<(), String> {
    check_words(event_type, false)
}

fn check_words(text: &str, pattern: bool) -> Result<(), String> {
    if text.is_empty() {
        return Err("is empty".into());
    }
    if text.len() > MAX_TYPE_LEN {
        return Err(format!("is longer than {MAX_TYPE_LEN} characters"));
    }
    let words: Vec<&str> = text.split('.').collect();
    for (i, w) in words.iter().enumerate() {
        match *w {
            "" => return Err(format!("`{text}` has an empty part (two dots, or a dot at an end)")),
            "*" if pattern => {}
            "**" if pattern && i == words.len() - 1 => {}
            "**" if pattern => return Err(format!("`{text}`: `**` may only be the last part")),
            w if w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') => {}
            w => {
                return Err(format!(
                    "`{text}`: part `{w}` may only hold lowercase letters, digits, `_` and `-`{}",
                    if pattern { " (or be `*` / a final `**`)" } else { "" }
                ));
            }
        }
    }
    Ok(())
}

/// A pattern over event types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        check_words(text, true)?;
        Ok(Pattern { text: text.to_string() })
    }

    /// Whether `event_type` (already checked) is one this pattern selects.
    pub fn matches(&self, event_type: &str) -> bool {
        let mut want = self.text.split('.');
        let mut got = event_type.split('.');
        loop {
            match (want.next(), got.next()) {
                (Some("**"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(w), Some(g)) if w == g => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether any of `patterns`, as written in a subscription or an event
/// trigger (checked when those were accepted), selects `event_type`; one
/// that does not parse selects nothing.
pub fn selected(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|p| Pattern::parse(p).is_ok_and(|p| p.matches(event_type)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, event_type: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(event_type)
    }

    #[test]
    fn exact_one_word_and_the_rest() {
        assert!(m("payment.received", "payment.received"));
        assert!(!m("payment.received", "payment.refunded"));
        assert!(m("contact.*", "contact.created"));
        assert!(!m("contact.*", "contact.address.changed"), "`*` is one word");
        assert!(!m("contact.*", "contact"));
        assert!(m("contact.**", "contact.address.changed"));
        assert!(m("contact.**", "contact.created"));
        assert!(!m("contact.**", "contact"), "`**` is at least one word");
        assert!(!m("contact.**", "contacts.created"));
        assert!(m("*.created", "invoice.created"));
        assert!(m("**", "anything.at.all"));
        assert!(!m("payment", "payment.received"), "no prefix matching");
    }

    #[test]
    fn bad_types_and_patterns_say_what_is_wrong() {
        assert!(check_type("payment.received").is_ok());
        assert!(check_type("v2.order-item_added").is_ok());
        assert!(check_type("").unwrap_err().contains("empty"));
        assert!(check_type("payment..received").unwrap_err().contains("empty part"));
        assert!(check_type("Payment.received").unwrap_err().contains("lowercase"));
        assert!(check_type("payment.*").unwrap_err().contains("part `*`"), "wildcards are for patterns");
        assert!(Pattern::parse("**.created").unwrap_err().contains("last part"));
        assert!(Pattern::parse("a.b*").unwrap_err().contains("part `b*`"));
        assert!(check_type(&"a".repeat(MAX_TYPE_LEN + 1)).unwrap_err().contains("longer"));
    }

    #[test]
    fn any_of_a_subscriptions_patterns() {
        let ps: Vec<String> = ["contact.*", "payment.received"].iter().map(|p| p.to_string()).collect();
        assert!(selected(&ps, "contact.deleted") && selected(&ps, "payment.received"));
        assert!(!selected(&ps, "payment.refunded"));
        assert!(!selected(&["Bad.*".to_string()], "bad.x"), "an invalid pattern selects nothing");
    }
}
