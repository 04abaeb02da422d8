//! The OpenAPI 3.1 document of the admin API ([`crate::routes`]).
//!
//! Request bodies are the core's types through their JSON Schemas
//! (schemars, draft 2020-12, which OpenAPI 3.1 uses as is), so a field added
//! to `NewSubscription` shows up here with no second edit; responses are
//! described next to the routes. `docs/openapi.json` is this function's
//! output, kept in sync by a test; `scripts/test` fuzzes `hookflow dev`
//! against it with schemathesis.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// The document, pretty-printed with a final newline.
pub fn document() -> String {
    let mut text = serde_json::to_string_pretty(&spec()).expect("the document serialises");
    text.push('\n');
    text
}

/// Every operation of the document: path, method (lower case), and
/// `operationId`. The router is built from this list.
pub(crate) fn operations() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (path, item) in paths() {
        for (method, op) in item.as_object().into_iter().flatten() {
            out.push((path.clone(), method.clone(), op["operationId"].as_str().unwrap_or_default().to_string()));
        }
    }
    out
}

fn schemas() -> Map<String, Value> {
    let mut generator =
        SchemaSettings::draft2020_12().with(|s| s.definitions_path = "/components/schemas".into()).into_generator();
    // Each lands in the definitions under its type name.
    generator.subschema_for::<hookflow_core::subscription::NewSubscription>();
    generator.subschema_for::<hookflow_core::subscription::SubscriptionUpdate>();
    generator.subschema_for::<hookflow_core::subscription::Transform>();
    generator.subschema_for::<hookflow_core::subscription::NewEvent>();
    generator.subschema_for::<hookflow_core::Flow>();
    let mut all: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    let nullable = |t: &str| json!({"type": [t, "null"]});
    all.insert(
        "Error".into(),
        json!({
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["code", "message", "field"],
                "properties": {
                    "code": {"type": "string", "description": "Stable, machine-readable: `invalid`, `not_found`, `unauthorized`, `conflict`, `bad_json`, `bad_parameter`, `unavailable`…"},
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"], "description": "The field or parameter at fault (`event_types[1]`, `steps[0].url`)."},
                    "problems": {"type": "array", "items": schema_ref("Problem")}
                }}}
        }),
    );
    all.insert(
        "Problem".into(),
        json!({"type": "object", "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"},
                           "line": {"type": "integer", "minimum": 1, "description": "The line of the document, for a flow."},
                           "col": {"type": "integer", "minimum": 1}}}),
    );
    all.insert(
        "Subscription".into(),
        json!({
            "type": "object",
            "required": ["id", "tenant", "url", "event_types", "status", "signing", "ordering", "created_at", "updated_at"],
            "properties": {
                "id": {"type": "string"}, "tenant": {"type": "string"}, "url": {"type": "string"},
                "event_types": {"type": "array", "items": {"type": "string"}},
                "description": {"type": "string"}, "metadata": {"type": "object"},
                "status": {"enum": ["pending", "active", "failed", "disabled"]},
                "signing": {"enum": ["hmac_sha256", "ed25519"]},
                "ordering": {"enum": ["none", "per_key"]},
                "key": {"type": "string"},
                "filter": {"type": "object", "description": "Which of the selected events it gets (see `NewSubscription.filter`)."},
                "headers": {"type": "object", "description": "Headers added to each of its requests: text, or `{\"secret\", \"prefix\"}` naming a secret (never its value)."},
                "transform": schema_ref("Transform"),
                "rate_limit": schema_ref("RateLimit"),
                "max_in_flight": {"type": "integer", "minimum": 1, "maximum": 1000},
                "backlog": {"type": "object", "required": ["waiting", "in_flight"],
                    "description": "Only in the answer to read one with limits: what waits on them now.",
                    "properties": {"waiting": {"type": "integer", "minimum": 0, "description": "About how many deliveries wait for a slot under its pace."},
                        "in_flight": {"type": "integer", "minimum": 0}}},
                "created_at": {"type": "integer", "description": "ms since the Unix epoch"},
                "updated_at": {"type": "integer"},
                "failing_since": {"type": "integer"}, "disabled_at": {"type": "integer"},
                "disabled_reason": {"type": "string"},
                "keys_version": {"type": "integer", "description": "When its signing keys last changed (ms)."},
                "replay": {"type": "object", "required": ["next", "until"],
                    "description": "An unfinished enable-with-replay: the matching events published in [next, until) (ms) are still to be sent. Enable again with `replay: true` to go on.",
                    "properties": {"next": {"type": "integer"}, "from": {"type": "integer"}, "until": {"type": "integer"},
                        "last_pass": {"type": "boolean", "description": "Reading the window's last seconds again, for publishes that were in flight at the enable."}}},
                "secret": {"type": "string", "description": "`whsec_…`: only in the answer to create (HMAC)."},
                "public_key": {"type": "string", "description": "`whpk_…`: only in the answer to create (ed25519)."}
            }
        }),
    );
    let count = json!({"type": "integer", "minimum": 0});
    all.insert(
        "RequestRow".into(),
        json!({
            "type": "object", "required": ["key", "kind", "at", "outcome", "deliveries"],
            "properties": {
                "key": {"type": "string", "description": "What its entries share: the run's id, or the event's (a published event, a request that started no run)."},
                "kind": {"enum": ["request", "event"]},
                "at": {"type": "integer", "description": "When it arrived (ms since the epoch)."},
                "seq": {"type": "integer"},
                "tenant": nullable("string"), "flow_id": nullable("string"), "run_id": nullable("string"),
                "event_id": nullable("string"), "method": nullable("string"), "path": nullable("string"),
                "event_type": nullable("string"),
                "outcome": {"type": "string", "description": "`succeeded`, `failed`, `waiting`, `running` (its run); `rejected_401` and the like, `duplicate`; `published` (an event)."},
                "status": {"type": ["integer", "null"], "description": "The status code its caller was answered with, where known."},
                "duration_ms": {"type": ["integer", "null"], "description": "From its arrival to its run's end."},
                "step": {"type": ["string", "null"], "description": "The step its run failed at or waits on."},
                "reason": nullable("string"),
                "deliveries": {"type": "object", "required": ["delivered", "pending", "failed", "attempts"],
                    "properties": {"delivered": count, "pending": count, "failed": count, "attempts": count,
                        "filtered": {"type": "integer", "minimum": 0, "description": "A published event: the subscriptions whose filter left it out."}}}
            }
        }),
    );
    all.insert(
        "LogEntry".into(),
        json!({
            "type": "object", "required": ["at", "kind", "detail"],
            "properties": {
                "at": {"type": "integer"}, "kind": {"type": "string"},
                "tenant": nullable("string"), "flow_id": nullable("string"), "run_id": nullable("string"),
                "event_id": nullable("string"), "delivery_id": nullable("string"), "outcome": nullable("string"),
                "detail": {},
                "seq": {"type": "integer", "description": "Its place in the store's commit order, where the store numbers entries (`hookflow dev`): `after_seq` reads after it."}
            }
        }),
    );
    all.insert(
        "FlowSummary".into(),
        json!({
            "type": "object", "required": ["tenant", "id", "file", "trigger"],
            "properties": {"tenant": {"type": "string"}, "id": {"type": "string"}, "file": {"type": "string"},
                           "trigger": {"type": "object"}, "flow": {"type": "object"}, "source": {"type": "string"},
                           "warnings": {"type": "array", "description": "What validation warns of (putFlow): `field`, `message`, `line`, `col`.",
                                        "items": schema_ref("Problem")},
                           "dry_run": {"type": "boolean", "description": "putFlow: whether it was only validated."}}
        }),
    );
    all.insert(
        "Event".into(),
        json!({
            "type": "object", "required": ["id", "tenant", "type", "at", "data"],
            "properties": {"id": {"type": "string"}, "tenant": {"type": "string"}, "type": {"type": "string"},
                           "at": {"type": "integer"}, "data": {}}
        }),
    );
    all.insert(
        "DeadDelivery".into(),
        json!({
            "type": "object", "required": ["delivery_id", "tenant", "flow_id", "run_id", "reason", "at"],
            "properties": {"delivery_id": {"type": "string"}, "tenant": {"type": "string"}, "flow_id": {"type": "string"},
                           "run_id": {"type": "string"}, "reason": {"type": "string"}, "at": {"type": "integer"}}
        }),
    );
    all
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// A response with a JSON body.
fn answer(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": content(schema)})
}

/// `response` with OpenAPI links handing its `id` to `operations`' `id`
/// parameter (what stateful fuzzing follows).
fn with_links(mut response: Value, operations: &[&str]) -> Value {
    let links: Map<String, Value> = operations
        .iter()
        .map(|op| (op.to_string(), json!({"operationId": op, "parameters": {"id": "$response.body#/id"}})))
        .collect();
    response["links"] = Value::Object(links);
    response
}

fn error(description: &str) -> Value {
    answer(description, schema_ref("Error"))
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}})
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

/// One operation; every one answers 401 without the token and may answer
/// 503 when the store fails; one that writes what it is sent, 413 when that
/// is more than the store keeps.
fn op(id: &str, summary: &str, params: Vec<Value>, body: Option<Value>, responses: Vec<(&str, Value)>) -> Value {
    let mut r = Map::new();
    for (code, v) in responses {
        r.insert(code.into(), v);
    }
    r.insert("401".into(), error("No or wrong bearer token."));
    r.insert(
        "429".into(),
        error("Too many wrong tokens from this address in the last minute (`hookflow dev`): wait for `Retry-After`."),
    );
    r.insert("501".into(), error("This deployment cannot do this (yet)."));
    r.insert("503".into(), error("The store failed; try again."));
    if body.is_some() {
        r.insert(
            "413".into(),
            error("Larger than the store keeps (a DynamoDB item holds 400 KB): the same request fails again."),
        );
    }
    let mut o = json!({"operationId": id, "summary": summary, "responses": r});
    if !params.is_empty() {
        o["parameters"] = json!(params);
    }
    if let Some(b) = body {
        o["requestBody"] = b;
    }
    o
}

fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": content(schema)})
}

fn spec() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Hookflow admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Flows, subscriptions, events, the request log, runs and dead deliveries, under `/v1`. Served by `hookflow dev` (bearer token) and, on AWS, by the admin function behind API Gateway's IAM authorisation.",
        },
        "security": [{"bearer": []}],
        "paths": paths(),
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}

/// The document's paths: every operation, with its parameters, body and
/// answers (schemas by reference). The router is built from these alone,
/// so a server does not generate the schemas at start.
fn paths() -> Map<String, Value> {
    let sub_id = || path_param("id", "The subscription id (`sub_…`).");
    let sub = || schema_ref("Subscription");
    let not_found = || error("No such resource.");
    let bad = || error("A field is invalid; `field` names it.");
    let bad_json = || error("The body is not JSON, or a query parameter is malformed.");
    let conflict = || error("The resource is not in a state that allows this.");
    let flow_params = || vec![path_param("tenant", "The flow's tenant."), path_param("id", "The flow's id.")];
    let mut paths = Map::new();
    paths.insert(
        "/v1/flows".into(),
        json!({"get": op("listFlows", "The loaded flows.", vec![], None,
            vec![("200", answer("The flows.", object(&["flows"], json!({"flows": {"type": "array", "items": schema_ref("FlowSummary")}}))))])}),
    );
    paths.insert(
        "/v1/flows/{tenant}/{id}".into(),
        json!({
            "get": op("getFlow", "A flow: its document, parsed and as written.", flow_params(), None,
                vec![("200", answer("The flow.", schema_ref("FlowSummary"))), ("404", not_found())]),
            "put": op("putFlow", "Creates or replaces a flow (YAML or JSON). Validation errors are 422 with field paths and lines; warnings are in the answer. With `dry_run=true` it is only validated: nothing is stored.",
                { let mut p = flow_params(); p.push(query_param("dry_run", "Only validate: store nothing (200 when valid).", json!({"type": "boolean", "default": false}))); p },
                Some(json!({"required": true, "content": {
                    "application/json": {"schema": schema_ref("Flow")},
                    "application/yaml": {"schema": {"type": "string"}}}})),
                vec![("200", answer("Replaced.", schema_ref("FlowSummary"))), ("201", answer("Created.", schema_ref("FlowSummary"))),
                     ("400", bad_json()), ("409", conflict()), ("422", bad())]),
            "delete": op("deleteFlow", "Deletes a flow (its file).", flow_params(), None,
                vec![("204", json!({"description": "Deleted."})), ("404", not_found()), ("409", conflict())]),
        }),
    );
    paths.insert(
        "/v1/flows/{tenant}/{id}/test".into(),
        json!({"post": op("testFlow",
            "A dry run (`hookflow test`): the flow's sample, or the request given, through its steps with stand-in answers (200 `{}` unless `responses` names one). Nothing is sent or stored; secrets show as `***`.",
            flow_params(),
            Some(json_body(json!({"type": "object", "additionalProperties": false, "properties": {
                "request": {"type": "object", "additionalProperties": false, "properties": {
                    "method": {"type": "string"}, "path": {"type": "string"}, "headers": {"type": "object"}, "query": {"type": "object"}, "body": {}}},
                "responses": {"type": "object", "description": "A stand-in answer by step id.", "additionalProperties": {
                    "type": "object", "additionalProperties": false, "properties": {
                        "status": {"type": "integer", "minimum": 100, "maximum": 599}, "headers": {"type": "object"}, "body": {}}}}}}))),
            vec![("200", answer("Each decision, in order, and whether the run failed.",
                    object(&["lines", "failed"], json!({"lines": {"type": "array", "items": {"type": "object"}}, "failed": {"type": "boolean"}})))),
                 ("400", bad_json()), ("404", not_found()), ("409", conflict()), ("422", bad())])}),
    );
    paths.insert(
        "/v1/subscriptions".into(),
        json!({
            "get": op("listSubscriptions", "Subscriptions, oldest first (by id); a page at a time with `limit` or `after`, else all.",
                vec![query_param("tenant", "Only this tenant's.", json!({"type": "string"})),
                     query_param("limit", "At most this many (default 100 when paging).", json!({"type": "integer", "minimum": 1, "maximum": 1000})),
                     query_param("after", "Only those after this id (the `next` of the page before).", json!({"type": "string"}))], None,
                vec![("200", answer("The subscriptions.", object(&["subscriptions"], json!({"subscriptions": {"type": "array", "items": sub()},
                        "next": {"type": ["string", "null"], "description": "When paging: the `after` of the next page (none: this was the last)."}})))),
                     ("400", bad_json())]),
            "post": op("createSubscription",
                "Subscribes an endpoint. It is `pending` until it echoes the verification token Hookflow POSTs to it; the answer holds the signing secret (or public key) once.",
                vec![], Some(json_body(schema_ref("NewSubscription"))),
                vec![("201", with_links(answer("Created (pending).", sub()), &[
                        "getSubscription", "deleteSubscription", "verifySubscription", "rotateSecret",
                        "getPublicKey", "enableSubscription", "disableSubscription"])),
                     ("400", bad_json()), ("422", bad())]),
        }),
    );
    paths.insert(
        "/v1/subscriptions/{id}".into(),
        json!({
            "get": op("getSubscription", "A subscription.", vec![sub_id()], None,
                vec![("200", answer("The subscription.", sub())), ("404", not_found())]),
            "patch": op("updateSubscription",
                "Changes a subscription's event types, description, metadata, filter, headers, transform, `rate_limit` or `max_in_flight` (`null` removes one; deliveries waiting under an old limit take the new one); a transform must render the newest event of the last day the subscription takes; every problem is a 422 naming its field (a filter's path and operator). Events already queued go out as they were decided; the next publish, replay and recovery use the change.",
                vec![sub_id()], Some(json_body(schema_ref("SubscriptionUpdate"))),
                vec![("200", answer("Changed.", sub())), ("400", bad_json()), ("404", not_found()), ("409", conflict()), ("422", bad())]),
            "delete": op("deleteSubscription", "Deletes a subscription and its keys; its queued deliveries are dropped.", vec![sub_id()], None,
                vec![("204", json!({"description": "Deleted."})), ("404", not_found())]),
        }),
    );
    paths.insert(
        "/v1/subscriptions/{id}/preview".into(),
        json!({"post": op("previewTransform",
            "A dry run of a transform — the one given, or the subscription's — on an event: the one given, else the newest of the last day the subscription takes, else a sample. Answers the request before and after (secrets as `***`), whether it is dropped, or the error that would make the delivery dead. Nothing is sent or saved.",
            vec![sub_id()],
            Some(json_body(json!({"type": "object", "additionalProperties": false, "properties": {
                "transform": schema_ref("Transform"), "event": schema_ref("NewEvent")}}))),
            vec![("200", answer("The preview.", object(&["event", "source", "before", "after", "dropped", "error"], json!({
                    "event": {"type": "object", "description": "The event as the transform sees it."},
                    "source": {"enum": ["given", "recent", "sample"]},
                    "before": {"type": ["object", "null"]}, "after": {"type": ["object", "null"]},
                    "dropped": {"type": "boolean"}, "error": {"type": ["string", "null"]}})))),
                 ("400", bad_json()), ("404", not_found()), ("422", bad())])}),
    );
    paths.insert(
        "/v1/subscriptions/{id}/verify".into(),
        json!({"post": op("verifySubscription", "Sends the verification request again (new token); the subscription is pending until it is echoed.",
            vec![sub_id()], None,
            vec![("202", answer("Pending, verification sent.", sub())), ("404", not_found()), ("409", conflict())])}),
    );
    paths.insert(
        "/v1/subscriptions/{id}/rotate-secret".into(),
        json!({"post": op("rotateSecret", "A new signing key; the previous one keeps signing (both signatures are sent) until `previous_expires_at`.",
            vec![sub_id()], None,
            vec![("200", answer("The new credential.", object(&["id", "previous_expires_at"], json!({
                "id": {"type": "string"}, "previous_expires_at": {"type": "integer"},
                "secret": {"type": "string"}, "public_key": {"type": "string"}})))),
                 ("404", not_found())])}),
    );
    paths.insert(
        "/v1/subscriptions/{id}/public-key".into(),
        json!({"get": op("getPublicKey", "The ed25519 public key (`whpk_…`) endpoints verify `v1a` signatures with; during a rotation, every key still signing.",
            vec![sub_id()], None,
            vec![("200", answer("The keys.", object(&["id", "public_keys"], json!({
                "id": {"type": "string"}, "public_key": {"type": ["string", "null"]},
                "public_keys": {"type": "array", "items": {"type": "string"}}})))),
                 ("404", error("No such subscription, or it signs with HMAC."))])}),
    );
    paths.insert(
        "/v1/subscriptions/{id}/enable".into(),
        json!({"post": op("enableSubscription", "Enables a disabled subscription; says how many matching events it missed since it was disabled and, with `replay: true`, delivers them, a page at a time. A replay that stops before its end (`replay_pending`: a time budget of about 10 s, or a failure answered 5xx) is resumed by the same request again, on the now active subscription: no page is skipped, a page may be sent twice under the same `webhook-id`s. A replay covers a few seconds past the enable and reads them again before it ends (publishes in flight), so it answers after about 4 s at least. With replay, `missed` counts the events this request queued; without, the matching events published since (up to 10,000). With `since` (and `replay: true`) it recovers: every selected event published since that time is sent again, to a disabled subscription (enabled) or an active one.",
            vec![sub_id()],
            Some(json!({"required": false, "content": content(json!({"type": "object", "additionalProperties": false,
                "properties": {"replay": {"type": "boolean", "default": false},
                    "since": {"type": "integer", "minimum": 0, "description": "With `replay: true`: replay every selected event published since this time (ms) instead of since the disabling — a recovery, also of an active subscription whose endpoint lost what it was sent."}}}))})),
            vec![("200", answer("Enabled.", object(&["subscription", "missed", "missed_since", "replayed", "replay_pending"], json!({
                "subscription": sub(), "missed": {"type": "integer"}, "missed_since": {"type": "integer"}, "replayed": {"type": "integer"},
                "replay_pending": {"type": "boolean", "description": "Missed events are still to be sent: send the same request again."}})))),
                 ("400", bad_json()), ("404", not_found()), ("409", conflict()), ("422", bad())])}),
    );
    paths.insert(
        "/v1/subscriptions/{id}/disable".into(),
        json!({"post": op("disableSubscription", "Disables a subscription (no event is sent to it until enabled).",
            vec![sub_id()], None,
            vec![("200", answer("Disabled.", sub())), ("404", not_found())])}),
    );
    let published = object(
        &["id", "duplicate", "deliveries", "filtered", "runs"],
        json!({
        "id": {"type": "string"}, "duplicate": {"type": "boolean"}, "deliveries": {"type": "integer"},
        "filtered": {"type": "integer", "description": "Subscriptions that select its type but whose filter left it out."},
        "runs": {"type": "array", "items": {"type": "string"}}}),
    );
    paths.insert(
        "/v1/events".into(),
        json!({
            "get": op("listEvents", "Published events (kept for the request log's retention), oldest first.",
                vec![query_param("tenant", "Only this tenant's.", json!({"type": "string"})),
                     query_param("since", "Published at or after (ms since the epoch).", json!({"type": "integer", "minimum": 0})),
                     query_param("limit", "At most this many (default 100).", json!({"type": "integer", "minimum": 1, "maximum": 1000}))],
                None,
                vec![("200", answer("The events.", object(&["events"], json!({"events": {"type": "array", "items": schema_ref("Event")}})))),
                     ("400", bad_json())]),
            "post": op("publishEvent",
                "Publishes an event: one signed delivery per matching active subscription, one run per flow with an event trigger. A repeated `id` within 24 h is accepted once.",
                vec![], Some(json_body(schema_ref("NewEvent"))),
                vec![("202", answer("Published.", published.clone())), ("200", answer("A repeat of an id published already: nothing sent.", published)),
                     ("400", bad_json()), ("422", bad())]),
        }),
    );
    paths.insert(
        "/v1/logs".into(),
        json!({"get": op("getLogs", "The request log, oldest first (the newest `limit`).",
            vec![query_param("tenant", "Only this tenant's.", json!({"type": "string"})),
                 query_param("flow_id", "Only this flow's.", json!({"type": "string"})),
                 query_param("run_id", "Only this run's.", json!({"type": "string"})),
                 query_param("event_id", "Only this event's.", json!({"type": "string"})),
                 query_param("subscription_id", "Only the attempts of this subscription's deliveries (and of its verification).", json!({"type": "string"})),
                 query_param("since", "At or after (ms since the epoch).", json!({"type": "integer", "minimum": 0})),
                 query_param("until", "Before (ms since the epoch).", json!({"type": "integer", "minimum": 0})),
                 query_param("after_seq", "Only entries stored after the one with this `seq` (where entries carry one: `hookflow dev`), the newest `limit` of them; the answer then counts every match in `count` (a live tail: what it does not show, it counts).", json!({"type": "integer", "minimum": 0})),
                 query_param("before_seq", "Only entries stored before the one with this `seq` (the next page of a listing, where entries carry one).", json!({"type": "integer", "minimum": 1})),
                 query_param("failed", "Only failures (rejections, failed attempts, dead deliveries, failed runs).", json!({"type": "boolean"})),
                 query_param("limit", "At most this many (default 500).", json!({"type": "integer", "minimum": 1, "maximum": 10000}))],
            None,
            vec![("200", answer("The entries.", object(&["entries"], json!({"entries": {"type": "array", "items": schema_ref("LogEntry")},
                    "count": {"type": "integer", "description": "With `after_seq`, where the store counts: every entry matching, past `limit` too."}})))),
                 ("400", bad_json())])}),
    );
    paths.insert(
        "/v1/requests".into(),
        json!({"get": op("listRequests",
            "The request log one row a trigger request or published event, newest first: its outcome (the run's, or the rejection), the status code it was answered with, how long its run took, and the deliveries it caused. A row's entries are `GET /v1/logs?run_id={key}`.",
            vec![query_param("tenant", "Only this tenant's.", json!({"type": "string"})),
                 query_param("flow_id", "Only this flow's.", json!({"type": "string"})),
                 query_param("run_id", "Only the request that started this run.", json!({"type": "string"})),
                 query_param("since", "Arrived at or after (ms since the epoch).", json!({"type": "integer", "minimum": 0})),
                 query_param("until", "Arrived before (ms since the epoch).", json!({"type": "integer", "minimum": 0})),
                 query_param("before_seq", "Stored before the request whose entry has this `seq` (the next page, where entries carry one).", json!({"type": "integer", "minimum": 1})),
                 query_param("failed", "Only requests that went wrong: rejected, their run failed, or a delivery failed or is being retried (read on for at most five pages of requests).", json!({"type": "boolean"})),
                 query_param("limit", "At most this many (default 50).", json!({"type": "integer", "minimum": 1, "maximum": 500}))],
            None,
            vec![("200", answer("The requests.", object(&["requests", "next"], json!({"requests": {"type": "array", "items": schema_ref("RequestRow")},
                    "next": {"description": "The query of the next (older) page, to add to this one's, or null at the end.",
                        "type": ["object", "null"], "properties": {"until": {"type": "integer"}, "before_seq": {"type": "integer"}}}})))),
                 ("400", bad_json())])}),
    );
    let counts = json!({"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}});
    let latency = object(
        &["delivered", "p50_ms", "p99_ms"],
        json!({"delivered": {"type": "integer", "minimum": 0},
        "p50_ms": {"type": ["integer", "null"]}, "p99_ms": {"type": ["integer", "null"]}}),
    );
    paths.insert(
        "/v1/stats".into(),
        json!({"get": op("getStats",
            "The request log summed up over `[since, until)`: inbound requests by verdict, delivery attempts by outcome, accept → delivery latency (p50, p99), inbound requests by flow, the endpoints with the most failed attempts (URL host and path), over the window and per bucket. Its size depends on the buckets, never on the traffic.",
            vec![query_param("tenant", "Only this tenant's.", json!({"type": "string"})),
                 query_param("since", "At or after (ms since the epoch; default: a day before `until`).", json!({"type": "integer", "minimum": 0})),
                 query_param("until", "Before (ms since the epoch; default: now).", json!({"type": "integer", "minimum": 1})),
                 query_param("bucket", "Bucket length in ms (default: an hour; at least 1000; at most 1000 buckets).", json!({"type": "integer", "minimum": 1000}))],
            None,
            vec![("200", answer("The summary.", object(&["since", "until", "bucket_ms", "entries", "inbound", "attempts", "latency",
                    "latency_capped", "flows", "failing", "capped", "buckets"], json!({
                "since": {"type": "integer"}, "until": {"type": "integer"}, "bucket_ms": {"type": "integer"},
                "entries": {"type": "integer", "minimum": 0, "description": "Entries summed up."},
                "inbound": counts, "attempts": counts, "latency": latency,
                "latency_capped": {"type": "boolean", "description": "More events were accepted than are timed (200,000): the latency is of the first."},
                "flows": counts,
                "failing": {"type": "array", "description": "`[endpoint, failed attempts]` pairs, most first: an endpoint is its URL's host and path (a subscription's or flow's id when an attempt has no URL).",
                    "items": {"type": "array", "items": {"type": ["string", "integer"]}, "minItems": 2, "maxItems": 2}},
                "capped": {"type": "boolean", "description": "The store read at most 10,000 entries (a deployment's table): the counts are of those."},
                "buckets": {"type": "array", "items": object(&["at", "inbound", "attempts", "latency"], json!({
                    "at": {"type": "integer"}, "inbound": counts, "attempts": counts, "latency": latency}))}})))),
                 ("400", bad_json())])}),
    );
    paths.insert(
        "/v1/runs/{id}".into(),
        json!({"get": op("getRun", "A run's state and its log.", vec![path_param("id", "The run id (`run_…`).")], None,
            vec![("200", answer("The run.", object(&["run", "log"], json!({"run": {"type": "object"}, "log": {"type": "array", "items": schema_ref("LogEntry")}})))),
                 ("404", not_found())])}),
    );
    paths.insert(
        "/v1/runs/{id}/replay".into(),
        json!({"post": op("replayRun",
            "Replays a run: its request as stored (credentials were stripped before it was) accepted again by the flow's current version, as a new run. The same `key` again (a retry after a failure) names the same run: it is not started twice.",
            vec![path_param("id", "The run id (`run_…`).")],
            Some(json!({"required": false, "content": content(json!({"type": "object", "additionalProperties": false,
                "properties": {"key": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "description": "Names the replay (default: the time — then a retry after a 5xx that followed the write starts a second run: send a key to retry safely)."}}}))})),
            vec![("202", answer("Started (or, for a key used already, started before).", object(&["run_id", "event_id", "replay_of", "new"], json!({
                "run_id": {"type": "string"}, "event_id": {"type": "string"}, "replay_of": {"type": "string"},
                "flow_version": {"type": "string"}, "new": {"type": "boolean"}})))),
                 ("400", bad_json()), ("404", not_found()), ("409", conflict()), ("422", bad())])}),
    );
    paths.insert(
        "/v1/dead".into(),
        json!({"get": op("listDead", "Dead deliveries, oldest first, a page at a time.",
            vec![query_param("flow_id", "Only this flow's.", json!({"type": "string"})),
                 query_param("offset", "Skip this many (default 0).", json!({"type": "integer", "minimum": 0})),
                 query_param("after_at", "With `after_id`: only rows after the one of this `at` and `delivery_id` (the last of the page before: rows removed meanwhile do not shift the next page).", json!({"type": "integer", "minimum": 0})),
                 query_param("after_id", "With `after_at`.", json!({"type": "string"})),
                 query_param("limit", "At most this many (default 1,000).", json!({"type": "integer", "minimum": 1, "maximum": 10000}))],
            None,
            vec![("200", answer("The page, and how many match in all.", object(&["dead", "total"], json!({
                "dead": {"type": "array", "items": schema_ref("DeadDelivery")}, "total": {"type": "integer"}})))),
                 ("400", bad_json())])}),
    );
    paths.insert(
        "/v1/dead/{delivery_id}/replay".into(),
        json!({"post": op("replayDead", "Queues a dead delivery again (same `webhook-id`, attempts from zero).",
            vec![path_param("delivery_id", "The dead delivery's id."),
                 query_param("tenant", "Its tenant, when known: found by its key instead of in the list.", json!({"type": "string"}))], None,
            vec![("202", answer("Queued.", object(&["replayed"], json!({"replayed": {"type": "string"}})))), ("404", not_found())])}),
    );
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/openapi.json` is [`document`]'s output (`HOOKFLOW_UPDATE_SCHEMA`
    /// set: written anew), as core's test keeps `docs/flow.schema.json`.
    #[test]
    fn published_document_is_in_sync() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        if std::env::var_os("HOOKFLOW_UPDATE_SCHEMA").is_some() {
            std::fs::write(path, document()).unwrap();
        }
        let stale =
            "docs/openapi.json is stale: run `HOOKFLOW_UPDATE_SCHEMA=1 cargo test -p hookflow-admin` and commit it";
        assert!(std::fs::read_to_string(path).is_ok_and(|have| have == document()), "{stale}");
    }

    #[test]
    fn the_document_and_the_router_name_the_same_operations() {
        use crate::routes::Op;
        let ops = operations();
        let mut ids: Vec<&str> = ops.iter().map(|(_, _, id)| id.as_str()).collect();
        for id in &ids {
            assert!(Op::from_id(id).is_some(), "`{id}` is documented but has no handler");
        }
        ids.sort();
        let mut all: Vec<&str> = Op::ALL.iter().map(|op| op.id()).collect();
        all.sort();
        assert_eq!(ids, all, "every handler is documented, once");
        let mut routes: Vec<(&str, &str)> = ops.iter().map(|(p, m, _)| (p.as_str(), m.as_str())).collect();
        routes.sort();
        routes.dedup();
        assert_eq!(routes.len(), ops.len(), "no path and method twice");
    }

    #[test]
    fn every_reference_resolves() {
        let doc = spec();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
        assert!(!text.contains("#/$defs/"), "references point into components");
    }
}
