//! Parsing flow files (YAML or JSON) into JSON values while remembering where
//! every field came from.
//!
//! Validation errors must name the file, line and column of the field they are
//! about, including errors found long after parsing (a duplicate step id, an
//! unknown template variable). So instead of deserialising YAML straight into
//! Rust types, we parse it into a [`serde_json::Value`] plus a [`SourceMap`]
//! from field paths (`steps[1].url`) to positions. Every later stage reports
//! errors by field path and looks the position up here.
//!
//! JSON is a subset of YAML 1.2 as far as flow files go, so one parser serves
//! both formats.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub col: usize,
}

/// Field path -> position of that field (the key for mapping entries, the
/// item for sequence entries).
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    positions: HashMap<String, Position>,
}

impl SourceMap {
    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn locate(&self, path: &str) -> Position {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return *pos;
            }
            match parent_path(p) {
                Some(parent) => p = parent,
                None => return Position { line: 1, col: 1 },
            }
        }
    }
}

/// `steps[1].url` -> `steps[1]` -> `steps` -> `` -> None.
fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Joins a field path and a map key.
pub fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// Joins a field path and a sequence index.
pub fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// A syntax error in a flow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: Position,
    pub message: String,
}

/// Parses YAML or JSON text into a value and its source map.
pub fn parse(text: &str) -> Result<(Value, SourceMap), SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    // Every document is read, so that a second one is refused rather than
    // silently ignored.
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        return Err(SyntaxError { position: pos(m), message: e.info().to_string() });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    let value = builder.root.unwrap_or(Value::Null);
    Ok((value, builder.map))
}

fn pos(m: &Marker) -> Position {
    // yaml-rust2 reports 1-based lines and 0-based columns.
    Position { line: m.line(), col: m.col() + 1 }
}

enum Frame {
    Map { map: Map<String, Value>, path: String, key: Option<String>, anchor: usize },
    Seq { items: Vec<Value>, path: String, anchor: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    map: SourceMap,
    anchors: HashMap<usize, Value>,
    error: Option<SyntaxError>,
    documents: usize,
}

impl Builder {
    /// The path the next value will have, and records its position. Returns
    /// `None` when the next scalar is a mapping key instead.
    fn next_value_path(&mut self, mark: &Marker) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Seq { items, path, .. }) => {
                let p = join_index(path, items.len());
                self.map.positions.insert(p.clone(), pos(mark));
                Some(p)
            }
            Some(Frame::Map { key: Some(k), path, .. }) => Some(join_key(path, k)),
            Some(Frame::Map { key: None, .. }) => None,
        }
    }

    fn fail(&mut self, mark: &Marker, message: String) {
        if self.error.is_none() {
            self.error = Some(SyntaxError { position: pos(mark), message });
        }
    }

    fn push_value(&mut self, value: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, key, .. }) => {
                if let Some(k) = key.take() {
                    map.insert(k, value);
                }
            }
        }
    }

    /// Handles a scalar in key position. Keys must be unique.
    fn push_key(&mut self, key: String, mark: &Marker) {
        let mut duplicate = None;
        if let Some(Frame::Map { map, path, key: slot, .. }) = self.stack.last_mut() {
            if map.contains_key(&key) {
                duplicate = Some(join_key(path, &key));
            } else {
                // A mapping's own position is that of its first key: the
                // parser's mark for the mapping start can lie past it.
                if map.is_empty() && path.ends_with(']') {
                    self.map.positions.insert(path.clone(), pos(mark));
                }
                let p = join_key(path, &key);
                self.map.positions.insert(p, pos(mark));
            }
            *slot = Some(key);
        }
        if let Some(p) = duplicate {
            self.fail(mark, format!("duplicate key `{p}`"));
        }
    }
}

fn scalar_value(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Value::Number(u.into());
    }
    let looks_numeric = text.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text)
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, _tag) => match self.next_value_path(&mark) {
                Some(_) => self.push_value(scalar_value(text, style), anchor),
                None => self.push_key(text, &mark),
            },
            Event::MappingStart(anchor, _) => match self.next_value_path(&mark) {
                Some(path) => self.stack.push(Frame::Map { map: Map::new(), path, key: None, anchor }),
                None => self.fail(&mark, "mapping keys must be plain strings".into()),
            },
            Event::SequenceStart(anchor, _) => match self.next_value_path(&mark) {
                Some(path) => self.stack.push(Frame::Seq { items: Vec::new(), path, anchor }),
                None => self.fail(&mark, "mapping keys must be plain strings".into()),
            },
            Event::MappingEnd => {
                if let Some(Frame::Map { map, anchor, .. }) = self.stack.pop() {
                    self.push_value(Value::Object(map), anchor);
                }
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { items, anchor, .. }) = self.stack.pop() {
                    self.push_value(Value::Array(items), anchor);
                }
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned();
                match (value, self.next_value_path(&mark)) {
                    (Some(v), Some(_)) => self.push_value(v, 0),
                    (Some(Value::String(k)), None) => self.push_key(k, &mark),
                    _ => self.fail(&mark, "unknown or unusable alias".into()),
                }
            }
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(
                        &mark,
                        "a second YAML document (`---`): a flow file holds one flow; put each flow in a file of its own"
                            .into(),
                    );
                }
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_positions_are_recorded_per_field() {
        let text = "id: a\nsteps:\n  - id: one\n    url: http://x\n  - id: two\n";
        let (v, map) = parse(text).unwrap();
        assert_eq!(v["steps"][1]["id"], "two");
        assert_eq!(map.locate("steps[0].url"), Position { line: 4, col: 5 });
        assert_eq!(map.locate("steps[1]"), Position { line: 5, col: 5 });
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(map.locate("steps[1].nope.deeper"), Position { line: 5, col: 5 });
    }

    #[test]
    fn scalars_resolve_like_yaml_core_schema() {
        let (v, _) = parse("a: 1\nb: '1'\nc: true\nd: ~\ne: 1.5\nf: 1.2.3\ng: 200-299\n").unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"], "1");
        assert_eq!(v["c"], true);
        assert!(v["d"].is_null());
        assert_eq!(v["e"], 1.5);
        assert_eq!(v["f"], "1.2.3");
        assert_eq!(v["g"], "200-299");
    }

    #[test]
    fn json_parses_with_positions() {
        let text = "{\n  \"id\": \"x\",\n  \"steps\": [{\"id\": \"s\"}]\n}";
        let (v, map) = parse(text).unwrap();
        assert_eq!(v["steps"][0]["id"], "s");
        assert_eq!(map.locate("steps").line, 3);
    }

    #[test]
    fn duplicate_keys_are_syntax_errors_with_position() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.position.line, 3);
        assert!(err.message.contains("duplicate key `a`"), "{}", err.message);
    }

    #[test]
    fn broken_yaml_reports_a_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.position.line >= 1);
        assert!(!err.message.is_empty());
    }

    #[test]
    fn a_second_document_is_refused_where_it_starts() {
        let err = parse("id: a\nsteps: []\n---\nid: b\n").unwrap_err();
        assert_eq!(err.position.line, 3, "{err:?}");
        assert!(err.message.contains("one flow"), "{}", err.message);
        // One document, with or without its markers, is fine.
        assert!(parse("---\nid: a\n...\n").is_ok());
    }

    #[test]
    fn anchors_and_aliases_are_expanded() {
        let (v, _) = parse("base: &h {a: 1}\ncopy: *h\n").unwrap();
        assert_eq!(v["copy"]["a"], 1);
    }
}
