//! The flow directory: its files loaded and validated, and the loaded set
//! indexed by trigger route and by id (swapped whole on reload).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hookflow_core::flow::TriggerKind;
use hookflow_core::{CompiledFlow, Error as CoreError, load_flow};

use crate::Error;

/// The flow files (`*.yaml`, `*.yml`, `*.json`) directly in `dir`, sorted:
/// subdirectories can hold fixtures.
pub fn flow_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads and validates every flow file directly in `dir`. All problems of
/// all files are returned together.
pub fn load_dir(dir: &Path) -> Result<Vec<CompiledFlow>, Vec<String>> {
    let files = flow_files(dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
    let mut flows = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => match load_flow(&f, &text) {
                Ok(c) => flows.push(c),
                Err(CoreError::Invalid(d)) => problems.extend(d.iter().map(ToString::to_string)),
                Err(e) => problems.push(format!("{}: {e}", f.display())),
            },
            Err(e) => problems.push(format!("{}: {e}", f.display())),
        }
    }
    if problems.is_empty() { Ok(flows) } else { Err(problems) }
}

/// Loaded flows, by route and by id.
#[derive(Default)]
pub struct Flows {
    by_route: HashMap<(String, String), Arc<CompiledFlow>>,
    by_id: HashMap<(String, String), Arc<CompiledFlow>>,
    /// Flows with an event trigger (which events start them is
    /// [`Flow::started_by`](hookflow_core::Flow::started_by)'s to say).
    by_event: Vec<Arc<CompiledFlow>>,
}

impl Flows {
    pub fn new(flows: Vec<CompiledFlow>) -> Result<Self, Error> {
        if let Some(clash) = hookflow_core::validate::clashes(&flows).into_iter().next() {
            return Err(Error::Config(clash));
        }
        let mut f = Flows::default();
        for flow in flows {
            let flow = Arc::new(flow);
            let t = flow.flow.tenant.clone();
            let route = (t.clone(), flow.flow.trigger.path.trim_matches('/').to_string());
            if flow.flow.trigger.kind == TriggerKind::Event {
                f.by_event.push(flow.clone());
            } else {
                f.by_route.insert(route, flow.clone());
            }
            f.by_id.insert((t, flow.flow.id.clone()), flow.clone());
        }
        Ok(f)
    }

    pub fn by_route(&self, tenant: &str, path: &str) -> Option<Arc<CompiledFlow>> {
        self.by_route.get(&(tenant.to_string(), path.trim_matches('/').to_string())).cloned()
    }

    pub fn by_id(&self, tenant: &str, id: &str) -> Option<Arc<CompiledFlow>> {
        self.by_id.get(&(tenant.to_string(), id.to_string())).cloned()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<CompiledFlow>> {
        self.by_id.values()
    }

    /// The flows with an event trigger.
    pub fn event_flows(&self) -> impl Iterator<Item = &Arc<CompiledFlow>> {
        self.by_event.iter()
    }
}
