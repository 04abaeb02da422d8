//! Rendering and signing a realistic outbound request.
//!
//! The request: a templated URL with an endpoint parameter, 6 headers (one
//! with a secret), and a ~2 KiB JSON body whose leaves come from the trigger.
//! `raw_hmac_sha256` signs the same bytes with bare HMAC-SHA256: the floor
//! that Standard Webhooks signing is compared against.
//!
//! Run: `scripts/bench core` (or `cargo bench -p hookflow-core --bench render_sign`).

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hookflow_core::flow::Action;
use hookflow_core::request::{render_request, signature_headers};
use hookflow_core::run::{InboundRequest, Run};
use hookflow_core::signature::{Algorithm, WebhookSecret, hmac};
use hookflow_core::{CompiledFlow, load_flow};
use serde_json::{Value, json};

fn flow() -> CompiledFlow {
    let mut body = serde_json::Map::new();
    for i in 0..24 {
        body.insert(format!("field_{i}"), json!(format!("{{{{ trigger.body.items[{i}].name }}}}")));
        body.insert(format!("qty_{i}"), json!(format!("{{{{ trigger.body.items[{i}].qty }}}}")));
    }
    body.insert("order".into(), json!("{{ trigger.body.id }}"));
    body.insert("total".into(), json!("{{ trigger.body.total | float }}"));
    let flow = json!({
        "id": "bench", "tenant": "acme",
        "trigger": {"type": "webhook", "path": "orders"},
        "steps": [{
            "id": "sync", "type": "http",
            "url": "https://partner.example.com/partners/{partner}/orders/{{ trigger.body.id }}",
            "params": {"partner": "{{ trigger.body.partner }}"},
            "headers": {
                "Authorization": "Bearer {{ secrets.partner_token }}",
                "X-Request-Id": "{{ event.id }}",
                "X-Tenant": "acme",
                "X-Order": "{{ trigger.body.id }}",
                "Accept": "application/json",
                "X-Source": "{{ trigger.headers['x-source'] | default('shop') }}"
            },
            "body": {"json": body},
            "sign": {"secret": "partner_signing_key"}
        }]
    });
    load_flow(Path::new("bench.json"), &flow.to_string()).expect("bench flow is valid")
}

fn trigger_body() -> Value {
    let items: Vec<Value> = (0..24)
        .map(|i| json!({"name": format!("Product number {i} in a realistic product catalogue, size XL, blue"), "qty": i}))
        .collect();
    json!({"id": 820982911946154508u64, "partner": "p-42/x", "total": "1999.00", "items": items})
}

fn bench(c: &mut Criterion) {
    let f = flow();
    let Action::Http(step) = &f.flow.steps[0].action else { unreachable!() };
    let sign = f.flow.steps[0].action.http().and_then(|h| h.sign.clone());
    let spec = match sign {
        Some(hookflow_core::flow::StepSign::Spec(s)) => s,
        _ => unreachable!(),
    };
    let inbound = InboundRequest {
        method: "POST".into(),
        headers: [("Content-Type", "application/json")].into_iter().collect(),
        body: trigger_body().to_string(),
        ..Default::default()
    };
    let run = Run::new(&f.flow, "run_bench", "evt_bench", &inbound);
    let ctx = run.context();
    let secret = WebhookSecret::generate().expose();
    let rendered = render_request(&f.templates, step, &ctx, "steps[0]").unwrap();
    let body = rendered.body.clone().unwrap();
    assert!((2048..2600).contains(&body.len()), "body is {} bytes", body.len());
    eprintln!("outbound body: {} bytes", body.len());

    let mut g = c.benchmark_group("outbound");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("context", |b| b.iter(|| black_box(run.context())));
    g.bench_function("render", |b| b.iter(|| black_box(render_request(&f.templates, step, &ctx, "steps[0]").unwrap())));
    g.bench_function("sign_standard_webhooks", |b| {
        b.iter(|| black_box(signature_headers(&spec, &secret, "msg_1", 1_700_000_000, body.as_bytes()).unwrap()))
    });
    let key = [7u8; 32];
    g.bench_function("raw_hmac_sha256", |b| {
        b.iter(|| black_box(hmac(Algorithm::Sha256, &key, &[b"msg_1", b".", b"1700000000", b".", body.as_bytes()])))
    });
    g.bench_function("render_and_sign", |b| {
        b.iter(|| {
            let r = render_request(&f.templates, step, &ctx, "steps[0]").unwrap();
            let body = r.body.as_deref().unwrap_or_default();
            black_box(signature_headers(&spec, &secret, "msg_1", 1_700_000_000, body.as_bytes()).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
