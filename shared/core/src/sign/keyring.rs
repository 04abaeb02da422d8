//! A subscription's signing keys: a keyring kept in the secret store as
//! JSON, rotated with a grace period, signing with every key still valid.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::signature::{SignatureError, SigningKey, WebhookSecret};

/// The namespace of subscriptions' keyrings in the secret store.
pub const KEYRINGS: &str = "subscriptions/";

/// Whether `name` is in the keyrings' namespace, which flows may not name:
/// a flow could otherwise sign with, or send, a subscription's key.
pub fn is_keyring_name(name: &str) -> bool {
    name.starts_with(KEYRINGS)
}

/// How deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Signing {
    /// `v1`: HMAC-SHA256 with a `whsec_` secret the endpoint also holds.
    #[default]
    HmacSha256,
    /// `v1a`: ed25519; the endpoint verifies with the public key (`whpk_`).
    Ed25519,
}

/// One signing key of a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    /// `whsec_…` (HMAC) or `whsk_…` (ed25519).
    pub secret: String,
    /// When it stops signing (ms); `None` while it is the current key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// A subscription's signing keys, newest last. Kept in the secret store as
/// JSON text; [`crate::request::signature_headers`] signs with every key
/// not yet expired.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyring {
    pub keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

/// What the admin gets back once: the secret (HMAC) or the public key
/// (ed25519; the private key never leaves Hookflow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Secret(String),
    PublicKey(String),
}

impl Keyring {
    fn fresh(signing: Signing) -> Key {
        let secret = match signing {
            Signing::HmacSha256 => WebhookSecret::generate().expose(),
            Signing::Ed25519 => SigningKey::generate().expose(),
        };
        Key { secret, expires_at: None }
    }

    pub fn new(signing: Signing) -> Self {
        Keyring { keys: vec![Self::fresh(signing)] }
    }

    /// The current key's credential for the endpoint's owner.
    pub fn credential(&self) -> Option<Credential> {
        let key = self.keys.last()?;
        if key.secret.starts_with("whsk_") {
            SigningKey::parse(&key.secret).ok().map(|k| Credential::PublicKey(k.public()))
        } else {
            Some(Credential::Secret(key.secret.clone()))
        }
    }

    /// The public keys (`whpk_`) of the ed25519 keys still signing at `now`.
    pub fn public_keys(&self, now: i64) -> Vec<String> {
        self.valid(now).filter_map(|k| SigningKey::parse(&k.secret).ok()).map(|k| k.public()).collect()
    }

    /// A new current key; the old ones sign until `now + grace` (keys that
    /// have expired already are dropped).
    pub fn rotate(&mut self, signing: Signing, now: i64, grace: Duration) {
        self.keys.retain(|k| k.expires_at.is_none_or(|at| at > now));
        let until = now + grace.as_millis() as i64;
        for k in &mut self.keys {
            k.expires_at = Some(k.expires_at.map_or(until, |at| at.min(until)));
        }
        self.keys.push(Self::fresh(signing));
    }

    fn valid(&self, now: i64) -> impl Iterator<Item = &Key> {
        self.keys.iter().filter(move |k| k.expires_at.is_none_or(|at| at > now))
    }

    /// The `webhook-signature` value at `timestamp` (seconds): one entry
    /// per key still valid then, newest first.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, SignatureError> {
        let mut out = Vec::new();
        for k in self.valid(timestamp * 1000).collect::<Vec<_>>().into_iter().rev() {
            if k.secret.starts_with("whsk_") {
                out.push(SigningKey::parse(&k.secret)?.sign(msg_id, timestamp, body));
            } else {
                out.push(WebhookSecret::parse(&k.secret)?.sign(msg_id, timestamp, body));
            }
        }
        if out.is_empty() {
            return Err(SignatureError::BadSecret("the subscription has no valid signing key".into()));
        }
        Ok(out.join(" "))
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The keyring in a secret value, if the value is one.
    pub fn from_text(text: &str) -> Option<Self> {
        if !text.trim_start().starts_with('{') {
            return None;
        }
        serde_json::from_str(text).ok()
    }
}
