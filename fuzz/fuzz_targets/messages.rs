//! What the functions and workers decode from a queue message or a stored
//! row: a job (a run's step, a delivery), an event, a subscription, a
//! keyring, a run. Malformed input is an error, never a panic.
#![no_main]

use hookflow_core::commit::{DeliveryJob, RunJob};
use hookflow_core::keyring::Keyring;
use hookflow_core::run::Run;
use hookflow_core::subscription::{Event, Subscription};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<DeliveryJob>(data);
    let _ = serde_json::from_slice::<RunJob>(data);
    let _ = serde_json::from_slice::<Run>(data);
    if let Ok(e) = serde_json::from_slice::<Event>(data) {
        let _ = e.envelope();
    }
    if let Ok(s) = serde_json::from_slice::<Subscription>(data) {
        let _ = s.selects("order.paid");
        let _ = s.missed_since();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(k) = Keyring::from_text(text) {
            let _ = k.to_text();
        }
    }
});
