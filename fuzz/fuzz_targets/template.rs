//! A template (the first line) compiled and rendered over a context (the
//! rest, JSON): bounded by the fuel limit, an error or a text, never a
//! panic or a hang.
#![no_main]

use hookflow_core::template::{Context, Templates};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (source, rest) = text.split_once('\n').unwrap_or((text, "{}"));
    let parts = match serde_json::from_str::<serde_json::Value>(rest) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::from_iter([("trigger".to_string(), serde_json::json!({"body": rest}))]),
    };
    let ctx = Context::new(parts);
    let mut t = Templates::new();
    if t.add(source).is_ok() {
        let _ = t.render_text(source, &ctx);
        let _ = t.render_value(source, &ctx);
    }
    let mut t = Templates::new();
    if t.add_expression(source).is_ok() {
        let _ = t.render_value(source, &ctx);
    }
});
