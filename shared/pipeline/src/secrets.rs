//! The secret values one delivery needs.

use std::collections::HashMap;

use hookflow_core::ports::{PortError, SecretStore};
use hookflow_core::run::Delivery;

/// Secret values by name, fetched for one delivery ([`resolve`]).
pub type SecretValues = HashMap<String, String>;

/// The names of the secrets `d` uses: its URL and header placeholders and
/// its signing secret.
pub fn names(d: &Delivery) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in d.request.secret_names().into_iter().chain(d.sign.as_ref().map(|s| s.secret.as_str())) {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    }
    names
}

/// Fetches the secrets `d` uses. A missing secret is left out (the attempt
/// then fails as `secret` and is retried: it may be created later); a
/// store failure is an error. A flow's step never gets a subscription's
/// keyring (validation refuses the name; a flow stored before that is
/// answered as if the secret were missing).
pub async fn resolve(store: &impl SecretStore, d: &Delivery) -> Result<SecretValues, PortError> {
    let mut values = SecretValues::new();
    for name in names(d) {
        if d.purpose.is_step() && hookflow_core::subscription::is_keyring_name(&name) {
            continue;
        }
        if let Some(v) = store.secret(&name).await? {
            values.insert(name, v);
        }
    }
    Ok(values)
}
