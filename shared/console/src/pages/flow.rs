//! The flow page: a flow's trigger URL, its source with what validation
//! says of each line (checked or saved through the admin API's `putFlow`),
//! its dry run on sample data, and a real test request to its trigger.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use super::plumbing::{Checked, failed, page, query, render};
use crate::Console;
use crate::api::encode;
use crate::session::Session;
use crate::view::{FlowView, annotated, header_lines};

/// The methods a test request may use.
const METHODS: [&str; 5] = ["POST", "PUT", "PATCH", "GET", "DELETE"];

fn api_path(tenant: &str, id: &str) -> String {
    format!("/v1/flows/{}/{}", encode(tenant), encode(id))
}

fn page_path(tenant: &str, id: &str) -> String {
    format!("/console/flows/{}/{}", encode(tenant), encode(id))
}

/// What a form sent back shows on the page besides the flow itself.
#[derive(Default)]
struct Shown {
    /// The source in the editor (the stored one when `None`).
    source: Option<String>,
    /// Validation's errors of `source` (`error.problems` of `putFlow`).
    errors: Vec<Value>,
    /// Its warnings, when a check gave them already.
    warnings: Option<Vec<Value>>,
    notice: Option<String>,
    error: Option<String>,
    /// A test request sent: what it was, and its answer or why none.
    sent: Option<Value>,
}

async fn show(c: &Console, s: &Session, tenant: &str, id: &str, mut shown: Shown) -> Response {
    let path = api_path(tenant, id);
    let info = match c.api.get(&path).await {
        Ok(v) => v,
        Err(f) => return failed(c, s, f),
    };
    let source = shown.source.take().unwrap_or_else(|| info["source"].as_str().unwrap_or_default().to_string());
    // What validation says of the source shown: a dry run of it.
    let warnings = match shown.warnings.take() {
        Some(w) => w,
        None => match c.api.put_text(&format!("{path}?dry_run=true"), &source).await {
            Ok(v) => v["warnings"].as_array().cloned().unwrap_or_default(),
            Err(f) => {
                shown.errors = problems_of(&f);
                Vec::new()
            }
        },
    };
    let (lines, loose) = annotated(&source, &shown.errors, &warnings);
    let row = FlowView::of(&info, c.triggers_base.as_deref(), &BTreeMap::new());
    let sample =
        info.pointer("/flow/trigger/expect/body/sample").map(|v| serde_json::to_string_pretty(v).unwrap_or_default());
    let methods: Vec<&str> = row.methods.split(", ").filter(|m| METHODS.contains(m)).collect();
    let sent = shown.sent.unwrap_or_else(|| {
        // The credential the trigger checks, named, its value left to fill.
        let headers = match &row.credential.header {
            Some(line) => format!("Content-Type: application/json\n{line}"),
            None => "Content-Type: application/json".to_string(),
        };
        json!({"method": methods.first().copied().unwrap_or("POST"),
               "headers": headers, "body": sample.clone().unwrap_or_default()})
    });
    let ctx = json!({
        "f": row, "source": source, "lines": lines, "loose": loose,
        "errors": !shown.errors.is_empty(), "warned": !warnings.is_empty(),
        "methods": methods, "sample": sample, "sent": sent,
        "log": format!("/console/log?flow_id={}&tenant={}", encode(id), encode(tenant)),
        "notice": shown.notice, "error": shown.error,
    });
    render(c, "flow.html", page(Some(s), "flows", ctx))
}

/// A failure's problems, or its message as one problem of no line.
fn problems_of(f: &crate::api::Failure) -> Vec<Value> {
    if f.problems.is_empty() { vec![json!({"field": "", "message": f.message})] } else { f.problems.clone() }
}

/// `GET /console/flows/{tenant}/{id}`.
pub(super) async fn show_flow(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    Path((tenant, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    // Only what this page's own save says (a link cannot make up text).
    let notice = (query(q).get("saved") == "1").then(|| "Saved: the new version takes the next request.".to_string());
    show(&c, &s, &tenant, &id, Shown { notice, ..Shown::default() }).await
}

/// Checks the edited source (a `putFlow` dry run: nothing stored) or saves
/// it (`putFlow`); either way a refusal shows each problem at its line.
pub(super) async fn edit_source(
    State(c): State<Arc<Console>>,
    Path((tenant, id)): Path<(String, String)>,
    Checked { session: s, form }: Checked,
) -> Response {
    // A textarea sends CRLF line ends.
    let source = form.get("source").replace("\r\n", "\n");
    let save = form.get("action") == "save";
    let path = api_path(&tenant, &id);
    let target = if save { path } else { format!("{path}?dry_run=true") };
    match c.api.put_text(&target, &source).await {
        Ok(_) if save => Redirect::to(&format!("{}?saved=1", page_path(&tenant, &id))).into_response(),
        Ok(v) => {
            let warnings = v["warnings"].as_array().cloned().unwrap_or_default();
            let notice = if warnings.is_empty() {
                "Valid. Nothing was saved."
            } else {
                "Valid, with warnings (at their lines). Nothing was saved."
            };
            let shown = Shown {
                source: Some(source),
                warnings: Some(warnings),
                notice: Some(notice.into()),
                ..Default::default()
            };
            show(&c, &s, &tenant, &id, shown).await
        }
        Err(f) => {
            let what = if save { "Not saved" } else { "Invalid" };
            let shown = Shown {
                error: Some(format!("{what}: {} problem(s), shown at their lines.", problems_of(&f).len())),
                errors: problems_of(&f),
                source: Some(source),
                warnings: Some(Vec::new()),
                ..Default::default()
            };
            show(&c, &s, &tenant, &id, shown).await
        }
    }
}

/// A dry run of a flow on its sample (the admin API's `testFlow`):
/// every decision shown, nothing sent.
pub(super) async fn test_flow(
    State(c): State<Arc<Console>>,
    Path((tenant, id)): Path<(String, String)>,
    Checked { session: s, .. }: Checked,
) -> Response {
    match c.api.post(&format!("{}/test", api_path(&tenant, &id)), &json!({})).await {
        Ok(v) => {
            let lines: Vec<String> = v
                .get("lines")
                .and_then(Value::as_array)
                .map(|l| l.iter().map(|x| serde_json::to_string_pretty(x).unwrap_or_default()).collect())
                .unwrap_or_default();
            let failed = v.get("failed").and_then(Value::as_bool).unwrap_or(false);
            let back = page_path(&tenant, &id);
            render(
                &c,
                "test.html",
                page(Some(&s), "flows", json!({"id": id, "lines": lines, "failed": failed, "back": back})),
            )
        }
        Err(f) => failed(&c, &s, f),
    }
}

/// **Send a test request**: a real request to the flow's trigger URL, with
/// the method, headers and body of the form; the answer is shown, and the
/// request is in the log like any other.
pub(super) async fn send_request(
    State(c): State<Arc<Console>>,
    Path((tenant, id)): Path<(String, String)>,
    Checked { session: s, form }: Checked,
) -> Response {
    let (method, headers_text, body) =
        (form.get("method"), form.get("headers"), form.get("body").replace("\r\n", "\n"));
    let mut sent = json!({"method": method, "headers": headers_text, "body": body});
    let info = match c.api.get(&api_path(&tenant, &id)).await {
        Ok(v) => v,
        Err(f) => return failed(&c, &s, f),
    };
    let row = FlowView::of(&info, c.triggers_base.as_deref(), &BTreeMap::new());
    let outcome = match (&row.url, c.triggers_base.is_some()) {
        (None, _) => Err("this flow has no trigger URL (an event trigger): publish an event instead".to_string()),
        (Some(_), false) => Err("this console does not know where the trigger endpoint is: start it with \
                                 `--api-url` (the stack's API URL) to send test requests"
            .to_string()),
        (Some(_), true) if !METHODS.contains(&method) => Err(format!("method `{method}`: choose one of the list")),
        (Some(url), true) => match header_lines(headers_text) {
            Err(e) => Err(e),
            Ok(headers) => c.probe.send(method, url, &headers, body.into_bytes()).await,
        },
    };
    match outcome {
        Ok(a) => {
            sent["answer"] = json!({
                "status": a.status, "duration_ms": a.duration_ms, "truncated": a.truncated, "body": a.body,
                "headers": a.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("\n"),
            });
        }
        Err(e) => sent["failed"] = json!(e),
    }
    show(&c, &s, &tenant, &id, Shown { sent: Some(sent), ..Default::default() }).await
}
