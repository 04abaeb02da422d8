//! What templates can see (`trigger`, `event`, `run`, `vars`, `steps`,
//! `secrets`): a lazy engine view of the JSON, and plain paths resolved
//! straight from it.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use minijinja::value::{Object, Value as JValue};
use serde_json::Value;

/// Marks the start and end of a secret placeholder (Unicode private use).
pub(crate) const SECRET_OPEN: char = '\u{E000}';
pub(crate) const SECRET_CLOSE: char = '\u{E001}';

/// `secrets.<name>` during a render: placeholders, never values.
#[derive(Debug)]
struct SecretRefs {
    nonce: String,
}

impl Object for SecretRefs {
    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let name = key.as_str()?;
        Some(JValue::from(format!("{SECRET_OPEN}{}:{name}{SECRET_CLOSE}", self.nonce)))
    }
}

/// A step into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// A lazy engine view of a JSON container: the document is shared and a
/// child is converted only when a template reads it, so a 2 KiB body costs
/// nothing until used, and only what is used.
#[derive(Debug)]
struct JsonNode {
    root: Arc<serde_json::Map<String, Value>>,
    path: Vec<Seg>,
}

impl JsonNode {
    fn node(&self) -> &Value {
        let mut segs = self.path.iter();
        let Some(Seg::Key(first)) = segs.next() else { return &Value::Null };
        let mut cur = self.root.get(first).unwrap_or(&Value::Null);
        for seg in segs {
            cur = match (seg, cur) {
                (Seg::Key(k), Value::Object(m)) => m.get(k),
                (Seg::Index(i), Value::Array(a)) => a.get(*i),
                _ => None,
            }
            .unwrap_or(&Value::Null);
        }
        cur
    }

    fn child(&self, seg: Seg, v: &Value) -> JValue {
        let mut path = self.path.clone();
        path.push(seg);
        json_view(v, &self.root, path)
    }
}

/// The engine value of `v`: scalars converted, containers wrapped lazily.
fn json_view(v: &Value, root: &Arc<serde_json::Map<String, Value>>, path: Vec<Seg>) -> JValue {
    match v {
        Value::Null => JValue::from(()),
        Value::Bool(b) => JValue::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => JValue::from(i),
            (None, Some(u)) => JValue::from(u),
            _ => JValue::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => JValue::from(s.as_str()),
        Value::Array(_) | Value::Object(_) => JValue::from_object(JsonNode { root: root.clone(), path }),
    }
}

impl Object for JsonNode {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        match self.node() {
            Value::Array(_) => minijinja::value::ObjectRepr::Seq,
            _ => minijinja::value::ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        match self.node() {
            Value::Object(m) => {
                let k = key.as_str()?;
                m.get(k).map(|v| self.child(Seg::Key(k.to_string()), v))
            }
            Value::Array(a) => {
                let i = key.as_usize()?;
                a.get(i).map(|v| self.child(Seg::Index(i), v))
            }
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        match self.node() {
            Value::Object(m) => {
                minijinja::value::Enumerator::Values(m.keys().map(|k| JValue::from(k.as_str())).collect())
            }
            Value::Array(a) => minijinja::value::Enumerator::Seq(a.len()),
            _ => minijinja::value::Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.node() {
            Value::Object(m) => Some(m.len()),
            Value::Array(a) => Some(a.len()),
            _ => Some(0),
        }
    }
}

/// What templates can see: `trigger`, `event`, `run`, `vars`, `steps` and,
/// where allowed, `secrets`.
///
/// The engine's view of the data is built lazily and shared with
/// [`Context::with_secrets`]: a step whose templates are all plain paths
/// (`{{ trigger.body.id }}`) is rendered straight from the JSON and never
/// pays for the conversion.
#[derive(Debug, Clone)]
pub struct Context {
    json: Arc<serde_json::Map<String, Value>>,
    base: Arc<OnceLock<BTreeMap<String, JValue>>>,
    value: OnceLock<JValue>,
    pub(super) nonce: Option<String>,
}

impl Context {
    /// A context over the given top-level values, with no secrets.
    pub fn new(parts: serde_json::Map<String, Value>) -> Self {
        Context { json: Arc::new(parts), base: Arc::default(), value: OnceLock::new(), nonce: None }
    }

    /// The same context plus `secrets.*` placeholders under a fresh nonce.
    pub fn with_secrets(&self) -> Self {
        let nonce = format!("{:016x}", rand::random::<u64>());
        Context { json: self.json.clone(), base: self.base.clone(), value: OnceLock::new(), nonce: Some(nonce) }
    }

    /// The nonce of this context's secret placeholders.
    pub fn secret_nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    pub(super) fn jvalue(&self) -> &JValue {
        self.value.get_or_init(|| {
            let mut map = self
                .base
                .get_or_init(|| {
                    self.json
                        .iter()
                        .map(|(k, v)| (k.clone(), json_view(v, &self.json, vec![Seg::Key(k.clone())])))
                        .collect()
                })
                .clone();
            if let Some(nonce) = &self.nonce {
                map.insert("secrets".into(), JValue::from_object(SecretRefs { nonce: nonce.clone() }));
            }
            JValue::from(map)
        })
    }

    /// Resolves a plain path expression (`trigger.body.items[0].name`,
    /// `trigger.headers['x-id']`) straight from the JSON. `None` when the
    /// expression is anything else or does not resolve: the engine then
    /// evaluates it, with its own semantics and errors.
    pub(super) fn lookup_path(&self, expr: &str) -> Option<&Value> {
        self.resolve(&parse_path(expr)?)
    }

    pub(super) fn resolve(&self, segs: &[Seg]) -> Option<&Value> {
        let mut it = segs.iter();
        let Some(Seg::Key(root)) = it.next() else { return None };
        let mut cur = self.json.get(root)?;
        for seg in it {
            cur = step_into(cur, seg)?;
        }
        Some(cur)
    }
}

/// One step down a JSON document.
pub(super) fn step_into<'a>(v: &'a Value, seg: &Seg) -> Option<&'a Value> {
    match (seg, v) {
        (Seg::Key(k), Value::Object(m)) => m.get(k),
        (Seg::Index(i), Value::Array(a)) => a.get(*i),
        _ => None,
    }
}

/// Parses a plain variable path: identifiers joined by `.`, `[N]` and
/// `['key']`. `None` for any other expression.
pub(super) fn parse_path(expr: &str) -> Option<Vec<Seg>> {
    let ident_end = |s: &str| s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    let mut rest = expr.trim();
    let end = ident_end(rest);
    let (root, tail) = rest.split_at(end);
    if root.is_empty() || root.starts_with(|c: char| c.is_ascii_digit()) || root == "secrets" {
        return None;
    }
    let mut segs = vec![Seg::Key(root.to_string())];
    rest = tail;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let (key, tail) = r.split_at(ident_end(r));
            if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            segs.push(Seg::Key(key.to_string()));
            rest = tail;
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            let inner = r[..close].trim();
            if let Ok(i) = inner.parse::<usize>() {
                segs.push(Seg::Index(i));
            } else {
                let q = inner.chars().next()?;
                if !(q == '\'' || q == '"') || inner.len() < 2 || !inner.ends_with(q) {
                    return None;
                }
                let key = &inner[1..inner.len() - 1];
                if key.contains(['\\', '\'', '"']) {
                    return None;
                }
                segs.push(Seg::Key(key.to_string()));
            }
            rest = &r[close + 1..];
        } else {
            return None;
        }
    }
    Some(segs)
}
