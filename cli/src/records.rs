//! Reading what happened: `hookflow logs`, `runs show`, `dead list`,
//! `dead replay`, over the embedded store of `hookflow dev` (`--data`) or
//! a deployment's DynamoDB table (`--table`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hookflow_core::commit::DeadDelivery;
use hookflow_local::rfc3339;
use hookflow_local::store::{LogEntry, LogFilter, Store};
use serde_json::Value;

/// Most runs `hookflow logs --table` reads the timeline of.
const MAX_RUNS: usize = 500;

/// Where the records are.
pub enum Source {
    /// `hookflow dev`'s store directory.
    Local(PathBuf),
    /// A deployment's table; replays go to its deliveries queue.
    Aws { table: String, deliveries_queue_url: Option<String> },
}

/// An opened source.
enum Records {
    Local(Store),
    Aws { rt: tokio::runtime::Runtime, store: hookflow_aws::store::Store },
}

impl Source {
    fn open(self) -> Result<Records> {
        match self {
            Source::Local(data) => {
                if !data.join("hookflow.db").exists() {
                    bail!(
                        "no store at {} (start `hookflow dev --data {}` first, or pass --data or --table)",
                        data.display(),
                        data.display()
                    );
                }
                Ok(Records::Local(Store::open_beside(&data)?))
            }
            Source::Aws { table, deliveries_queue_url } => {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let conf = rt.block_on(crate::aws::sdk());
                let sqs = aws_sdk_sqs::Client::new(&conf);
                let store = hookflow_aws::store::Store {
                    // Reads filter expired entries by their own TTL; the
                    // retention only dates what a replay logs.
                    table: hookflow_aws::table::Table::new(aws_sdk_dynamodb::Client::new(&conf), table, 14),
                    queues: hookflow_aws::queue::Queues::new(sqs, "", deliveries_queue_url.as_deref().unwrap_or("")),
                };
                Ok(Records::Aws { rt, store })
            }
        }
    }
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
        // Whole: every run started within minutes shares a prefix, and
        // `runs show` takes what is printed here.
        e.run_id.as_deref().unwrap_or("-"),
        what
    )
}

/// How a listing is printed.
#[derive(Debug, Clone, Copy)]
pub struct Shown {
    /// One JSON value (an object a line; `dead list`: one array).
    pub json: bool,
    /// Oldest first; newest first otherwise, as the console lists.
    pub reverse: bool,
}

/// Entries newest first (`reverse`: oldest first), in the store's order
/// within a millisecond.
fn ordered(mut entries: Vec<LogEntry>, reverse: bool) -> Vec<LogEntry> {
    // A request first within its millisecond: its entry is stored with
    // the steps it started, after them.
    entries.sort_by_key(|e| (e.at, e.kind.as_str() != "inbound", e.seq));
    if !reverse {
        entries.reverse();
    }
    entries
}

fn print(entries: &[LogEntry], json: bool) -> Result<()> {
    for e in entries {
        if json {
            out!("{}", serde_json::to_string(e)?);
        } else {
            out!("{}", line(e));
        }
    }
    Ok(())
}

pub fn logs(
    source: Source,
    tenant: Option<&str>,
    filter: LogFilter,
    since_text: Option<&str>,
    shown: Shown,
) -> Result<ExitCode> {
    let mut filter = filter;
    filter.since = since(since_text)?;
    let entries = match source.open()? {
        Records::Local(store) => store.query_log(&filter)?,
        Records::Aws { rt, store } => {
            let now = hookflow_local::now_ms();
            let entries = match (&filter.run_id, tenant) {
                (Some(run), _) => rt.block_on(store.table.run_entries(run, now))?,
                (None, Some(tenant)) => {
                    // A table read has no time index across tenants: the
                    // default window is the last hour.
                    let since = if since_text.is_some() { filter.since } else { now - 3_600_000 };
                    rt.block_on(store.table.tenant_log(tenant, since, now, MAX_RUNS))?
                }
                (None, None) => bail!("with --table, give --tenant (or --run)"),
            };
            entries
                .into_iter()
                .filter(|e| e.at >= filter.since)
                .filter(|e| filter.flow_id.is_none() || e.flow_id == filter.flow_id)
                .filter(|e| !filter.failed_only || e.is_failure())
                .collect()
        }
    };
    print(&ordered(entries, shown.reverse), shown.json)?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_show(source: Source, run_id: &str, json: bool) -> Result<ExitCode> {
    let (state, entries) = match source.open()? {
        Records::Local(store) => (
            store.run(run_id)?,
            store.query_log(&LogFilter { run_id: Some(run_id.to_string()), ..Default::default() })?,
        ),
        Records::Aws { rt, store } => rt.block_on(async {
            let run = store.table.load_run(run_id).await?.map(|r| serde_json::to_value(r).unwrap_or_default());
            Ok::<_, hookflow_aws::Error>((run, store.table.run_entries(run_id, hookflow_local::now_ms()).await?))
        })?,
    };
    let Some(state) = state else {
        eprintln!("no run {run_id}");
        return Ok(ExitCode::FAILURE);
    };
    if json {
        out!("{}", serde_json::json!({"run": state, "timeline": entries}));
        return Ok(ExitCode::SUCCESS);
    }
    // What happened, as the console's run page says it (from the log in
    // time order, as the page reads it); then the timeline, in order.
    let entries = ordered(entries, true);
    let log: Vec<Value> = entries.iter().filter_map(|e| serde_json::to_value(e).ok()).collect();
    let said = hookflow_console::Headline::of(&state, &log);
    out!(
        "run {run_id}  flow {}/{}  event {}",
        state["tenant"].as_str().unwrap_or(""),
        state["flow_id"].as_str().unwrap_or(""),
        state["event_id"].as_str().unwrap_or("")
    );
    out!("{}: {}", said.title, said.detail);
    print(&entries, false)?;
    Ok(ExitCode::SUCCESS)
}

impl Records {
    fn dead(&self, flow: Option<&str>, tenant: Option<&str>) -> Result<Vec<DeadDelivery>> {
        let dead = match self {
            Records::Local(store) => store.dead_jobs(flow)?,
            Records::Aws { rt, store } => rt.block_on(store.table.dead(tenant))?,
        };
        Ok(dead
            .into_iter()
            .filter(|d| flow.is_none_or(|f| d.row.flow_id == f) && tenant.is_none_or(|t| d.row.tenant == t))
            .collect())
    }

    fn replay(&self, d: &DeadDelivery) -> Result<()> {
        match self {
            Records::Local(store) => Ok(store.replay(d).map(|_| ())?),
            Records::Aws { rt, store } => Ok(rt.block_on(store.replay(d, hookflow_local::now_ms()))?),
        }
    }
}

/// The dead deliveries, newest first (`reverse`: oldest first); with
/// `json`, one JSON array (`[]` when there are none).
pub fn dead_list(source: Source, flow: Option<&str>, tenant: Option<&str>, shown: Shown) -> Result<ExitCode> {
    let mut dead = source.open()?.dead(flow, tenant)?;
    dead.sort_by(|a, b| (a.at, &a.row.delivery_id).cmp(&(b.at, &b.row.delivery_id)));
    if !shown.reverse {
        dead.reverse();
    }
    if shown.json {
        out!("{}", serde_json::to_string(&dead)?);
        return Ok(ExitCode::SUCCESS);
    }
    for d in &dead {
        let r = &d.row;
        out!("{}  {}  {:<16} run {}  {}", rfc3339(d.at), r.delivery_id, r.flow_id, r.run_id, r.reason);
    }
    Ok(ExitCode::SUCCESS)
}

/// Which dead deliveries a replay takes.
pub struct Chosen<'a> {
    pub id: Option<&'a str>,
    pub all: bool,
    pub flow: Option<&'a str>,
    pub tenant: Option<&'a str>,
}

pub fn dead_replay(source: Source, which: Chosen, wait: Option<std::time::Duration>) -> Result<ExitCode> {
    let Chosen { id, all, flow, tenant } = which;
    let aws = matches!(source, Source::Aws { .. });
    if let Source::Aws { deliveries_queue_url: None, .. } = &source {
        bail!("with --table, give --deliveries-queue-url (the stack's output DeliveriesQueueUrl)");
    }
    let records = source.open()?;
    let dead = records.dead(flow, tenant)?;
    let chosen: Vec<_> = match (id, all) {
        (Some(id), false) => dead.into_iter().filter(|d| d.row.delivery_id == id).collect(),
        (None, true) => dead,
        _ => bail!("give a delivery id or --all"),
    };
    match (id, chosen.is_empty()) {
        (Some(id), true) => {
            eprintln!("no dead delivery {id} (`hookflow dead list` shows those there are)");
            return Ok(ExitCode::FAILURE);
        }
        (None, true) => {
            eprintln!("no dead deliveries to replay");
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let bar = indicatif::ProgressBar::new(chosen.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("replaying {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for d in &chosen {
        records.replay(d).with_context(|| format!("replaying {}", d.row.delivery_id))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let who = if aws { "the dispatcher" } else { "a running `hookflow dev`" };
    let Some(wait) = wait else {
        // What to follow: `hookflow logs --run` and `runs show` take the run.
        for d in &chosen {
            out!("{}  run {}", d.row.delivery_id, d.row.run_id);
        }
        eprintln!("{} deliveries queued again (same webhook-id); {who} sends them now", chosen.len());
        return Ok(ExitCode::SUCCESS);
    };
    eprintln!("{} deliveries queued again (same webhook-id); waiting for {who} to send them", chosen.len());
    let ended = records.wait_for_attempts(&chosen, wait)?;
    let mut all_delivered = true;
    for d in &chosen {
        let said = match ended.get(&d.row.delivery_id) {
            Some((outcome, status)) => {
                all_delivered &= outcome == "success";
                let word = if outcome == "success" { "delivered" } else { outcome.as_str() };
                format!("{word}{}", status.map(|s| format!(" {s}")).unwrap_or_default())
            }
            None => {
                all_delivered = false;
                format!("no attempt within {}", hookflow_core::duration::human(wait))
            }
        };
        out!("{}  run {}  {said}", d.row.delivery_id, d.row.run_id);
    }
    Ok(if all_delivered { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

impl Records {
    /// Each delivery's latest attempt after it died that ended it (a
    /// success, or a halt or death), polled until every one has one or
    /// `wait` is over: outcome and status, by delivery id. A retry in
    /// between is waited through. "After it died" is by the dead row's
    /// time, which the store's clock wrote, as the attempt's: this
    /// machine's clock is not compared with theirs.
    fn wait_for_attempts(
        &self,
        chosen: &[DeadDelivery],
        wait: std::time::Duration,
    ) -> Result<std::collections::HashMap<String, (String, Option<u64>)>> {
        let deadline = std::time::Instant::now() + wait;
        let mut ended = std::collections::HashMap::new();
        loop {
            for d in chosen {
                if ended.contains_key(&d.row.delivery_id) {
                    continue;
                }
                let since = d.at + 1;
                let entries = match self {
                    Records::Local(store) => store.query_log(&LogFilter {
                        run_id: Some(d.row.run_id.clone()),
                        since,
                        ..Default::default()
                    })?,
                    Records::Aws { rt, store } => {
                        rt.block_on(store.table.run_entries(&d.row.run_id, hookflow_local::now_ms()))?
                    }
                };
                let last = entries
                    .iter()
                    .filter(|e| e.at >= since && e.kind.as_str() == "attempt")
                    .filter(|e| e.delivery_id.as_deref() == Some(d.row.delivery_id.as_str()))
                    .max_by_key(|e| (e.at, e.seq));
                if let Some(e) = last.filter(|e| e.outcome.as_deref() != Some("retry")) {
                    let status = e.detail.pointer("/response/status").and_then(Value::as_u64);
                    ended.insert(d.row.delivery_id.clone(), (e.outcome.clone().unwrap_or_default(), status));
                }
            }
            if ended.len() == chosen.len() || std::time::Instant::now() >= deadline {
                return Ok(ended);
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}
