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

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/flow.schema.json` is [`flow_schema`]'s output
    /// (`HOOKFLOW_UPDATE_SCHEMA` set: written anew).
    #[test]
    fn published_schema_is_in_sync() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/flow.schema.json");
        if std::env::var_os("HOOKFLOW_UPDATE_SCHEMA").is_some() {
            std::fs::write(path, flow_schema()).unwrap();
        }
        let stale =
            "docs/flow.schema.json is stale: run `HOOKFLOW_UPDATE_SCHEMA=1 cargo test -p hookflow-core` and commit it";
        assert!(std::fs::read_to_string(path).is_ok_and(|have| have == flow_schema()), "{stale}");
    }

    #[test]
    fn schema_names_the_step_types() {
        let s = flow_schema();
        for t in ["\"http\"", "\"ping\"", "\"respond\"", "\"set\"", "on_failure", "wait_for_response"] {
            assert!(s.contains(t), "{t}");
        }
    }
}
