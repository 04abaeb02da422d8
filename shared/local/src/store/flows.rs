//! Flow versions: the text of every flow version runs started on, so a
//! run goes on with its version after the file is edited (or the process
//! restarted on the edited file).

use super::*;

impl Store {
    /// Keeps `flow`'s text under its version (once: a version is its
    /// text's digest, so the same text is the same row).
    pub fn keep_flow(&self, flow: &hookflow_core::CompiledFlow, now_ms: i64) -> Result<(), Error> {
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO flows (version, tenant, flow_id, file, text, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    flow.version,
                    flow.flow.tenant,
                    flow.flow.id,
                    flow.file.display().to_string(),
                    &*flow.text,
                    now_ms
                ],
            )
            .map(|_| ())
            .map_err(db)
    }

    /// The file name and text of a flow version.
    pub fn flow_version(&self, version: &str) -> Result<Option<(String, String)>, Error> {
        self.conn()
            .query_row("SELECT file, text FROM flows WHERE version = ?1", [version], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(db)
    }
}
