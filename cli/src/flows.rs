//! Finding and loading flow files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use hookflow_core::{CompiledFlow, Error, load_flow};
use hookflow_local::flows::flow_files;

/// The flow files named by `paths`: files as given; for a directory, the
/// flow files directly in it, sorted (subdirectories can hold fixtures).
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut add = |p: PathBuf| {
        // A file named twice (`examples examples/hello.yaml`) is one file.
        if seen.insert(std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone())) {
            out.push(p);
        }
    };
    for p in paths {
        if p.is_dir() {
            for f in flow_files(p).with_context(|| format!("reading {}", p.display()))? {
                add(f);
            }
        } else {
            add(p.clone());
        }
    }
    Ok(out)
}

/// Reads and validates one flow file.
pub fn load(path: &Path) -> Result<std::result::Result<CompiledFlow, Error>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(load_flow(path, &text))
}

/// `file:line:col` of `field` in a loaded flow.
fn place(flow: &CompiledFlow, field: &str) -> String {
    let at = hookflow_core::source::parse(&flow.text).map(|(_, map)| map.locate(field)).unwrap_or_default();
    format!("{}:{}:{}", flow.file.display(), at.line, at.col)
}

/// What a deployment refuses of a flow `hookflow dev` runs (a step's
/// timeout past the dispatcher's), each as `file:line:col: field: why`.
pub fn aws_problems(flow: &CompiledFlow) -> Vec<String> {
    hookflow_aws::limits::problems(flow)
        .into_iter()
        .map(|(field, message)| format!("{}: {field}: {message}", place(flow, &field)))
        .collect()
}

/// `hookflow validate`: every problem of every file, the rules `hookflow
/// dev` loads by (two files with one trigger or one id included), and what
/// a deployment refuses (warnings; errors with `aws`, as `apply` and the
/// admin API on AWS refuse them).
pub fn validate(paths: &[PathBuf], aws: bool) -> Result<ExitCode> {
    let files = collect(paths)?;
    if files.is_empty() {
        anyhow::bail!(
            "no flow files (*.yaml, *.yml, *.json) under {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let mut bad = 0;
    let mut secrets = std::collections::BTreeSet::new();
    let mut valid = Vec::new();
    for f in &files {
        match load(f)? {
            Ok(flow) => {
                for w in &flow.warnings {
                    out!("warning: {w}");
                }
                let on_aws = aws_problems(&flow);
                for p in &on_aws {
                    if aws {
                        out!("{p}");
                    } else {
                        out!("warning: {p} (on AWS only: `validate --aws` and `apply` refuse it)");
                    }
                }
                if aws && !on_aws.is_empty() {
                    bad += 1;
                    continue;
                }
                secrets.extend(flow.secret_names());
                valid.push(flow);
            }
            Err(e) => {
                bad += 1;
                out!("{e}");
            }
        }
    }
    for clash in hookflow_core::validate::clashes(&valid) {
        bad += 1;
        out!("{clash}");
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
