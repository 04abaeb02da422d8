//! Commands against AWS (or an emulator at `AWS_ENDPOINT_URL`):
//! `hookflow apply` and `hookflow local-aws up`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hookflow_aws::table::Table;
use hookflow_core::CompiledFlow;

use crate::flows;

pub async fn sdk() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}

/// The AWS configuration in `region` if given, else the environment's.
pub async fn sdk_in(region: Option<String>) -> aws_config::SdkConfig {
    match region {
        Some(r) => {
            aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new(r)).load().await
        }
        None => sdk().await,
    }
}

/// `hookflow apply`: validates every flow, then writes each changed one as
/// a new version. Nothing is written when any flow is invalid.
pub fn apply(dir: &[PathBuf], table: &str, dry_run: bool, api_url: Option<&str>) -> Result<ExitCode> {
    let files = flows::collect(dir)?;
    if files.is_empty() {
        anyhow::bail!("no flow files (*.yaml, *.yml, *.json) to apply");
    }
    let mut loaded: Vec<(CompiledFlow, String)> = Vec::new();
    let mut bad = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        match hookflow_core::load_flow(f, &text) {
            Ok(flow) => {
                for w in &flow.warnings {
                    eprintln!("warning: {w}");
                }
                // Valid, but more than the AWS stack can run.
                let problems = flows::aws_problems(&flow);
                if problems.is_empty() {
                    loaded.push((flow, text))
                } else {
                    bad += 1;
                    for p in problems {
                        out!("{p}");
                    }
                }
            }
            Err(e) => {
                bad += 1;
                out!("{e}");
            }
        }
    }
    for clash in hookflow_core::validate::clashes(loaded.iter().map(|(flow, _)| flow)) {
        bad += 1;
        out!("{clash}");
    }
    if bad > 0 {
        eprintln!("hookflow apply: {bad} of {} flow file(s) invalid; nothing applied", files.len());
        return Ok(ExitCode::FAILURE);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let table = Table::new(aws_sdk_dynamodb::Client::new(&sdk().await), table, 14);
        for (flow, text) in &loaded {
            let f = &flow.flow;
            let name = format!("{}/{}", f.tenant, f.id);
            let current = table.flow_text(&f.tenant, &f.id).await.with_context(|| format!("reading {name}"))?;
            let url = if f.trigger.kind == hookflow_core::flow::TriggerKind::Event {
                format!("EVENT {}", f.trigger.events.join("|"))
            } else {
                format!(
                    "{} {}/hooks/{}/{}",
                    f.trigger.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join("|"),
                    api_url.unwrap_or("<ApiUrl>").trim_end_matches('/'),
                    f.tenant,
                    f.trigger.path.trim_matches('/')
                )
            };
            match current {
                Some((version, _, old)) if old == *text => out!("{name}: unchanged (v{version})"),
                current => {
                    if dry_run {
                        let (label, old) = match &current {
                            Some((v, _, old)) => (format!("v{v} -> v{}", v + 1), old.as_str()),
                            None => ("new".to_string(), ""),
                        };
                        out!("{name}: {label}");
                        for line in diff(old, text) {
                            out!("  {line}");
                        }
                    } else {
                        let version = table
                            .put_flow(flow, text, hookflow_local::now_ms())
                            .await
                            .with_context(|| format!("writing {name}"))?;
                        out!("{name}: v{version}  {url}");
                    }
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A line diff (`-` old, `+` new, unchanged lines left out), by longest
/// common subsequence: flow files are short.
fn diff(old: &str, new: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

/// `hookflow local-aws up`: creates the template's table and queues in the
/// emulator at `AWS_ENDPOINT_URL` and prints the variables the functions
/// and the CLI read.
pub fn local_up(prefix: &str) -> Result<ExitCode> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        anyhow::bail!("AWS_ENDPOINT_URL is not set: this command creates resources in an emulator, not in an account");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let p = rt.block_on(async {
        let conf = sdk().await;
        hookflow_aws::provision::create(
            &aws_sdk_dynamodb::Client::new(&conf),
            &aws_sdk_sqs::Client::new(&conf),
            prefix,
            hookflow_aws::provision::MAX_RECEIVES,
        )
        .await
    })?;
    out!("export HOOKFLOW_TABLE={}", p.table);
    out!("export HOOKFLOW_RUNS_QUEUE_URL={}", p.runs_queue_url);
    out!("export HOOKFLOW_DELIVERIES_QUEUE_URL={}", p.deliveries_queue_url);
    out!("export HOOKFLOW_ORDERED_QUEUE_URL={}", p.ordered_queue_url);
    out!("export HOOKFLOW_DEAD_LETTER_ARNS={}", p.dead_letter_arns.join(","));
    out!("# DLQs: {} {} {}", p.runs_dlq_url, p.deliveries_dlq_url, p.ordered_dlq_url);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn diff_shows_changed_lines_only() {
        assert_eq!(super::diff("a\nb\nc", "a\nB\nc\nd"), ["- b", "+ B", "+ d"]);
        assert!(super::diff("same", "same").is_empty());
    }
}
