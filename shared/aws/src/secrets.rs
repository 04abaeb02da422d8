//! Secrets Manager: header and query credentials by name.
//!
//! A flow says `secret: partner-token`; the secret is
//! `{prefix}partner-token` (prefix `hookflow/` by default, which the IAM
//! policy is limited to). `name#key` reads one field of a JSON secret.
//! Values are cached per container for [`CACHE_TTL`] (a rotated secret is
//! picked up within that time) and never logged, queued or stored.

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretError;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError;
use hookflow_core::ports::{PortError, SecretStore};

use crate::Error;
use crate::cache::TtlCache;

/// How long a secret value is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(300);

/// The most the secrets cache holds (names are the flows' own, so this is
/// far more than a deployment uses; it bounds memory all the same).
pub const CACHE_BYTES: u64 = 1024 * 1024;

/// Secrets Manager with a per-container cache.
#[derive(Clone)]
pub struct Secrets {
    client: Client,
    prefix: String,
    cache: TtlCache<Option<String>>,
}

impl Secrets {
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Secrets { client, prefix: prefix.into(), cache: TtlCache::new(CACHE_TTL, CACHE_BYTES) }
    }

    /// How to create the secret `name` (a key `name#key` is a JSON field of
    /// the secret `name`).
    pub fn how_to_set(&self, name: &str) -> String {
        let base = name.split('#').next().unwrap_or(name);
        format!(
            "create it: aws secretsmanager create-secret --name '{}{base}' --secret-string '…' \
             (read within 5 minutes)",
            self.prefix
        )
    }

    /// The whole secret string named `name` (without the prefix), or `None`
    /// when there is no such secret.
    async fn fetch(&self, name: &str) -> Result<Option<String>, Error> {
        self.fetch_as(name, name).await
    }

    /// [`fetch`](Self::fetch), cached under `cache_key`.
    async fn fetch_as(&self, name: &str, cache_key: &str) -> Result<Option<String>, Error> {
        if let Some(v) = self.cache.get(cache_key) {
            return Ok(v);
        }
        let id = format!("{}{name}", self.prefix);
        let value = match self.client.get_secret_value().secret_id(&id).send().await {
            Ok(out) => out.secret_string().map(String::from),
            Err(e) if matches!(e.as_service_error(), Some(GetSecretValueError::ResourceNotFoundException(_))) => None,
            Err(e) => return Err(Error::aws("Secrets Manager", "GetSecretValue", e)),
        };
        // A missing secret is cached briefly too (it may be created soon,
        // but a burst of deliveries should not each ask).
        self.cache.put(cache_key, value.clone());
        Ok(value)
    }

    /// The value of `name` or `name#key`.
    pub async fn get(&self, name: &str) -> Result<Option<String>, Error> {
        let (base, field) = match name.split_once('#') {
            Some((b, k)) => (b, Some(k)),
            None => (name, None),
        };
        let Some(text) = self.fetch(base).await? else { return Ok(None) };
        match field {
            None => Ok(Some(text)),
            Some(k) => {
                let json: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
                    Error::Malformed(format!("secret `{base}` is not JSON, so `{name}` has no field `{k}`"))
                })?;
                Ok(json.get(k).map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string())))
            }
        }
    }

    /// The value of `name` as of `version` (ms): a copy cached under an
    /// older version is not used. For subscription keyrings, whose record
    /// carries the time its keys last changed.
    pub async fn get_versioned(&self, name: &str, version: i64) -> Result<Option<String>, Error> {
        self.fetch_as(name, &format!("{name}@{version}")).await
    }

    /// Writes the secret `name` (created if missing): a subscription's
    /// keyring. The cached value is replaced, so this container reads what
    /// it wrote.
    pub async fn put(&self, name: &str, value: &str) -> Result<(), Error> {
        let id = format!("{}{name}", self.prefix);
        let put = self.client.put_secret_value().secret_id(&id).secret_string(value).send().await;
        match put {
            Ok(_) => {}
            Err(e) if matches!(e.as_service_error(), Some(PutSecretValueError::ResourceNotFoundException(_))) => {
                self.client
                    .create_secret()
                    .name(&id)
                    .secret_string(value)
                    .send()
                    .await
                    .map_err(|e| Error::aws("Secrets Manager", "CreateSecret", e))?;
            }
            Err(e) => return Err(Error::aws("Secrets Manager", "PutSecretValue", e)),
        }
        self.cache.put(name, Some(value.to_string()));
        Ok(())
    }

    /// Deletes the secret `name` at once (no recovery window: a deleted
    /// subscription's keys are not wanted back).
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        let id = format!("{}{name}", self.prefix);
        let out = self.client.delete_secret().secret_id(&id).force_delete_without_recovery(true).send().await;
        match out {
            Ok(_) => {}
            Err(e) if matches!(e.as_service_error(), Some(DeleteSecretError::ResourceNotFoundException(_))) => {}
            Err(e) => return Err(Error::aws("Secrets Manager", "DeleteSecret", e)),
        }
        self.cache.put(name, None);
        Ok(())
    }

    /// Forgets cached values (after a delivery failed for a bad credential,
    /// the next attempt reads the secret again).
    pub fn clear(&self) {
        self.cache.clear();
    }
}

impl SecretStore for Secrets {
    async fn secret(&self, name: &str) -> Result<Option<String>, PortError> {
        Ok(self.get(name).await?)
    }
}
