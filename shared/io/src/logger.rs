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

use std::time::Duration;

use hookflow_core::duration::{human, rfc3339};
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
        let now = hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock);
        let text = match self.format {
            Format::Json => json_line(now, level, message, &fields),
            Format::Pretty => match pretty_line(now, level, message, &fields) {
                Some(text) => text,
                None => return,
            },
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

/// `{"ts":"2026-12-07T18:42:23.678Z","level":…,"message":…,…}`: the
/// time as RFC 3339 (UTC), what log tools parse.
fn json_line(now: i64, level: Level, message: &str, fields: &Value) -> String {
    let mut s = String::with_capacity(256);
    s.push_str("{\"ts\":");
    push_json_str(&mut s, &rfc3339(now));
    s.push_str(",\"level\":");
    push_json_str(&mut s, level.as_str());
    s.push_str(",\"message\":");
    push_json_str(&mut s, message);
    if let Value::Object(f) = fields {
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

/// The fields a person watching a terminal does not need on every line.
const QUIET: [&str; 3] = ["tenant", "event_id", "source_ip"];

/// A line for a person at a terminal, or none: one line a request (`time
/// method path status duration run outcome`), the warnings and errors, and
/// each delivery; a step's progress and a succeeded run are left to the
/// request log (`--log-format json` writes every line).
fn pretty_line(now: i64, level: Level, message: &str, fields: &Value) -> Option<String> {
    let time = &rfc3339(now)[11..23];
    let field = |k: &str| fields.get(k).filter(|v| !v.is_null());
    let text = |k: &str| field(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
    if message == "inbound accepted" || message == "inbound rejected" {
        let mut s = format!(
            "{time} {} {} {}",
            text("method").unwrap_or_default(),
            text("path").unwrap_or_default(),
            text("status").unwrap_or_else(|| "-".into())
        );
        if let Some(ms) = field("duration_ms").and_then(Value::as_u64) {
            s.push_str(&format!(" {}", human(Duration::from_millis(ms))));
        }
        let id = text("run_id").or_else(|| text("event_id")).unwrap_or_default();
        s.push_str(&format!(" {id} "));
        match text("reason") {
            Some(reason) => s.push_str(&format!("rejected: {reason}")),
            None => s.push_str("accepted"),
        }
        if let Some(warning) = text("warning") {
            s.push_str(&format!(" (warning: {warning})"));
        }
        return Some(s);
    }
    let chatter = message.starts_with("step ") || message == "run finished";
    if level == Level::Info && chatter {
        return None;
    }
    let mut s = format!("{time} {:>5} {message}", level.as_str().to_uppercase());
    if let Value::Object(f) = fields {
        for (k, v) in f.iter().filter(|(k, v)| !v.is_null() && !QUIET.contains(&k.as_str())) {
            match v {
                Value::String(t) if !t.is_empty() && !t.contains(char::is_whitespace) => {
                    s.push_str(&format!(" {k}={t}"))
                }
                _ => s.push_str(&format!(" {k}={v}")),
            }
        }
    }
    Some(s)
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
    fn a_json_line_says_its_time_as_rfc3339() {
        let line = json_line(1_796_668_943_678, Level::Info, "m", &serde_json::json!({"a": 1, "b": null}));
        assert_eq!(line, r#"{"ts":"2026-12-07T18:42:23.678Z","level":"info","message":"m","a":1}"#);
    }

    #[test]
    fn a_terminal_gets_one_line_a_request_and_the_warnings() {
        let at = 1_796_668_943_678;
        let accepted = serde_json::json!({"tenant": "t", "flow_id": "f", "run_id": "run_1", "event_id": "evt_1",
            "method": "POST", "path": "/hooks/t/f", "status": 202, "duration_ms": 3});
        assert_eq!(
            pretty_line(at, Level::Info, "inbound accepted", &accepted).unwrap(),
            "18:42:23.678 POST /hooks/t/f 202 3ms run_1 accepted"
        );
        let rejected = serde_json::json!({"event_id": "evt_2", "method": "GET", "path": "/hooks/t/x",
            "status": 404, "duration_ms": 0, "reason": "no trigger at this tenant and path"});
        assert_eq!(
            pretty_line(at, Level::Warn, "inbound rejected", &rejected).unwrap(),
            "18:42:23.678 GET /hooks/t/x 404 0ms evt_2 rejected: no trigger at this tenant and path"
        );
        assert_eq!(pretty_line(at, Level::Info, "step s send", &accepted), None);
        assert_eq!(pretty_line(at, Level::Info, "run finished", &accepted), None);
        let retry = serde_json::json!({"tenant": "t", "step": "s", "attempt": 1, "error": "connection refused"});
        assert_eq!(
            pretty_line(at, Level::Warn, "attempt failed; retrying in 10m 1s", &retry).unwrap(),
            "18:42:23.678  WARN attempt failed; retrying in 10m 1s step=s attempt=1 error=\"connection refused\""
        );
    }

    #[test]
    fn levels_rank_as_lambda_names_them() {
        let rank = Level::parse;
        assert!(rank("DEBUG") < rank("info") && rank("INFO") < rank("warn") && rank("WARN") < rank("ERROR"));
        assert_eq!(rank("something"), rank("INFO"));
        assert_eq!(rank("FATAL"), Level::Error);
    }
}
