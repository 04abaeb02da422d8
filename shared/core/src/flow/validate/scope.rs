//! What a template at some point of the flow may read: the trigger's
//! fields, earlier steps (and whether their response is there), `vars`.

use super::*;

/// What a template at some point of the flow may read.
pub(super) struct Scope {
    /// Earlier steps: id -> whether its response is available.
    steps: HashMap<String, StepInfo>,
    /// Variables set by earlier `set` steps.
    vars: HashSet<String>,
    trigger_only: bool,
}

pub(super) struct StepInfo {
    has_response: bool,
}

/// Globals minijinja provides (functions), which are not context variables.
const GLOBALS: &[&str] = &["range", "dict", "namespace", "debug", "lipsum", "cycler", "joiner", "loop", "self"];

impl Scope {
    pub(super) fn trigger_only() -> Self {
        Scope { steps: HashMap::new(), vars: HashSet::new(), trigger_only: true }
    }

    pub(super) fn before(flow: &Flow, index: usize) -> Self {
        let mut steps = HashMap::new();
        let mut vars = HashSet::new();
        for s in &flow.steps[..index] {
            let has_response = s.action.http().is_some_and(|h| h.wait_for_response);
            steps.insert(s.id.clone(), StepInfo { has_response });
            if let Action::Set(set) = &s.action {
                vars.extend(set.vars.keys().cloned());
            }
        }
        Scope { steps, vars, trigger_only: false }
    }

    pub(super) fn check(&self, var: &str, slot: Slot) -> Result<(), String> {
        let mut parts = var.split('.');
        let root = parts.next().unwrap_or_default();
        let second = parts.next();
        let unknown = || format!("unknown template variable '{var}'");
        match root {
            "trigger" => match second {
                Some(f) if !TRIGGER_FIELDS.contains(&f) => {
                    Err(format!("{}: `trigger` has {}", unknown(), TRIGGER_FIELDS.join(", ")))
                }
                _ => Ok(()),
            },
            "event" => match second {
                Some("id") | None => Ok(()),
                Some(_) => Err(format!("{}: `event` has id", unknown())),
            },
            "run" => match second {
                Some("id") | None => Ok(()),
                Some(_) => Err(format!("{}: `run` has id", unknown())),
            },
            "vars" if self.trigger_only => Err(format!("'{var}': the trigger answers before any step sets variables")),
            "vars" => match second {
                Some(name) if !self.vars.contains(name) => {
                    Err(format!("{}: no earlier `set` step sets `{name}`", unknown()))
                }
                _ => Ok(()),
            },
            "steps" if self.trigger_only => Err(format!("'{var}': the trigger answers before any step runs")),
            "steps" => {
                let Some(id) = second else { return Ok(()) };
                let Some(info) = self.steps.get(id) else {
                    return Err(format!("{}: `{id}` is not an earlier step", unknown()));
                };
                match parts.next() {
                    Some("response") if !info.has_response => Err(format!(
                        "'{var}': step `{id}` has no response to read (it is not an http step that waits for its response)"
                    )),
                    Some(f) if !STEP_FIELDS.contains(&f) => {
                        Err(format!("{}: a step has {}", unknown(), STEP_FIELDS.join(", ")))
                    }
                    _ => Ok(()),
                }
            }
            "secrets" if slot == Slot::Credential => match second {
                Some(name) if flow_secret_problem(name).is_some() => Err(flow_secret_problem(name).unwrap_or_default()),
                None => Err("use a secret by name: `secrets.NAME`".into()),
                _ => Ok(()),
            },
            "secrets" => {
                Err(format!("'{var}': secrets may only be used in header values, query values and auth fields"))
            }
            g if GLOBALS.contains(&g) => Ok(()),
            _ => Err(format!("{}: templates can read trigger, event, run, vars, steps and secrets", unknown())),
        }
    }
}
