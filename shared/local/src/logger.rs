//! Structured logs: one JSON object per line on stdout, with the correlation
//! fields of the run (`tenant`, `flow_id`, `run_id`, `event_id`,
//! `delivery_id`, `attempt`, `status`, `duration_ms`). Values of known
//! secrets are replaced by `***` before a line is written.

use std::io::Write;

use serde_json::{Map, Value, json};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Json,
    Pretty,
}

/// Writes log lines.
#[derive(Debug, Clone, Default)]
pub struct Logger {
    pub format: Format,
    /// Secret values to redact (longer than 3 characters).
    redact: Vec<String>,
}

impl Logger {
    pub fn new(format: Format, secrets: impl Iterator<Item = String>) -> Self {
        let mut redact: Vec<String> = secrets.filter(|s| s.len() > 3).collect();
        redact.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Logger { format, redact }
    }

    /// Writes one line: `message` plus `fields`.
    pub fn log(&self, level: &str, message: &str, fields: Value) {
        let mut line = Map::new();
        line.insert("ts".into(), json!(crate::now_ms()));
        line.insert("level".into(), json!(level));
        line.insert("message".into(), json!(message));
        if let Value::Object(f) = fields {
            for (k, v) in f {
                if !v.is_null() {
                    line.insert(k, v);
                }
            }
        }
        let mut text = match self.format {
            Format::Json => Value::Object(line).to_string(),
            Format::Pretty => {
                let mut s = format!("{level:>5} {message}");
                for (k, v) in line.iter().filter(|(k, _)| !matches!(k.as_str(), "ts" | "level" | "message")) {
                    s.push_str(&format!(" {k}={v}"));
                }
                s
            }
        };
        for secret in &self.redact {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "***");
            }
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    }
}
