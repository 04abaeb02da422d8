//! An inbound request (headers, one `name: value` a line, a blank line,
//! then the body) through every signature and credential scheme, the body
//! parsers (JSON, form, text by content type), the query parser and the
//! replay identity: an answer, never a panic.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use hookflow_core::auth::Verifier;
use hookflow_core::headers::Headers;
use hookflow_core::run::{InboundRequest, parse_form};
use libfuzzer_sys::fuzz_target;

const AUTHS: &[&str] = &[
    "{ type: standard_webhooks, secret: s, reject_replays: true }",
    "{ type: hmac, secret: s, header: x-sig, prefix: \"sha256=\", content: \"{timestamp}.{body}\", timestamp_header: x-ts }",
    "{ type: hmac, secret: s, header: x-sig, algorithm: sha1, encoding: base64 }",
    "{ type: basic, secret: s, username: u }",
    "{ type: bearer, secret: s }",
    "{ type: api_key, secret: s, query: key }",
];
const SYSTEMS: &[&str] = &["stripe", "github", "shopify", "slack"];

fn verifiers() -> &'static Vec<(Verifier, hookflow_core::CompiledFlow)> {
    static V: OnceLock<Vec<(Verifier, hookflow_core::CompiledFlow)>> = OnceLock::new();
    V.get_or_init(|| {
        let triggers = AUTHS
            .iter()
            .map(|a| format!("{{ type: webhook, path: p, auth: {a} }}"))
            .chain(SYSTEMS.iter().map(|s| format!("{{ type: webhook, path: p, system: {s}, auth: {{ secret: s }} }}")));
        triggers
            .map(|t| {
                let text = format!(
                    "id: f\ntenant: t\ntrigger: {t}\nsteps:\n  - {{ id: s, type: http, url: https://example.com/ }}\n"
                );
                let flow = hookflow_core::load_flow(Path::new("f.yaml"), &text).expect("a fixture flow");
                (Verifier::for_trigger(&flow.flow.trigger), flow)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\n\n").unwrap_or(("", &text));
    let headers = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let (path, query) = body.split_once('?').unwrap_or((body, ""));
    let mut req = InboundRequest {
        method: "POST".into(),
        path: path.chars().take(64).collect(),
        headers: Headers(headers),
        query: parse_form(query),
        body: body.to_string(),
        ..Default::default()
    };
    let _ = req.parsed_body();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    for (v, flow) in verifiers() {
        let _ = v.verify_bytes(&req, body.as_bytes(), secret, 1_700_000_000);
        let identity = v.replay_identity(&req, body.as_bytes(), secret);
        let _ = hookflow_core::inbound::replay_scope(flow, v, identity.as_deref());
    }
    Verifier::for_trigger(&verifiers()[0].1.flow.trigger).strip_credentials(&mut req);
});
