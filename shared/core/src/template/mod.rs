//! `{{ }}` templates, on minijinja.
//!
//! Every string a flow file may make dynamic goes through here. The choices
//! that matter:
//!
//! - **Compiled once.** A flow's templates are compiled when the flow is
//!   loaded ([`Templates::add`]); rendering is a lookup plus evaluation.
//! - **Strict.** Using an undefined variable is an error, unless guarded with
//!   `| default(...)` or `is defined`: a typo must not send an empty header.
//! - **Typed leaves.** A string that is exactly one `{{ expr }}` evaluates to
//!   the expression's value, so `total: "{{ trigger.body.total }}"` stays a
//!   number in a JSON body ([`Templates::render_value`]).
//! - **Bounded.** Each render has a fuel budget that pays for instructions and
//!   for every byte or item the engine creates (minijinja checks a large
//!   allocation before making it), and the output is capped at
//!   [`MAX_OUTPUT`]. A template that loops forever or builds a huge string
//!   fails in milliseconds.
//! - **Secrets stay opaque.** `secrets.<name>` renders to a placeholder that
//!   carries a per-render random nonce; only the sender swaps it for the
//!   value (see [`crate::request`]). Data from a request cannot forge one.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use base64::Engine;
use minijinja::value::Value as JValue;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

mod context;

pub use context::Context;
pub(crate) use context::{SECRET_CLOSE, SECRET_OPEN};
use context::{Seg, parse_path, step_into};

/// Fuel per render: one unit per instruction, plus one per 64 bytes created.
pub const FUEL: u64 = 200_000;
/// Largest rendered string.
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// A template that did not compile or render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
}

impl TemplateError {
    fn new(message: impl Into<String>) -> Self {
        TemplateError { message: message.into() }
    }
}

fn describe(e: &minijinja::Error) -> TemplateError {
    let kind = e.kind().to_string();
    let msg = match e.detail() {
        Some(d) => format!("{kind}: {d}"),
        None => kind,
    };
    TemplateError::new(msg)
}

/// True when `s` has template syntax.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// The expression inside `s` when `s` is exactly one `{{ expr }}`.
pub fn single_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    Some(inner.trim())
}

/// An `if:` value may be written bare (`trigger.body.total > 100`) or
/// wrapped (`{{ trigger.body.total > 100 }}`).
pub fn condition_expression(s: &str) -> &str {
    single_expression(s).unwrap_or(s.trim())
}

/// The compiled templates of one flow.
pub struct Templates {
    env: Environment<'static>,
    /// One-pass plans of JSON documents, by field path.
    plans: HashMap<String, DocPlan>,
    /// Text templates made only of literals and plain paths, by source.
    texts: HashMap<String, Vec<TextPart>>,
}

/// A piece of a text template that needs no engine.
#[derive(Debug)]
enum TextPart {
    Lit(String),
    Path(Vec<Seg>),
    Secret(String),
}

/// Splits `source` into literals and `{{ path }}` parts, or `None` when any
/// part needs the engine.
fn text_plan(source: &str) -> Option<Vec<TextPart>> {
    if source.contains("{%") || source.contains("{#") {
        return None;
    }
    let mut parts = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find("{{") {
        if i > 0 {
            parts.push(TextPart::Lit(rest[..i].to_string()));
        }
        let after = &rest[i + 2..];
        let j = after.find("}}")?;
        let inner = &after[..j];
        if inner.starts_with('-') || inner.ends_with('-') || inner.contains('{') {
            return None;
        }
        let inner = inner.trim();
        match inner.strip_prefix("secrets.") {
            Some(name) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                parts.push(TextPart::Secret(name.to_string()))
            }
            _ => parts.push(TextPart::Path(parse_path(inner)?)),
        }
        rest = &after[j + 2..];
    }
    if rest.contains("}}") {
        return None;
    }
    if !rest.is_empty() {
        parts.push(TextPart::Lit(rest.to_string()));
    }
    Some(parts)
}

/// How each templated leaf of a JSON document is rendered, in document order.
#[derive(Debug)]
struct DocPlan {
    leaves: Vec<Leaf>,
    /// Whether any leaf needs the engine (then the document's template runs).
    engine: bool,
}

#[derive(Debug)]
enum Leaf {
    /// A plain variable path, resolved straight from the JSON.
    Path { expr: String, segs: Vec<Seg> },
    /// Evaluated by the document's template into variable `var`.
    Engine { var: String, typed: bool, source: String },
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

fn expr_key(expr: &str) -> String {
    format!("expr:{expr}")
}

/// The code of a template: what is inside `{{ }}` and `{% %}` (a bare
/// expression is all code), with string literals blanked out.
fn code_of(source: &str, bare: bool) -> String {
    let mut code = String::new();
    let mut inside = bare;
    let mut quote: Option<char> = None;
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        if !inside {
            if c == '{' && matches!(chars.peek(), Some('{' | '%')) {
                chars.next();
                inside = true;
                code.push(' ');
            }
            continue;
        }
        match quote {
            Some(_) if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if !bare && (c == '}' || c == '%') && chars.peek() == Some(&'}') => {
                chars.next();
                inside = false;
                code.push(' ');
            }
            None => code.push(c),
        }
    }
    code
}

/// The filter names a template's code uses (`| name`) and the test names
/// (`is name`, `is not name`).
fn filters_and_tests(code: &str) -> (Vec<String>, Vec<String>) {
    let ident = |rest: &str| -> String {
        rest.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
    };
    let filters = code.split('|').skip(1).map(ident).filter(|n| !n.is_empty()).collect();
    let words: Vec<&str> =
        code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    let mut tests = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if *w == "is" {
            let next = if words.get(i + 1) == Some(&"not") { words.get(i + 2) } else { words.get(i + 1) };
            if let Some(n) = next {
                tests.push(n.to_string());
            }
        }
    }
    (filters, tests)
}

fn b64encode(v: String) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

fn fromjson(v: String) -> Result<JValue, minijinja::Error> {
    let parsed: Value = serde_json::from_str(&v)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("fromjson: {e}")))?;
    Ok(JValue::from(minijinja::value::Serde(&parsed)))
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(100);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_filter("b64encode", b64encode);
        env.add_filter("fromjson", fromjson);
        Templates { env, plans: HashMap::new(), texts: HashMap::new() }
    }

    /// Compiles `source` (a no-op for plain strings) and returns the
    /// variables it reads, as dotted paths (`trigger.body.id`).
    pub fn add(&mut self, source: &str) -> Result<BTreeSet<String>, TemplateError> {
        if let Some(expr) = single_expression(source) {
            return self.add_expression(expr);
        }
        if !is_template(source) {
            return Ok(BTreeSet::new());
        }
        if self.env.get_template(source).is_err() {
            self.env.add_template_owned(source.to_string(), source.to_string()).map_err(|e| describe(&e))?;
        }
        self.known_names(&code_of(source, false))?;
        if let Some(plan) = text_plan(source) {
            self.texts.insert(source.to_string(), plan);
        }
        let t = self.env.get_template(source).map_err(|e| describe(&e))?;
        Ok(t.undeclared_variables(true).into_iter().collect())
    }

    /// Compiles a bare expression (an `if:` or the inside of a typed leaf).
    pub fn add_expression(&mut self, expr: &str) -> Result<BTreeSet<String>, TemplateError> {
        if expr.is_empty() {
            return Err(TemplateError::new("empty expression"));
        }
        // Parse as an expression first, so a statement smuggled into an
        // expression is reported as a syntax error.
        let vars = self.env.compile_expression(expr).map_err(|e| describe(&e))?.undeclared_variables(true);
        self.known_names(&code_of(expr, true))?;
        let key = expr_key(expr);
        if self.env.get_template(&key).is_err() {
            self.env.add_template_owned(key, format!("{{% set __value = ({expr}) %}}")).map_err(|e| describe(&e))?;
        }
        Ok(vars.into_iter().collect())
    }

    /// Refuses a filter or a test the engine does not have: minijinja
    /// finds out only when it renders (a run's step would fail), so each
    /// name is tried once on a constant.
    fn known_names(&self, code: &str) -> Result<(), TemplateError> {
        let (filters, tests) = filters_and_tests(code);
        let probes = filters
            .iter()
            .map(|f| (f, format!("{{{{ 1 | {f} }}}}"), minijinja::ErrorKind::UnknownFilter, "filter"))
            .chain(tests.iter().map(|t| (t, format!("{{{{ 1 is {t} }}}}"), minijinja::ErrorKind::UnknownTest, "test")));
        for (name, probe, unknown, what) in probes {
            if self.env.render_str(&probe, ()).is_err_and(|e| e.kind() == unknown) {
                let hint = if what == "filter" {
                    "the filters are minijinja's built-ins (`default`, `int`, `float`, `lower`, `upper`, `join`, \
                     `tojson`, `urlencode`, …) and `b64encode`, `fromjson`"
                } else {
                    "the tests are minijinja's built-ins (`defined`, `none`, `number`, `string`, …)"
                };
                return Err(TemplateError::new(format!("unknown {what} `{name}`: {hint}")));
            }
        }
        Ok(())
    }

    /// Renders `source` to text. Plain strings come back as they are.
    pub fn render_text(&self, source: &str, ctx: &Context) -> Result<String, TemplateError> {
        if !is_template(source) {
            return Ok(source.to_string());
        }
        if let Some(expr) = single_expression(source) {
            match ctx.lookup_path(expr) {
                Some(Value::String(s)) => return Ok(s.clone()),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => return Ok(n.to_string()),
                _ => {}
            }
            let v = self.eval_raw(expr, ctx)?;
            return text_of(&v);
        }
        if let Some(out) = self.texts.get(source).and_then(|plan| render_plan(plan, ctx)) {
            return Ok(out);
        }
        let t =
            self.env.get_template(source).map_err(|_| TemplateError::new("template was not compiled with the flow"))?;
        let out = t.render(ctx.jvalue()).map_err(|e| describe(&e))?;
        check_size(out.len())?;
        Ok(out)
    }

    /// Renders a string leaf of a JSON document: one `{{ expr }}` keeps the
    /// expression's type, anything else becomes a string.
    pub fn render_value(&self, source: &str, ctx: &Context) -> Result<Value, TemplateError> {
        match single_expression(source) {
            Some(expr) => self.eval(expr, ctx),
            None => self.render_text(source, ctx).map(Value::String),
        }
    }

    /// Compiles a JSON document whose string leaves are templates into one
    /// template that evaluates every leaf in a single pass, so rendering a
    /// body with 50 templated leaves costs one evaluation, not 50. Each leaf
    /// must already compile on its own ([`Templates::add`]), which is where
    /// errors are reported per field.
    ///
    /// `field` names where the document sits in the flow (`steps[0].body.json`);
    /// [`Templates::render_json_at`] finds it by that name.
    pub fn add_json(&mut self, field: &str, doc: &Value) -> Result<(), TemplateError> {
        let mut sources = Vec::new();
        collect_leaves(doc, &mut sources);
        if sources.is_empty() {
            return Ok(());
        }
        let mut leaves = Vec::with_capacity(sources.len());
        let mut template = String::new();
        let mut engine = 0;
        for leaf in sources {
            let expr = single_expression(leaf);
            if let Some(segs) = expr.and_then(parse_path) {
                leaves.push(Leaf::Path { expr: expr.unwrap_or_default().to_string(), segs });
                continue;
            }
            let var = format!("__v{engine}");
            engine += 1;
            match expr {
                Some(e) => template.push_str(&format!("{{% set {var} = ({e}) %}}")),
                None => template.push_str(&format!("{{% set {var} %}}{leaf}{{% endset %}}")),
            }
            leaves.push(Leaf::Engine { var, typed: expr.is_some(), source: leaf.to_string() });
        }
        if engine > 0 {
            self.env.add_template_owned(json_key(field), template).map_err(|e| describe(&e))?;
        }
        self.plans.insert(field.to_string(), DocPlan { leaves, engine: engine > 0 });
        Ok(())
    }

    /// Renders every string leaf of a JSON document, leaf by leaf.
    pub fn render_json(&self, doc: &Value, ctx: &Context) -> Result<Value, TemplateError> {
        self.render_json_leafwise(doc, ctx)
    }

    /// Renders the document compiled by [`Templates::add_json`] for `field`
    /// in one pass (leaf by leaf when there is none).
    pub fn render_json_at(&self, field: &str, doc: &Value, ctx: &Context) -> Result<Value, TemplateError> {
        if !self.plans.contains_key(field) {
            return self.render_json_leafwise(doc, ctx);
        }
        self.with_leaves(field, ctx, |next| fill_leaves(doc, &mut |_| next().map(Cow::into_owned)))
    }

    /// Like [`Templates::render_json_at`], straight to JSON text: values are
    /// written where they lie, with no intermediate document.
    pub fn render_json_text_at(&self, field: &str, doc: &Value, ctx: &Context) -> Result<String, TemplateError> {
        if !self.plans.contains_key(field) {
            let v = self.render_json_leafwise(doc, ctx)?;
            return Ok(v.to_string());
        }
        self.with_leaves(field, ctx, |next| {
            let mut out = Vec::with_capacity(1024);
            write_leaves(doc, &mut out, &mut |_, out| {
                let v = next()?;
                serde_json::to_writer(out, v.as_ref()).map_err(|e| TemplateError::new(e.to_string()))
            })?;
            check_size(out.len())?;
            String::from_utf8(out).map_err(|e| TemplateError::new(e.to_string()))
        })
    }

    /// Runs `f` with a function that yields the rendered value of each
    /// templated leaf of the document compiled for `field`, in order.
    fn with_leaves<'c, R>(
        &self,
        field: &str,
        ctx: &'c Context,
        f: impl FnOnce(&mut dyn FnMut() -> Result<Cow<'c, Value>, TemplateError>) -> Result<R, TemplateError>,
    ) -> Result<R, TemplateError> {
        let plan = self.plans.get(field).ok_or_else(|| TemplateError::new("no compiled document"))?;
        let captured = match plan.engine {
            true => {
                let t = self.env.get_template(&json_key(field)).map_err(|e| describe(&e))?;
                Some(t.render_captured(ctx.jvalue()).map_err(|e| describe(&e))?)
            }
            false => None,
        };
        let mut leaves = plan.leaves.iter();
        // Neighbouring leaves usually share a parent (`items[3].name`,
        // `items[3].qty`): remember the last parent to skip its lookups.
        let mut parent: Option<(&[Seg], &'c Value)> = None;
        let mut next = || -> Result<Cow<'c, Value>, TemplateError> {
            match leaves.next() {
                Some(Leaf::Path { expr, segs }) => {
                    let (prefix, last) = segs.split_at(segs.len() - 1);
                    let base = match parent {
                        Some((p, v)) if p == prefix => Some(v),
                        _ => ctx.resolve(prefix),
                    };
                    if let Some(b) = base {
                        parent = Some((prefix, b));
                    }
                    match base.and_then(|b| step_into(b, &last[0])) {
                        Some(v) => Ok(Cow::Borrowed(v)),
                        // Missing: let the engine evaluate it and report.
                        None => self.eval(expr, ctx).map(Cow::Owned),
                    }
                }
                Some(Leaf::Engine { var, typed, source }) => {
                    let v = captured.as_ref().and_then(|c| c.state().lookup(var)).unwrap_or_default();
                    if !typed {
                        return text_of(&v).map(|s| Cow::Owned(Value::String(s)));
                    }
                    if v.is_undefined() {
                        return Err(TemplateError::new(format!(
                            "undefined value: `{source}` (use `| default(...)` if it may be missing)"
                        )));
                    }
                    let json = serde_json::to_value(&v)
                        .map_err(|e| TemplateError::new(format!("cannot convert result: {e}")))?;
                    if let Value::String(s) = &json {
                        check_size(s.len())?;
                    }
                    Ok(Cow::Owned(json))
                }
                None => Err(TemplateError::new("document does not match its compiled plan")),
            }
        };
        f(&mut next)
    }

    fn render_json_leafwise(&self, doc: &Value, ctx: &Context) -> Result<Value, TemplateError> {
        Ok(match doc {
            Value::String(s) if is_template(s) => self.render_value(s, ctx)?,
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.render_json(v, ctx)).collect::<Result<_, _>>()?)
            }
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (k, v) in map {
                    out.insert(k.clone(), self.render_json(v, ctx)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    /// Evaluates an expression to a JSON value.
    pub fn eval(&self, expr: &str, ctx: &Context) -> Result<Value, TemplateError> {
        if let Some(v) = ctx.lookup_path(expr) {
            return Ok(v.clone());
        }
        let v = self.eval_raw(expr, ctx)?;
        let json = serde_json::to_value(&v).map_err(|e| TemplateError::new(format!("cannot convert result: {e}")))?;
        if let Value::String(s) = &json {
            check_size(s.len())?;
        }
        Ok(json)
    }

    /// Evaluates an `if:` condition.
    pub fn truthy(&self, expr: &str, ctx: &Context) -> Result<bool, TemplateError> {
        Ok(self.eval_raw(condition_expression(expr), ctx)?.is_true())
    }

    fn eval_raw(&self, expr: &str, ctx: &Context) -> Result<JValue, TemplateError> {
        let t = self
            .env
            .get_template(&expr_key(expr))
            .map_err(|_| TemplateError::new("expression was not compiled with the flow"))?;
        let captured = t.render_captured(ctx.jvalue()).map_err(|e| describe(&e))?;
        let v = captured.state().lookup("__value").unwrap_or_default();
        if v.is_undefined() {
            return Err(TemplateError::new(format!(
                "undefined value: `{expr}` (use `| default(...)` if it may be missing)"
            )));
        }
        Ok(v)
    }
}

/// Writes one templated leaf into the output.
type LeafWriter<'a> = dyn FnMut(&str, &mut Vec<u8>) -> Result<(), TemplateError> + 'a;

/// Writes `doc` as JSON text, with each templated leaf written by `f`.
fn write_leaves(doc: &Value, out: &mut Vec<u8>, f: &mut LeafWriter<'_>) -> Result<(), TemplateError> {
    let json_err = |e: serde_json::Error| TemplateError::new(e.to_string());
    match doc {
        Value::String(s) if is_template(s) => f(s, out)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_leaves(v, out, f)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).map_err(json_err)?;
                out.push(b':');
                write_leaves(v, out, f)?;
            }
            out.push(b'}');
        }
        other => serde_json::to_writer(&mut *out, other).map_err(json_err)?,
    }
    Ok(())
}

/// Renders a text plan; `None` when a value is missing or is not a string
/// or an integer (the engine then renders the template, with its own
/// formatting and errors).
fn render_plan(plan: &[TextPart], ctx: &Context) -> Option<String> {
    let mut out = String::new();
    for part in plan {
        match part {
            TextPart::Lit(s) => out.push_str(s),
            TextPart::Path(segs) => match ctx.resolve(segs)? {
                Value::String(s) => out.push_str(s),
                Value::Number(n) if n.is_i64() || n.is_u64() => out.push_str(&n.to_string()),
                _ => return None,
            },
            TextPart::Secret(name) => {
                let nonce = ctx.nonce.as_deref()?;
                out.push(SECRET_OPEN);
                out.push_str(nonce);
                out.push(':');
                out.push_str(name);
                out.push(SECRET_CLOSE);
            }
        }
    }
    (out.len() <= MAX_OUTPUT).then_some(out)
}

fn json_key(field: &str) -> String {
    format!("json:{field}")
}

/// Templated string leaves in document order.
fn collect_leaves<'a>(doc: &'a Value, out: &mut Vec<&'a str>) {
    match doc {
        Value::String(s) if is_template(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_leaves(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_leaves(v, out)),
        _ => {}
    }
}

/// A copy of `doc` with each templated leaf replaced, in document order.
fn fill_leaves(doc: &Value, f: &mut dyn FnMut(&str) -> Result<Value, TemplateError>) -> Result<Value, TemplateError> {
    Ok(match doc {
        Value::String(s) if is_template(s) => f(s)?,
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_leaves(v, f)).collect::<Result<_, _>>()?),
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                out.insert(k.clone(), fill_leaves(v, f)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn text_of(v: &JValue) -> Result<String, TemplateError> {
    let s = if v.is_none() { String::new() } else { v.to_string() };
    check_size(s.len())?;
    Ok(s)
}

fn check_size(len: usize) -> Result<(), TemplateError> {
    if len > MAX_OUTPUT {
        return Err(TemplateError::new(format!("rendered value is larger than {MAX_OUTPUT} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> Context {
        Context::new(v.as_object().unwrap().clone())
    }

    fn compiled(sources: &[&str]) -> Templates {
        let mut t = Templates::new();
        for s in sources {
            t.add(s).unwrap();
        }
        t
    }

    #[test]
    fn renders_text_and_keeps_types_of_single_expressions() {
        let c =
            ctx(json!({"trigger": {"body": {"id": 7, "total": "12.50", "tags": ["a"], "ok": true, "name": "Ann"}}}));
        let doc = json!({
            "order": "{{ trigger.body.id }}",
            "total": "{{ trigger.body.total | float }}",
            "tags": "{{ trigger.body.tags }}",
            "ok": "{{ trigger.body.ok }}",
            "greeting": "Hi {{ trigger.body.name }}!",
            "plain": "no template",
            "n": 3
        });
        let mut t = Templates::new();
        for s in [
            "{{ trigger.body.id }}",
            "{{ trigger.body.total | float }}",
            "{{ trigger.body.tags }}",
            "{{ trigger.body.ok }}",
            "Hi {{ trigger.body.name }}!",
        ] {
            t.add(s).unwrap();
        }
        let out = t.render_json(&doc, &c).unwrap();
        assert_eq!(
            out,
            json!({"order": 7, "total": 12.5, "tags": ["a"], "ok": true, "greeting": "Hi Ann!", "plain": "no template", "n": 3})
        );
    }

    #[test]
    fn one_pass_documents_render_like_leaf_by_leaf() {
        let c = ctx(json!({"trigger": {"body": {"id": 7, "name": "Ann", "tags": ["a", "b"]}}}));
        let doc = json!({"id": "{{ trigger.body.id }}", "g": "Hi {{ trigger.body.name }}", "t": ["{{ trigger.body.tags }}", 1], "n": null});
        let mut t = Templates::new();
        for s in ["{{ trigger.body.id }}", "Hi {{ trigger.body.name }}", "{{ trigger.body.tags }}"] {
            t.add(s).unwrap();
        }
        let leafwise = t.render_json(&doc, &c).unwrap();
        t.add_json("body", &doc).unwrap();
        assert_eq!(t.render_json_at("body", &doc, &c).unwrap(), leafwise);
        assert_eq!(t.render_json_text_at("body", &doc, &c).unwrap(), leafwise.to_string());
        assert_eq!(leafwise, json!({"id": 7, "g": "Hi Ann", "t": [["a", "b"], 1], "n": null}));
        let missing = json!({"a": "{{ trigger.body.nope }}", "b": "{{ trigger.body.id }}"});
        t.add("{{ trigger.body.nope }}").unwrap();
        t.add_json("missing", &missing).unwrap();
        assert!(t.render_json_at("missing", &missing, &c).unwrap_err().message.contains("undefined"));
    }

    #[test]
    fn the_plain_path_fast_path_agrees_with_the_engine() {
        let c = ctx(
            json!({"trigger": {"body": {"items": [{"name": "a", "n": 1.5}], "x-y": {"z": true}, "n": 7}, "headers": {"x-id": "h"}}}),
        );
        let mut t = Templates::new();
        for e in [
            "trigger.body.items[0].name",
            "trigger.body.items[0]",
            "trigger.body['x-y'].z",
            "trigger.headers[\"x-id\"]",
            "trigger.body.n",
            "trigger.body",
        ] {
            t.add_expression(e).unwrap();
            assert!(parse_path(e).is_some(), "{e}");
            let fast = c.lookup_path(e).cloned().expect(e);
            let engine = serde_json::to_value(t.eval_raw(e, &c).unwrap()).unwrap();
            assert_eq!(fast, engine, "{e}");
        }
        // Missing paths fall back to the engine, which reports them.
        assert!(c.lookup_path("trigger.body.nope").is_none());
        t.add_expression("trigger.body.nope").unwrap();
        assert!(t.eval("trigger.body.nope", &c).is_err());
        for not_plain in ["trigger.body.n + 1", "trigger.body.n | int", "'a'", "1", "trigger.body.items[-1]"] {
            assert!(c.lookup_path(not_plain).is_none(), "{not_plain}");
        }
    }

    #[test]
    fn the_lazy_json_view_behaves_like_plain_values() {
        let c = ctx(
            json!({"trigger": {"body": {"items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 3}], "m": {"x": 1, "y": 2}, "e": []}}}),
        );
        let cases = [
            ("{{ trigger.body.items | length }}", json!(2)),
            ("{{ trigger.body.items | map(attribute='sku') | join(',') }}", json!("a,b")),
            ("{{ trigger.body.items | sum(attribute='qty') }}", json!(5)),
            ("{{ trigger.body.m | tojson }}", json!("{\"x\": 1, \"y\": 2}")),
            ("{{ 'x' in trigger.body.m }}", json!(true)),
            ("{{ trigger.body.items[1] }}", json!({"sku": "b", "qty": 3})),
            ("{{ trigger.body.items[0] == trigger.body.items[0] }}", json!(true)),
            ("{{ trigger.body.e | length == 0 and not trigger.body.e }}", json!(true)),
            ("{{ trigger.body.m | dictsort | first | first }}", json!("x")),
            ("{% for i in trigger.body.items %}{{ i.sku }}{{ i.qty }};{% endfor %}", json!("a2;b3;")),
        ];
        let mut t = Templates::new();
        for (src, want) in cases {
            t.add(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(t.render_value(src, &c).unwrap_or_else(|e| panic!("{src}: {e}")), want, "{src}");
        }
    }

    #[test]
    fn text_plans_render_like_the_engine() {
        let c = ctx(json!({"trigger": {"body": {"id": 7, "s": "x", "f": 1.5, "o": {"a": 1}}}, "event": {"id": "e1"}}));
        let sources = [
            "https://x/{{ trigger.body.id }}/{{ trigger.body.s }}?e={{ event.id }}",
            "f={{ trigger.body.f }}",
            "o={{ trigger.body.o }}",
            "{{trigger.body.s}}-{{ trigger.body['s'] }}",
        ];
        let mut planned = Templates::new();
        for src in sources {
            planned.add(src).unwrap();
        }
        for src in sources {
            let engine = planned.env.get_template(src).unwrap().render(c.jvalue()).unwrap();
            assert_eq!(planned.render_text(src, &c).unwrap(), engine, "{src}");
        }
        assert!(text_plan("{{ a | upper }}").is_none());
        assert!(text_plan("{% if a %}x{% endif %}").is_none());
        // Secrets need the secrets view.
        planned.add("Bearer {{ secrets.token }}").unwrap();
        assert!(planned.render_text("Bearer {{ secrets.token }}", &c).is_err());
        let s = c.with_secrets();
        let out = planned.render_text("Bearer {{ secrets.token }}", &s).unwrap();
        assert_eq!(out, format!("Bearer {SECRET_OPEN}{}:token{SECRET_CLOSE}", s.secret_nonce().unwrap()));
    }

    #[test]
    fn an_unknown_filter_or_test_is_refused_when_compiled_not_when_run() {
        let mut t = Templates::new();
        let err = t.add("total: {{ trigger.body.x | nosuchfilter }}").unwrap_err();
        assert!(err.message.starts_with("unknown filter `nosuchfilter`"), "{}", err.message);
        let err = t.add_expression("trigger.body.x is nosuchtest").unwrap_err();
        assert!(err.message.starts_with("unknown test `nosuchtest`"), "{}", err.message);
        for good in [
            "{{ a | default('x|y') | upper }}",
            "{{ a | b64encode }}{% if b is not defined %}{% endif %}",
            "{{ 'is nothing' }} | not a filter",
            "{{ a | fromjson | tojson }}",
        ] {
            assert!(t.add(good).is_ok(), "{good}: {:?}", t.add(good));
        }
        assert!(t.add_expression("x is defined and y | int > 3").is_ok());
    }

    #[test]
    fn undefined_is_an_error_unless_defaulted() {
        let c = ctx(json!({"trigger": {"body": {}}}));
        let t = compiled(&[
            "{{ trigger.body.missing }}",
            "x{{ trigger.body.missing }}",
            "{{ trigger.body.missing | default('d') }}",
        ]);
        let e = t.render_value("{{ trigger.body.missing }}", &c).unwrap_err();
        assert!(e.message.contains("undefined"), "{e}");
        assert!(t.render_text("x{{ trigger.body.missing }}", &c).unwrap_err().message.contains("undefined"));
        assert_eq!(t.render_value("{{ trigger.body.missing | default('d') }}", &c).unwrap(), json!("d"));
    }

    #[test]
    fn reports_variables_read() {
        let mut t = Templates::new();
        let vars = t.add("{{ trigger.body.customer.id }}/{{ steps.sync.response.body.id | default(0) }}").unwrap();
        assert!(vars.contains("trigger.body.customer.id"), "{vars:?}");
        assert!(vars.contains("steps.sync.response.body.id"), "{vars:?}");
        assert!(t.add("plain").unwrap().is_empty());
    }

    #[test]
    fn syntax_errors_are_reported() {
        let mut t = Templates::new();
        assert!(t.add("{{ trigger.body. }}").is_err());
        assert!(t.add("{{ unclosed").is_err());
        assert!(t.add_expression("1 +").is_err());
        assert!(t.add_expression("").is_err());
    }

    #[test]
    fn conditions_accept_bare_and_wrapped_expressions() {
        let c = ctx(json!({"trigger": {"body": {"total": 150}}}));
        let t = compiled(&["{{ trigger.body.total > 100 }}", "{{ trigger.body.total > 200 }}"]);
        assert!(t.truthy("trigger.body.total > 100", &c).unwrap());
        assert!(!t.truthy("{{ trigger.body.total > 200 }}", &c).unwrap());
    }

    #[test]
    fn endless_loops_fail_fast() {
        let src = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
        let t = compiled(&[src]);
        // Fuel counts the work done: running out of it is the bound (how
        // fast is a bench's to say, not a test's on a loaded machine).
        let e = t.render_text(src, &ctx(json!({}))).unwrap_err();
        assert!(e.message.contains("fuel"), "{e}");
    }

    #[test]
    fn a_one_gib_string_fails_fast() {
        let c = ctx(json!({}));
        for src in [
            "{{ 'x' * 1073741824 }}",
            "{% set s = 'x' * 1000000 %}{{ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s }}",
            "{{ range(100000) | join('x' * 100000) }}",
            "{{ ('x' * 10000) | replace('x', 'y' * 100000) }}",
        ] {
            let t = compiled(&[src]);
            // Refused before the gibibyte is made (the output limit), not
            // after: an error, and no such string in memory.
            let r = t.render_text(src, &c);
            assert!(r.is_err(), "{src} rendered {} bytes", r.map(|s| s.len()).unwrap_or(0));
        }
    }

    #[test]
    fn secret_placeholders_carry_a_nonce() {
        let base = ctx(json!({"trigger": {"body": {}}}));
        let c = base.with_secrets();
        let t = compiled(&["Bearer {{ secrets.token }}"]);
        let out = t.render_text("Bearer {{ secrets.token }}", &c).unwrap();
        let nonce = c.secret_nonce().unwrap();
        assert_eq!(out, format!("Bearer {SECRET_OPEN}{nonce}:token{SECRET_CLOSE}"));
        // Without the secrets view there is no `secrets`.
        assert!(t.render_text("Bearer {{ secrets.token }}", &base).is_err());
        // A second context gets a different nonce.
        assert_ne!(base.with_secrets().secret_nonce(), c.secret_nonce());
    }

    #[test]
    fn extra_filters() {
        let c = ctx(json!({"trigger": {"raw": "{\"a\": 1}"}}));
        let t = compiled(&[
            "{{ 'hi' | b64encode }}",
            "{{ (trigger.raw | fromjson).a }}",
            "{{ 'a b' | urlencode }}",
            "{{ trigger | tojson }}",
        ]);
        assert_eq!(t.render_value("{{ 'hi' | b64encode }}", &c).unwrap(), json!("aGk="));
        assert_eq!(t.render_value("{{ (trigger.raw | fromjson).a }}", &c).unwrap(), json!(1));
        assert_eq!(t.render_value("{{ 'a b' | urlencode }}", &c).unwrap(), json!("a%20b"));
    }
}
