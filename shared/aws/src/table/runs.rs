//! Runs: a run's stored state, and the outbox of its last commit.

use super::*;

impl Table {
    /// A run's stored state.
    pub async fn load_run(&self, id: &str) -> Result<Option<Run>, Error> {
        Ok(self.load_run_outbox(id).await?.map(|(run, _)| run))
    }

    /// A run's stored state and what its last commit queued
    /// ([`crate::outbox`]; empty when that commit queued nothing or was
    /// written before outboxes were).
    pub async fn load_run_outbox(&self, id: &str) -> Result<Option<(Run, Outbox)>, Error> {
        let Some(item) = self.get(keys::run(id), keys::RUN).await? else { return Ok(None) };
        let state = get_text(&item, "state")?.ok_or_else(|| Error::Malformed(format!("run {id}: no state")))?;
        let run = serde_json::from_str(&state).map_err(|e| Error::Malformed(format!("run {id}: {e}")))?;
        let outbox = get_text(&item, "outbox")?.as_deref().map(Outbox::from_text).transpose()?.unwrap_or_default();
        Ok(Some((run, outbox)))
    }
}
