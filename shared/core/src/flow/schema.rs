//! The published JSON Schema of flow files, generated from [`crate::flow`].
//!
//! `docs/flow.schema.json` is this function's output; a test keeps the file
//! in sync, so the schema editors validate against is never stale.

use crate::flow::Flow;

/// The JSON Schema (draft 2020-12) of a flow file, pretty-printed.
pub fn flow_schema() -> String {
    let mut schema = schemars::schema_for!(Flow);
    schema.insert("$id".into(), "https://hookflow.dev/schema/flow.schema.json".into());
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serialises");
    text.push('\n');
    text
}

/// For tests that keep a generated document in `docs/` equal to its
/// generator: with `HOOKFLOW_UPDATE_SCHEMA` set, writes `want` to `path`;
/// then whether the file holds `want`, or an error that says how to fix it.
pub fn check_published(path: &str, want: &str, crate_name: &str) -> Result<(), String> {
    if std::env::var_os("HOOKFLOW_UPDATE_SCHEMA").is_some() {
        std::fs::write(path, want).map_err(|e| format!("{path}: {e}"))?;
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    if have == want {
        return Ok(());
    }
    Err(format!("{path} is stale: run `HOOKFLOW_UPDATE_SCHEMA=1 cargo test -p {crate_name}` and commit it"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_schema_is_in_sync() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/flow.schema.json");
        check_published(path, &flow_schema(), "hookflow-core").unwrap();
    }

    #[test]
    fn schema_names_the_step_types() {
        let s = flow_schema();
        for t in ["\"http\"", "\"ping\"", "\"respond\"", "\"set\"", "on_failure", "wait_for_response"] {
            assert!(s.contains(t), "{t}");
        }
    }
}
