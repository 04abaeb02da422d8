//! Every unknown key of a flow file at once, each with the keys its place
//! takes and a "did you mean" for a near miss — before the file is read
//! into [`Flow`], which stops at the first one and, inside a step, names
//! only its action's fields (not `id`, `type`, `if`, `on_failure`). Driven
//! by the flow's JSON Schema, so it knows what the types know.

use std::sync::OnceLock;

use serde_json::Value;

use crate::flow::Flow;
use crate::source::{join_index, join_key};

/// The flow's JSON Schema as a value (built once).
fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::to_value(schemars::schema_for!(Flow)).unwrap_or_default())
}

/// `(field, message)` for each key of `value` that its place does not
/// take, in the file's order.
pub(super) fn unknown(value: &Value) -> Vec<(String, String)> {
    let root = schema();
    let mut out = Vec::new();
    walk(root, root, value, "", &mut out);
    out
}

fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => root.pointer(&format!("/$defs/{name}")).map_or(s, |d| resolve(root, d)),
        None => s,
    }
}

/// The keys an object takes under schema `s` (in the schema's order) with
/// their schemas, and whether it refuses others; `None` when the schema
/// cannot tell (a tagged choice whose tag the object lacks or gets wrong:
/// reading the file says that).
fn keys_of<'a>(root: &'a Value, s: &'a Value, v: &Value) -> Option<(Vec<(&'a str, &'a Value)>, bool)> {
    let s = resolve(root, s);
    let mut keys: Vec<(&str, &Value)> = Vec::new();
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        keys.extend(props.iter().map(|(k, p)| (k.as_str(), p)));
    }
    let mut closed = s.get("additionalProperties") == Some(&Value::Bool(false));
    for key in ["allOf", "oneOf", "anyOf"] {
        let Some(branches) = s.get(key).and_then(Value::as_array) else { continue };
        let objects: Vec<&Value> = branches
            .iter()
            .map(|b| resolve(root, b))
            .filter(|b| ["properties", "oneOf", "allOf", "anyOf"].iter().any(|k| b.get(*k).is_some()))
            .collect();
        let tagged: Vec<&Value> =
            objects.iter().copied().filter(|b| b.pointer("/properties/type/const").is_some()).collect();
        let chosen: Vec<&Value> = if tagged.is_empty() {
            objects
        } else {
            let tag = v.get("type");
            let one: Vec<&Value> =
                tagged.into_iter().filter(|b| tag.is_some() && b.pointer("/properties/type/const") == tag).collect();
            if one.is_empty() {
                return None;
            }
            // A step's action: its struct refuses unknown fields, which
            // its schema (flattened into the step's) does not say.
            closed = true;
            one
        };
        for b in chosen {
            let (more, shut) = keys_of(root, b, v)?;
            for (k, p) in more {
                if !keys.iter().any(|(have, _)| *have == k) {
                    keys.push((k, p));
                }
            }
            closed |= shut;
        }
    }
    Some((keys, closed))
}

/// The schema of an array's items, or of a map's values, under `s`.
fn inner<'a>(root: &'a Value, s: &'a Value, key: &str) -> Option<&'a Value> {
    let s = resolve(root, s);
    if let Some(found) = s.get(key).filter(|i| i.is_object()) {
        return Some(found);
    }
    ["anyOf", "oneOf"].iter().filter_map(|k| s.get(*k)?.as_array()).flatten().find_map(|b| inner(root, b, key))
}

fn walk(root: &Value, s: &Value, v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            let Some((keys, closed)) = keys_of(root, s, v) else { return };
            if keys.is_empty() {
                // A map (`headers`, `vars`): its values' schema, if any.
                if let Some(values) = inner(root, s, "additionalProperties") {
                    for (k, child) in map {
                        walk(root, values, child, &join_key(path, k), out);
                    }
                }
                return;
            }
            for (k, child) in map {
                match keys.iter().find(|(name, _)| name == k) {
                    Some((_, schema)) => walk(root, schema, child, &join_key(path, k), out),
                    None if closed => out.push((join_key(path, k), message(k, path, &keys))),
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = inner(root, s, "items") {
                for (i, child) in items.iter().enumerate() {
                    walk(root, item, child, &join_index(path, i), out);
                }
            }
        }
        _ => {}
    }
}

fn message(key: &str, path: &str, keys: &[(&str, &Value)]) -> String {
    let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
    let near = crate::text::did_you_mean(key, names.iter().copied());
    let place = if path.is_empty() { "a flow".to_string() } else { format!("`{path}`") };
    let listed = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    match near {
        Some(n) => format!("unknown field `{key}`: did you mean `{n}`? ({place} takes {listed})"),
        None => format!("unknown field `{key}` ({place} takes {listed})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown_in(yaml: &str) -> Vec<(String, String)> {
        let (value, _) = crate::source::parse(yaml).unwrap();
        unknown(&value)
    }

    #[test]
    fn every_unknown_key_is_named_with_what_its_place_takes_and_a_near_miss() {
        let found = unknown_in(
            "id: x\ntenant: t\nstpes: []\ntrigger: { type: webhook, path: p, metods: [POST], respond: { mod: sync } }\n\
             steps:\n  - id: s\n    type: http\n    ur: https://x\n    hedaers: {}\n    retry: { max_attempt: 3 }\n\
             \x20 - { id: v, type: set, vars: { a: 1 }, colour: red }\n\
             \x20 - { id: w, type: http, url: \"https://x\", sign: { secret: s, shceme: hmac } }\n",
        );
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "stpes",
                "trigger.metods",
                "trigger.respond.mod",
                "steps[0].ur",
                "steps[0].hedaers",
                "steps[0].retry.max_attempt",
                "steps[1].colour",
                "steps[2].sign.shceme"
            ]
        );
        assert!(
            found[0].1.starts_with("unknown field `stpes`: did you mean `steps`? (a flow takes `id`"),
            "{}",
            found[0].1
        );
        assert!(found[1].1.contains("did you mean `methods`?"), "{}", found[1].1);
        let step = &found[3].1;
        assert!(step.contains("did you mean `url`?"), "{step}");
        for key in ["`id`", "`if`", "`on_failure`", "`type`", "`method`", "`sample`"] {
            assert!(step.contains(key), "a step's keys include {key}: {step}");
        }
        assert!(!found[6].1.contains("did you mean"), "{}", found[6].1);
    }

    #[test]
    fn a_good_flow_and_free_form_maps_have_no_unknown_key() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/partner-sync.yaml"));
        assert_eq!(unknown_in(&text.unwrap()), []);
        let maps = "id: x\ntenant: t\ntrigger: { type: webhook, path: p }\nsteps:\n  - id: s\n    type: http\n    \
                    url: https://x\n    headers: { X-Anything: a }\n    body: { json: { any: { nested: 1 } } }\n";
        assert_eq!(unknown_in(maps), []);
        assert_eq!(
            unknown_in("id: x\nsteps:\n  - { id: s, type: nosuch, whatever: 1 }\n"),
            [],
            "reading says the type"
        );
    }
}
