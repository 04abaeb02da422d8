//! Subscriptions and their keyrings, read through a cache.
//!
//! Every event reads its tenant's active subscriptions and every delivery
//! its subscription and keyring; reading them from SQLite (and parsing the
//! JSON) each time cost a sixth of the fan-out rate. One process owns the
//! embedded store and every write goes through here, so the cache is
//! written after the store and is never stale.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hookflow_core::subscription::{Status, Subscription};

use crate::Error;
use crate::store::Store;

/// The cache; the store stays the source of truth.
pub struct Subscriptions {
    subs: RwLock<HashMap<String, Arc<Subscription>>>,
    keyrings: RwLock<HashMap<String, Arc<str>>>,
    /// Held while a delivery's outcome changes a subscription, so two
    /// outcomes arriving together cannot both disable it.
    pub health: Arc<tokio::sync::Mutex<()>>,
}

impl Subscriptions {
    pub fn load(store: &Store) -> Result<Self, Error> {
        let subs = store.subscriptions(None, false)?.into_iter().map(|s| (s.id.clone(), Arc::new(s))).collect();
        Ok(Subscriptions {
            subs: RwLock::new(subs),
            keyrings: RwLock::new(HashMap::new()),
            health: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub fn get(&self, id: &str) -> Option<Arc<Subscription>> {
        self.subs.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Of `tenant` (or all), oldest first; only active ones if `active_only`.
    pub fn list(&self, tenant: Option<&str>, active_only: bool) -> Vec<Arc<Subscription>> {
        let subs = self.subs.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Arc<Subscription>> = subs
            .values()
            .filter(|s| tenant.is_none_or(|t| s.tenant == t) && (!active_only || s.status == Status::Active))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Records a subscription the store has just committed.
    pub fn saved(&self, sub: &Subscription) {
        self.subs.write().unwrap_or_else(|p| p.into_inner()).insert(sub.id.clone(), Arc::new(sub.clone()));
    }

    /// Deletes a subscription and its keyring; whether it existed.
    pub fn delete(&self, store: &Store, id: &str) -> Result<bool, Error> {
        let existed = store.delete_subscription(id)?;
        self.subs.write().unwrap_or_else(|p| p.into_inner()).remove(id);
        self.keyrings.write().unwrap_or_else(|p| p.into_inner()).remove(&hookflow_core::subscription::keyring_name(id));
        Ok(existed)
    }

    pub fn keyring(&self, store: &Store, name: &str) -> Result<Option<Arc<str>>, Error> {
        if let Some(k) = self.keyrings.read().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(Some(k.clone()));
        }
        let Some(value) = store.keyring(name)? else { return Ok(None) };
        let value: Arc<str> = value.into();
        self.keyrings.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), value.clone());
        Ok(Some(value))
    }

    pub fn put_keyring(&self, store: &Store, name: &str, value: &str) -> Result<(), Error> {
        store.put_keyring(name, value)?;
        self.keyrings.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), value.into());
        Ok(())
    }
}
