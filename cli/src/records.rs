//! Reading what happened: `hookflow logs`, `runs show`, `dead list`,
//! `dead replay`, over the embedded store of `hookflow dev`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use hookflow_local::rfc3339;
use hookflow_local::store::{LogEntry, LogFilter, Store};
use serde_json::Value;

fn open(data: &Path) -> Result<Store> {
    if !data.join("hookflow.db").exists() {
        bail!("no store at {} (start `hookflow dev --data {}` first, or pass --data)", data.display(), data.display());
    }
    Ok(Store::open(data)?)
}

/// `--since 1h` -> a time in ms.
fn since(text: Option<&str>) -> Result<i64> {
    let Some(t) = text else { return Ok(0) };
    let span: hookflow_core::duration::Span = t.parse().map_err(|e: String| anyhow::anyhow!("--since: {e}"))?;
    Ok(hookflow_local::now_ms() - span.get().as_millis() as i64)
}

/// One human line of a log entry.
fn line(e: &LogEntry) -> String {
    let d = &e.detail;
    let what = match e.kind.as_str() {
        "attempt" => format!(
            "attempt {} {} {}{}",
            d["attempt"],
            d["request"]["url"].as_str().unwrap_or(""),
            d["response"]["status"]
                .as_u64()
                .map(|s| s.to_string())
                .unwrap_or_else(|| d["error_class"].as_str().unwrap_or("").to_string()),
            d["duration_ms"].as_u64().map(|ms| format!(" ({ms} ms)")).unwrap_or_default()
        ),
        "step" => format!("step {} {}", d["step"].as_str().unwrap_or(""), d["decision"].as_str().unwrap_or("")),
        "inbound" => match d.get("reason").and_then(Value::as_str) {
            Some(r) => {
                format!("inbound {} {}: {r}", d["method"].as_str().unwrap_or(""), d["path"].as_str().unwrap_or(""))
            }
            None => format!("inbound {} {}", d["method"].as_str().unwrap_or(""), d["path"].as_str().unwrap_or("")),
        },
        "run" => format!("run {}", d.get("reason").and_then(Value::as_str).unwrap_or("")),
        other => other.to_string(),
    };
    format!(
        "{}  {:<12} {:<16} {:<10} {}",
        rfc3339(e.at),
        e.outcome.as_deref().unwrap_or("-"),
        e.flow_id.as_deref().unwrap_or("-"),
        e.run_id.as_deref().map(|r| &r[..r.len().min(10)]).unwrap_or("-"),
        what
    )
}

fn print(entries: &[LogEntry], json: bool) -> Result<()> {
    for e in entries {
        if json {
            println!("{}", serde_json::to_string(e)?);
        } else {
            println!("{}", line(e));
        }
    }
    Ok(())
}

pub fn logs(
    data: &Path,
    flow: Option<String>,
    run: Option<String>,
    failed: bool,
    since_text: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let store = open(data)?;
    let entries =
        store.query_log(&LogFilter { flow_id: flow, run_id: run, since: since(since_text)?, failed_only: failed })?;
    print(&entries, json)?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_show(data: &Path, run_id: &str, json: bool) -> Result<ExitCode> {
    let store = open(data)?;
    let Some(state) = store.run(run_id)? else {
        eprintln!("no run {run_id}");
        return Ok(ExitCode::FAILURE);
    };
    let entries = store.query_log(&LogFilter { run_id: Some(run_id.to_string()), ..Default::default() })?;
    if json {
        println!("{}", serde_json::json!({"run": state, "timeline": entries}));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "run {run_id}  flow {}  event {}  status {}",
        state["flow_id"].as_str().unwrap_or(""),
        state["event_id"].as_str().unwrap_or(""),
        state["status"]
    );
    print(&entries, false)?;
    Ok(ExitCode::SUCCESS)
}

pub fn dead_list(data: &Path, flow: Option<&str>, json: bool) -> Result<ExitCode> {
    let store = open(data)?;
    for d in store.dead_jobs(flow)? {
        if json {
            println!("{}", serde_json::to_string(&d)?);
        } else {
            println!("{}  {}  {:<16} run {}  {}", rfc3339(d.at), d.delivery_id, d.flow_id, d.run_id, d.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn dead_replay(data: &Path, id: Option<&str>, all: bool, flow: Option<&str>) -> Result<ExitCode> {
    let store = open(data)?;
    let dead = store.dead_jobs(flow)?;
    let chosen: Vec<_> = match (id, all) {
        (Some(id), false) => dead.into_iter().filter(|d| d.delivery_id == id).collect(),
        (None, true) => dead,
        _ => bail!("give a delivery id or --all"),
    };
    if chosen.is_empty() {
        eprintln!("nothing to replay");
        return Ok(ExitCode::FAILURE);
    }
    let bar = indicatif::ProgressBar::new(chosen.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("replaying {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for d in &chosen {
        store.replay(d)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!("{} deliveries queued again (same webhook-id); a running `hookflow dev` sends them now", chosen.len());
    Ok(ExitCode::SUCCESS)
}
