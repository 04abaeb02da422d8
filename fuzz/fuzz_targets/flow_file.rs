//! A flow file, YAML or JSON, through parsing and validation (an error
//! naming a position, never a panic); a valid one then accepts a request
//! (its first steps rendered, with the templates' fuel limit).
#![no_main]

use std::path::Path;

use hookflow_core::run::InboundRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for file in ["f.yaml", "f.json"] {
        if let Ok(flow) = hookflow_core::load_flow(Path::new(file), text) {
            let request = InboundRequest {
                method: "POST".into(),
                path: "/hooks/t/p".into(),
                body: r#"{"id": 1, "items": [{"n": "a"}], "nested": {"k": true}}"#.into(),
                ..Default::default()
            };
            let _ = hookflow_core::inbound::accept(&flow, &request, ("run_1", "evt_1"), 1_800_000_000_000, None);
        }
    }
});
