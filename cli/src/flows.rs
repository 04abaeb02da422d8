//! Finding and loading flow files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use hookflow_core::{CompiledFlow, Error, load_flow};
use hookflow_local::flows::flow_files;

/// The flow files named by `paths`: files as given; for a directory, the
/// flow files directly in it, sorted (subdirectories can hold fixtures).
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(flow_files(p).with_context(|| format!("reading {}", p.display()))?);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Reads and validates one flow file.
pub fn load(path: &Path) -> Result<std::result::Result<CompiledFlow, Error>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(load_flow(path, &text))
}

/// `hookflow validate`.
pub fn validate(paths: &[PathBuf]) -> Result<ExitCode> {
    let files = collect(paths)?;
    if files.is_empty() {
        anyhow::bail!(
            "no flow files (*.yaml, *.yml, *.json) under {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let mut bad = 0;
    let mut secrets = std::collections::BTreeSet::new();
    for f in &files {
        match load(f)? {
            Ok(flow) => {
                for w in &flow.warnings {
                    out!("warning: {w}");
                }
                secrets.extend(flow.secret_names());
            }
            Err(e) => {
                bad += 1;
                out!("{e}");
            }
        }
    }
    if bad == 0 {
        eprintln!("{} flow file(s) valid", files.len());
        if !secrets.is_empty() {
            eprintln!(
                "secrets they read: {} (hookflow dev: --secrets-file or HOOKFLOW_SECRET_<NAME>; AWS: Secrets Manager, \
                 named with the stack's SecretsPrefix, `hookflow/` by default)",
                secrets.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{bad} of {} flow file(s) invalid", files.len());
        Ok(ExitCode::FAILURE)
    }
}
