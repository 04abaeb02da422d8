//! The admin API's request bodies: a new subscription (every field
//! checked, all problems at once) and a new event. An error naming the
//! field, never a panic.
#![no_main]

use hookflow_core::subscription::{NewEvent, NewSubscription};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(new) = serde_json::from_slice::<NewSubscription>(data) {
        if let Ok((sub, _)) = new.create(1_800_000_000_000) {
            let _ = sub.verification_job(&Default::default(), 1_800_000_000_000);
        }
    }
    if let Ok(new) = serde_json::from_slice::<NewEvent>(data) {
        let _ = new.into_event(1_800_000_000_000);
    }
});
