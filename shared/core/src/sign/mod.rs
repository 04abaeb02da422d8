//! Signatures: Standard Webhooks, HMAC presets, ed25519, constant-time checks (`signature`), and a
//! subscription's signing keys with rotation (`keyring`).

pub mod keyring;
pub mod signature;
