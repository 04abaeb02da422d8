//! Runs: a run's stored state.

use super::*;

impl Table {
    /// A run's stored state.
    pub async fn load_run(&self, id: &str) -> Result<Option<Run>, Error> {
        let Some(item) = self.get(keys::run(id), keys::RUN).await? else { return Ok(None) };
        let state = get_s(&item, "state").ok_or_else(|| Error::Malformed(format!("run {id}: no state")))?;
        serde_json::from_str(state).map(Some).map_err(|e| Error::Malformed(format!("run {id}: {e}")))
    }
}
