//! `/v1/flows`: list, read, test with sample data, put (or check with
//! `dry_run`) and delete a flow.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hookflow_core::subscription::FieldError;
use hookflow_core::{Error as CoreError, load_flow};
use serde_json::{Map, Value, json};

use crate::backend::{Backend, FlowInfo};

use super::Admin;
use super::plumbing::{ApiError, ApiResult, Query, ok, optional_body, problem};

pub(super) fn flow_json(f: &FlowInfo) -> Value {
    let mut v = json!({"tenant": f.tenant, "id": f.id, "file": f.file, "trigger": f.trigger});
    if let Some(flow) = &f.flow {
        v["flow"] = flow.clone();
    }
    if let Some(source) = &f.source {
        v["source"] = json!(source);
    }
    v
}

pub(super) async fn list_flows<B: Backend>(State(a): State<Arc<Admin<B>>>) -> ApiResult {
    let mut all = a.backend.flows().await?;
    all.sort_by(|x, y| (&x.tenant, &x.id).cmp(&(&y.tenant, &y.id)));
    ok(StatusCode::OK, json!({ "flows": all.iter().map(flow_json).collect::<Vec<_>>() }))
}

pub(super) async fn get_flow<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult {
    let flow = a.backend.flow(&tenant, &id).await?.ok_or_else(|| ApiError::not_found("such flow"))?;
    ok(StatusCode::OK, flow_json(&flow))
}

/// A dry run of a flow (`hookflow test` over HTTP): its sample, or the
/// request given, through the run state machine with stand-in answers;
/// nothing is sent or stored, secrets stay `***`.
pub(super) async fn test_flow<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path((tenant, id)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Request {
        #[serde(default)]
        method: Option<String>,
        #[serde(default)]
        path: String,
        #[serde(default)]
        headers: Map<String, Value>,
        #[serde(default)]
        query: Map<String, Value>,
        #[serde(default)]
        body: Value,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StandIn {
        #[serde(default = "ok_status")]
        status: u16,
        #[serde(default)]
        headers: Map<String, Value>,
        #[serde(default)]
        body: Value,
    }
    fn ok_status() -> u16 {
        200
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Test {
        #[serde(default)]
        request: Option<Request>,
        #[serde(default)]
        responses: Map<String, Value>,
    }
    let want: Test = optional_body(&bytes)?;
    let info = a.backend.flow(&tenant, &id).await?.ok_or_else(|| ApiError::not_found("such flow"))?;
    let text = info.source.unwrap_or_default();
    let flow = load_flow(std::path::Path::new(&info.file), &text).map_err(|e| match e {
        CoreError::Invalid(d) => {
            ApiError::invalid(d.into_iter().map(|d| FieldError::new(d.field.clone(), d.to_string())).collect())
        }
        other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", other.to_string()),
    })?;
    // The stored text is the flow's (a file edited to another id is not).
    if flow.flow.tenant != tenant || flow.flow.id != id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("the flow's source now says `{}/{}`: reload the flows first", flow.flow.tenant, flow.flow.id),
        ));
    }
    let mut stand_ins = std::collections::HashMap::new();
    for (step, v) in want.responses {
        if flow.flow.step_index(&step).is_none() {
            let field = format!("responses.{step}");
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                &field,
                format!("the flow has no step `{step}`"),
            ));
        }
        let s: StandIn = serde_json::from_value(v).map_err(|e| {
            ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "invalid", &format!("responses.{step}"), e.to_string())
        })?;
        stand_ins.insert(step, hookflow_core::dry::response_of(s.status, &s.headers, s.body));
    }
    let inbound = match want.request {
        Some(r) => {
            let mut req = hookflow_core::dry::request_of(r.method, &r.headers, r.query, r.body);
            req.path = r.path;
            req
        }
        None => hookflow_core::dry::sample_request(&flow).ok_or_else(|| {
            ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "request",
                "the flow has no sample (`trigger.expect.body.sample`): give a `request`",
            )
        })?,
    };
    let done = hookflow_core::dry::dry_run(&flow, inbound, &stand_ins)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()))?;
    ok(StatusCode::OK, json!({"lines": done.lines, "failed": done.failed}))
}

pub(super) fn check_slugs(tenant: &str, id: &str) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    for (field, v) in [("tenant", tenant), ("id", id)] {
        if !hookflow_core::validate::is_slug(v) {
            problems.push(FieldError::new(
                field,
                format!("`{v}` is not a valid {field}: use lower-case letters, digits, `-` and `_` (at most 64)"),
            ));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(ApiError::invalid(problems)) }
}

pub(super) async fn put_flow<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path((tenant, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    text: Bytes,
) -> ApiResult {
    let dry_run = Query::of(q).flag("dry_run")?;
    check_slugs(&tenant, &id)?;
    let text = std::str::from_utf8(&text)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", "the flow document is not UTF-8"))?;
    let name = format!("{tenant}.{id}.yaml");
    let compiled = match load_flow(name.as_ref(), text) {
        Ok(c) => c,
        Err(CoreError::Invalid(diags)) => {
            return Err(ApiError::invalid(
                diags
                    .iter()
                    .map(|d| {
                        FieldError::new(
                            d.field.clone(),
                            format!("line {}:{}: {}", d.position.line, d.position.col, d.message),
                        )
                        .at(d.position.line, d.position.col)
                    })
                    .collect(),
            ));
        }
        Err(e) => return Err(ApiError::invalid(vec![FieldError::new("", e.to_string())])),
    };
    let mut problems = Vec::new();
    if compiled.flow.tenant != tenant {
        problems.push(FieldError::new(
            "tenant",
            format!("the document says `{}`, the URL `{tenant}`", compiled.flow.tenant),
        ));
    }
    if compiled.flow.id != id {
        problems.push(FieldError::new("id", format!("the document says `{}`, the URL `{id}`", compiled.flow.id)));
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let warnings: Vec<Value> = compiled
        .warnings
        .iter()
        .map(|d| problem(&FieldError::new(d.field.clone(), d.message.clone()).at(d.position.line, d.position.col)))
        .collect();
    let (info, status) = if dry_run {
        a.backend.check_flow(&compiled).await?;
        (FlowInfo::of(&compiled, Some(text.to_string())), StatusCode::OK)
    } else {
        let (info, created) = a.backend.put_flow(&compiled, text).await?;
        (info, if created { StatusCode::CREATED } else { StatusCode::OK })
    };
    let mut answer = flow_json(&info);
    answer["warnings"] = json!(warnings);
    answer["dry_run"] = json!(dry_run);
    ok(status, answer)
}

pub(super) async fn delete_flow<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult {
    if !a.backend.delete_flow(&tenant, &id).await? {
        return Err(ApiError::not_found("such flow"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
