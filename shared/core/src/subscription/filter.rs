//! Subscription filters: which events a subscription gets, beyond their
//! type, in the JSON operator dialect Outpost, Hookdeck and Convoy share.
//!
//! A filter is matched against the event as a document — `{"id", "type",
//! "tenant", "timestamp", "data"}` — by example: each key of a filter
//! object names a field the event must have, its value what that field
//! must be (a nested object matches part of a nested object; a scalar
//! matches an equal value, or an array holding it). A key starting with
//! `$` is an operator on the value in hand:
//!
//! | operator | the value must |
//! |---|---|
//! | `$eq`, `$neq` | equal (not equal) the operand |
//! | `$gt`, `$gte`, `$lt`, `$lte` | compare so with it (numbers with numbers, strings with strings) |
//! | `$in`, `$nin` | be (not be) one of a list; an array value: hold one (none) of them |
//! | `$exist` | be there (`true`) or not (`false`) |
//! | `$startsWith`, `$endsWith` | be a string so (or an array holding one) |
//! | `$or`, `$and` | match any (all) of a list of filters |
//! | `$not` | not match a filter |
//!
//! Checked when saved ([`Filter::parse`]: every problem at once, each
//! naming its path and operator) and bounded (size, depth) so a filter's
//! cost is bounded per event. Pure: the fan-out decides with it before
//! anything is queued.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::record::FieldError;

/// The longest filter, as JSON text.
pub const MAX_FILTER_BYTES: usize = 8 * 1024;
/// The deepest nesting of objects and lists in a filter.
pub const MAX_FILTER_DEPTH: usize = 16;

const OPERATORS: [&str; 14] = [
    "$eq",
    "$neq",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exist",
    "$startsWith",
    "$endsWith",
    "$or",
    "$and",
    "$not",
];

/// A checked filter (its JSON as given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Filter(Value);

impl Filter {
    /// The filter, or every problem with it, each naming its path under
    /// `field` (`filter.data.amount.$gte`) and what to write instead.
    pub fn parse(field: &str, v: &Value) -> Result<Filter, Vec<FieldError>> {
        let mut errs = Vec::new();
        let size = v.to_string().len();
        if size > MAX_FILTER_BYTES {
            errs.push(FieldError::new(field, format!("is {size} bytes: at most {MAX_FILTER_BYTES}")));
            return Err(errs);
        }
        if !v.is_object() {
            errs.push(FieldError::new(field, "must be an object: `{\"data\": {\"amount\": {\"$gte\": 100}}}`"));
            return Err(errs);
        }
        check(field, v, 0, &mut errs);
        if errs.is_empty() { Ok(Filter(v.clone())) } else { Err(errs) }
    }

    /// The filter as JSON.
    pub fn as_json(&self) -> &Value {
        &self.0
    }

    /// Whether `doc` (an event as [`super::Event::filtered`] shows it)
    /// passes.
    pub fn matches(&self, doc: &Value) -> bool {
        matches(&self.0, Some(doc))
    }
}

fn check(path: &str, f: &Value, depth: usize, errs: &mut Vec<FieldError>) {
    if depth > MAX_FILTER_DEPTH {
        errs.push(FieldError::new(path, format!("nests deeper than {MAX_FILTER_DEPTH} levels")));
        return;
    }
    let Value::Object(map) = f else {
        if let Value::Array(items) = f {
            for (i, item) in items.iter().enumerate() {
                check(&format!("{path}[{i}]"), item, depth + 1, errs);
            }
        }
        return;
    };
    for (key, operand) in map {
        let here = format!("{path}.{key}");
        if !key.starts_with('$') {
            check(&here, operand, depth + 1, errs);
            continue;
        }
        let problem = match key.as_str() {
            "$eq" | "$neq" => None,
            "$gt" | "$gte" | "$lt" | "$lte" => {
                (!(operand.is_number() || operand.is_string())).then_some("takes a number or a string")
            }
            "$in" | "$nin" => (!operand.is_array()).then_some("takes a list of values"),
            "$exist" => (!operand.is_boolean()).then_some("takes `true` or `false`"),
            "$startsWith" | "$endsWith" => (!operand.is_string()).then_some("takes a string"),
            "$or" | "$and" => match operand {
                Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
                    for (i, item) in items.iter().enumerate() {
                        check(&format!("{here}[{i}]"), item, depth + 1, errs);
                    }
                    None
                }
                _ => Some("takes a list of one or more filters (objects)"),
            },
            "$not" => match operand {
                Value::Object(_) => {
                    check(&here, operand, depth + 1, errs);
                    None
                }
                _ => Some("takes a filter (an object)"),
            },
            unknown => {
                let near = crate::text::did_you_mean(unknown, OPERATORS.iter().copied())
                    .map(|m| format!(" (did you mean `{m}`?)"))
                    .unwrap_or_default();
                errs.push(FieldError::new(
                    &here,
                    format!("`{unknown}` is not an operator{near}: use one of {}", OPERATORS.join(", ")),
                ));
                continue;
            }
        };
        if let Some(p) = problem {
            errs.push(FieldError::new(&here, format!("`{key}` {p}")));
        }
    }
}

/// Whether the value in hand (`None`: not there) matches filter `f`.
fn matches(f: &Value, v: Option<&Value>) -> bool {
    match f {
        Value::Object(map) => map.iter().all(|(key, operand)| match key.strip_prefix('$') {
            Some(op) => operator(op, operand, v),
            None => match v {
                Some(Value::Object(o)) => matches(operand, o.get(key)),
                // A field of each element of a list: any element will do.
                Some(Value::Array(items)) => {
                    items.iter().any(|item| item.as_object().is_some_and(|o| matches(operand, o.get(key))))
                }
                _ => matches(operand, None),
            },
        }),
        // A list by example: the value holds every item of it.
        Value::Array(items) => match v {
            Some(Value::Array(have)) => items.iter().all(|want| have.iter().any(|h| example(want, h))),
            _ => false,
        },
        scalar => v.is_some_and(|v| equal_or_holds(scalar, v)),
    }
}

/// An item of a list by example: a filter object matches by its fields,
/// anything else by equality.
fn example(want: &Value, have: &Value) -> bool {
    if want.is_object() { matches(want, Some(have)) } else { want == have }
}

/// Equal, or a list holding it.
fn equal_or_holds(want: &Value, have: &Value) -> bool {
    want == have || have.as_array().is_some_and(|a| a.iter().any(|x| x == want))
}

fn operator(op: &str, operand: &Value, v: Option<&Value>) -> bool {
    match op {
        "exist" => operand.as_bool() == Some(v.is_some_and(|v| !v.is_null())),
        "eq" => v.is_some_and(|v| equal_or_holds(operand, v)),
        "neq" => !v.is_some_and(|v| equal_or_holds(operand, v)),
        "gt" | "gte" | "lt" | "lte" => v.is_some_and(|v| each(v, |x| compare(op, x, operand))),
        "in" => v.is_some_and(|v| within(operand, v)),
        "nin" => !v.is_some_and(|v| within(operand, v)),
        "startsWith" | "endsWith" => {
            let Some(affix) = operand.as_str() else { return false };
            v.is_some_and(|v| {
                each(v, |x| {
                    x.as_str()
                        .is_some_and(|s| if op == "startsWith" { s.starts_with(affix) } else { s.ends_with(affix) })
                })
            })
        }
        "or" => operand.as_array().is_some_and(|fs| fs.iter().any(|f| matches(f, v))),
        "and" => operand.as_array().is_some_and(|fs| fs.iter().all(|f| matches(f, v))),
        "not" => !matches(operand, v),
        _ => false,
    }
}

/// `test` on a scalar, or on any element of a list.
fn each(v: &Value, test: impl Fn(&Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(test),
        one => test(one),
    }
}

/// The value (or an element of it) is one of the operand's list.
fn within(list: &Value, v: &Value) -> bool {
    let Some(list) = list.as_array() else { return false };
    each(v, |x| list.contains(x))
}

fn compare(op: &str, x: &Value, operand: &Value) -> bool {
    let order = match (x, operand) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().zip(b.as_f64()).and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        _ => None,
    };
    let Some(order) = order else { return false };
    match op {
        "gt" => order.is_gt(),
        "gte" => order.is_ge(),
        "lt" => order.is_lt(),
        _ => order.is_le(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "id": "evt_1", "type": "order.paid", "tenant": "acme", "timestamp": "2026-12-07T10:00:00.000Z",
            "data": {
                "amount": 120, "currency": "EUR", "tags": ["vip", "eu"], "note": null,
                "customer": {"id": "cus_9", "tier": "gold", "email": "ada@example.com"},
                "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}]
            }
        })
    }

    fn passes(f: Value) -> bool {
        Filter::parse("filter", &f).unwrap_or_else(|e| panic!("{f}: {e:?}")).matches(&event())
    }

    #[test]
    fn equality_by_example_matches_part_of_the_event() {
        assert!(passes(json!({"type": "order.paid"})));
        assert!(passes(json!({"data": {"customer": {"tier": "gold"}}})));
        assert!(!passes(json!({"data": {"customer": {"tier": "silver"}}})));
        assert!(!passes(json!({"data": {"missing": 1}})));
        assert!(passes(json!({"data": {"tags": "vip"}})), "a scalar matches an array holding it");
        assert!(passes(json!({"data": {"tags": ["eu", "vip"]}})), "a list: the array holds each");
        assert!(!passes(json!({"data": {"tags": ["vip", "us"]}})));
        assert!(passes(json!({"data": {"items": {"sku": "B-7"}}})), "a field of any element");
        assert!(passes(json!({"data": {"items": [{"sku": "A-1", "qty": 2}]}})));
        assert!(passes(json!({})), "an empty filter passes everything");
    }

    #[test]
    fn each_operator_decides_as_its_peers_do() {
        assert!(passes(json!({"data": {"amount": {"$gte": 100, "$lt": 200}}})));
        assert!(!passes(json!({"data": {"amount": {"$gt": 120}}})));
        assert!(passes(json!({"data": {"amount": {"$lte": 120}}})));
        assert!(passes(json!({"timestamp": {"$gte": "2026-12-01"}})), "strings compare as strings");
        assert!(!passes(json!({"data": {"currency": {"$gt": 5}}})), "a string never compares with a number");
        assert!(passes(json!({"data": {"currency": {"$in": ["EUR", "GBP"]}}})));
        assert!(passes(json!({"data": {"currency": {"$nin": ["USD"]}}})));
        assert!(passes(json!({"data": {"tags": {"$in": ["us", "eu"]}}})), "an array holding one of them");
        assert!(passes(json!({"data": {"customer": {"email": {"$endsWith": "@example.com"}}}})));
        assert!(passes(json!({"data": {"customer": {"id": {"$startsWith": "cus_"}}}})));
        assert!(passes(json!({"data": {"note": {"$exist": false}, "amount": {"$exist": true}}})));
        assert!(passes(json!({"data": {"gone": {"$exist": false}}})));
        assert!(passes(json!({"data": {"currency": {"$neq": "USD"}}})));
        assert!(passes(json!({"data": {"gone": {"$neq": "USD"}}})), "what is not there is not equal");
        assert!(passes(json!({"data": {"currency": {"$eq": "EUR"}}})));
        assert!(passes(json!({"$or": [{"type": "order.refunded"}, {"data": {"amount": {"$gt": 100}}}]})));
        assert!(!passes(json!({"$and": [{"type": "order.paid"}, {"data": {"currency": "USD"}}]})));
        assert!(passes(json!({"data": {"amount": {"$not": {"$lt": 100}}}})));
        assert!(!passes(json!({"$not": {"data": {"customer": {"tier": "gold"}}}})));
        assert!(passes(json!({"data": {"customer": {"$or": [{"tier": "gold"}, {"tier": "platinum"}]}}})));
    }

    #[test]
    fn a_bad_filter_names_every_problem_with_its_path_and_operator() {
        let errs = Filter::parse(
            "filter",
            &json!({"data": {"amount": {"$gte": [1], "$betwen": 3}, "tags": {"$in": "vip"}}, "$or": {"type": "a"}}),
        )
        .unwrap_err();
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(shown.iter().any(|e| e.starts_with("filter.data.amount.$gte: `$gte` takes a number")), "{shown:?}");
        assert!(
            shown.iter().any(|e| e.starts_with("filter.data.amount.$betwen: `$betwen` is not an operator")),
            "{shown:?}"
        );
        assert!(shown.iter().any(|e| e.starts_with("filter.data.tags.$in: `$in` takes a list")), "{shown:?}");
        assert!(shown.iter().any(|e| e.starts_with("filter.$or: `$or` takes a list")), "{shown:?}");
        assert_eq!(errs.len(), 4, "{shown:?}");
        assert!(Filter::parse("filter", &json!("type")).is_err(), "not an object");
        let big = json!({"data": {"x": {"$in": vec!["a".repeat(100); 100]}}});
        assert!(Filter::parse("filter", &big).unwrap_err()[0].message.contains("bytes"));
        let mut deep = json!({"a": 1});
        for _ in 0..20 {
            deep = json!({"a": deep});
        }
        assert!(Filter::parse("filter", &deep).unwrap_err()[0].message.contains("deeper"));
    }
}
