//! Structured logs: one JSON object per line on stdout, with the correlation
//! fields of the run (`tenant`, `flow_id`, `run_id`, `event_id`,
//! `delivery_id`, `attempt`, `status`, `duration_ms`). Values of known
//! secrets are replaced by `***` before a line is written.
//!
//! [`Logger::background`] hands lines to a thread that writes whatever has
//! piled up in one `write` (the dev server logs four lines per event; a
//! system call each was a tenth of its CPU under load). The request log in
//! the store is the durable record; stdout is for watching.

use std::io::Write;
use std::sync::mpsc;

use hookflow_core::engine::{Level, LogLine};
use serde_json::Value;

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
    /// The writer thread, if lines are written in the background.
    lines: Option<mpsc::Sender<String>>,
    /// Lines below this level are skipped.
    min: Level,
}

impl Logger {
    pub fn new(format: Format, secrets: impl Iterator<Item = String>) -> Self {
        let mut redact: Vec<String> = secrets.filter(|s| s.len() > 3).collect();
        redact.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Logger { format, redact, lines: None, min: Level::Trace }
    }

    /// Skips lines below `level` (`TRACE`, `DEBUG`, `INFO`, `WARN`,
    /// `ERROR`, as Lambda's `AWS_LAMBDA_LOG_LEVEL` names them).
    pub fn min_level(mut self, level: &str) -> Self {
        self.min = Level::parse(level);
        self
    }

    /// Writes `value` as one line as it is (an Embedded Metric Format
    /// record, say), with secret values redacted.
    pub fn raw(&self, value: &Value) {
        self.write(value.to_string());
    }

    /// The same logger, writing from a background thread.
    pub fn background(mut self) -> Self {
        let (tx, rx) = mpsc::channel::<String>();
        let spawned = std::thread::Builder::new().name("hookflow-log".into()).spawn(move || {
            let mut buf = String::new();
            while let Ok(line) = rx.recv() {
                buf.push_str(&line);
                while let Ok(more) = rx.try_recv() {
                    buf.push_str(&more);
                    if buf.len() > 64 * 1024 {
                        break;
                    }
                }
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(buf.as_bytes());
                let _ = out.flush();
                buf.clear();
            }
        });
        if spawned.is_ok() {
            self.lines = Some(tx);
        }
        self
    }

    /// Writes the operational lines a step of the engine produced, in order.
    pub fn lines(&self, lines: Vec<LogLine>) {
        for l in lines {
            self.log(l.level, &l.message, l.fields);
        }
    }

    /// Writes one line: `message` plus the non-null `fields`.
    pub fn log(&self, level: Level, message: &str, fields: Value) {
        if level < self.min {
            return;
        }
        let level = level.as_str();
        let text = match self.format {
            Format::Json => {
                let mut s = String::with_capacity(256);
                s.push_str("{\"ts\":");
                s.push_str(&hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock).to_string());
                s.push_str(",\"level\":");
                push_json_str(&mut s, level);
                s.push_str(",\"message\":");
                push_json_str(&mut s, message);
                if let Value::Object(f) = &fields {
                    for (k, v) in f.iter().filter(|(_, v)| !v.is_null()) {
                        s.push(',');
                        push_json_str(&mut s, k);
                        s.push(':');
                        s.push_str(&v.to_string());
                    }
                }
                s.push('}');
                s
            }
            Format::Pretty => {
                let mut s = format!("{level:>5} {message}");
                if let Value::Object(f) = &fields {
                    for (k, v) in f.iter().filter(|(_, v)| !v.is_null()) {
                        s.push_str(&format!(" {k}={v}"));
                    }
                }
                s
            }
        };
        self.write(text);
    }

    fn write(&self, mut text: String) {
        for secret in &self.redact {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text.push('\n');
        match &self.lines {
            Some(tx) => {
                if let Err(mpsc::SendError(text)) = tx.send(text) {
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
                }
            }
            None => {
                let _ = std::io::stdout().lock().write_all(text.as_bytes());
            }
        }
    }
}

/// Appends `s` as a JSON string.
fn push_json_str(out: &mut String, s: &str) {
    out.push_str(&Value::from(s).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_json() {
        let mut s = String::new();
        push_json_str(&mut s, "a \"quoted\"\nline");
        assert_eq!(s, r#""a \"quoted\"\nline""#);
    }

    #[test]
    fn levels_rank_as_lambda_names_them() {
        let rank = Level::parse;
        assert!(rank("DEBUG") < rank("info") && rank("INFO") < rank("warn") && rank("WARN") < rank("ERROR"));
        assert_eq!(rank("something"), rank("INFO"));
        assert_eq!(rank("FATAL"), Level::Error);
    }
}
