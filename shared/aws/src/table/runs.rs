//! Runs: a run's stored state, the outbox of its last commit, and the log
//! its item keeps ([`item::RunDoc`]).

use super::item::RunDoc;
use super::*;

/// A run as its item holds it.
#[derive(Debug, Clone)]
pub struct StoredRun {
    pub run: Run,
    /// What its last commit queued ([`crate::outbox`]; empty when that
    /// commit queued nothing or was written before outboxes were).
    pub outbox: Outbox,
    /// Its log entries kept in its item (JSON), which its next write
    /// carries on ([`Table::write_holding`]'s `prior`).
    pub log: String,
}

impl Table {
    /// A run's stored state.
    pub async fn load_run(&self, id: &str) -> Result<Option<Run>, Error> {
        Ok(self.load_stored(id).await?.map(|s| s.run))
    }

    /// A run as stored.
    pub async fn load_stored(&self, id: &str) -> Result<Option<StoredRun>, Error> {
        let Some(item) = self.get(keys::run(id), keys::RUN).await? else { return Ok(None) };
        let doc = RunDoc::of_item(&item, id)?;
        let run = serde_json::from_str(&doc.state).map_err(|e| Error::Malformed(format!("run {id}: {e}")))?;
        let outbox = if doc.outbox.is_empty() { Outbox::default() } else { Outbox::from_text(&doc.outbox)? };
        Ok(Some(StoredRun { run, outbox, log: doc.log }))
    }
}
