//! The ingress: API Gateway (HTTP API, payload v2) in front, the trigger
//! endpoint's decisions ([`hookflow_core::inbound`], the same as
//! `hookflow dev`) inside, DynamoDB and SQS behind.
//!
//! An async flow is answered after its run is stored and its deliveries
//! queued. A sync flow runs inline until its `respond` step: steps that
//! wait for a response are sent from here, within `respond.timeout`, and
//! whatever is left when the answer is ready (or the time is up: 504) goes
//! to the queues.

use std::net::IpAddr;
use std::time::Duration;

use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;
use hookflow_aws::table::Claim;
use hookflow_core::auth::Verifier;
use hookflow_core::commit::{DeliveryJob, JobKind, NewJob, RunJob};
use hookflow_core::duration::rfc3339;
use hookflow_core::engine::{self, Outcome};
use hookflow_core::headers::Headers;
use hookflow_core::inbound::{self as decide, Arrival, DEFAULT_SYNC_TIMEOUT, Rejection};
use hookflow_core::ports::{Clock, FlowStore, SystemClock};
use hookflow_core::run::{InboundRequest, Reply, Run, RunStatus, advance, parse_form};
use hookflow_core::{CompiledFlow, commit::Commit};
use hookflow_io::{Logger, Sender};
use lambda_http::{Body, Request, RequestExt, Response};

/// What the ingress needs, built once per container.
pub struct Ingress {
    pub store: Store,
    pub secrets: Secrets,
    pub sender: Sender,
    pub logger: Logger,
}

fn respond(reply: &Reply) -> Response<Body> {
    let mut builder = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(Body::from(reply.body.clone().unwrap_or_default()))
        .unwrap_or_else(|_| Response::new(Body::from("{\"error\": \"bad response\"}")))
}

/// The source address API Gateway saw.
fn source_ip(req: &Request) -> IpAddr {
    match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) => c.http.source_ip.as_deref(),
        _ => None,
    }
    .and_then(|ip| ip.parse().ok())
    .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

impl Ingress {
    fn lines(&self, lines: Vec<engine::LogLine>) {
        for l in lines {
            self.logger.log(l.level, &l.message, l.fields);
        }
    }

    async fn reject(&self, a: &Arrival, flow: Option<&CompiledFlow>, r: Rejection) -> Response<Body> {
        let (entry, line, reply) = r.record(a, flow);
        self.lines(vec![line]);
        self.logger.raw(&hookflow_aws::metrics::inbound("rejected", a.received));
        // The rejection's log entry is best effort: the answer does not wait on it failing.
        if let Err(e) = self.store.table.write(&Commit { log: vec![entry], ..Default::default() }, a.received).await {
            self.logger.log("error", "request log write failed", serde_json::json!({"error": e.to_string()}));
        }
        respond(&reply)
    }

    /// Handles one trigger request.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let received = SystemClock.now_ms();
        let path = req.uri().path().to_string();
        let rest = path.strip_prefix("/hooks/").unwrap_or("");
        let (tenant, route) = rest.split_once('/').unwrap_or((rest, ""));
        let ip = source_ip(&req);
        let a = Arrival {
            tenant: tenant.to_string(),
            event_id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
            method: req.method().to_string(),
            path: path.clone(),
            source_ip: ip.to_string(),
            received,
        };
        let flow = match FlowStore::by_route(&self.store.table, tenant, route).await {
            Ok(Some(flow)) => flow,
            Ok(None) => return self.reject(&a, None, decide::not_found()).await,
            Err(e) => return self.reject(&a, None, Rejection::new(503, format!("flows unavailable: {e}"))).await,
        };
        let declared = req.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        if let Err(r) = decide::check_route(&flow, req.method().as_str(), ip, declared) {
            return self.reject(&a, Some(&flow), r).await;
        }
        let bytes: Vec<u8> = req.body().as_ref().to_vec();
        let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        if let Err(r) = decide::check_body(&flow, content_type, bytes.len()) {
            return self.reject(&a, Some(&flow), r).await;
        }
        let mut request = InboundRequest {
            method: req.method().to_string(),
            path: path.clone(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect::<Headers>(),
            query: parse_form(req.uri().query().unwrap_or("")),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            source_ip: ip.to_string(),
            received_at: rfc3339(received),
        };
        let verifier = Verifier::for_trigger(&flow.flow.trigger);
        if let Some(name) = &verifier.secret {
            let secret = match self.secrets.get(name).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    let r = Rejection::new(401, format!("the trigger's secret `{name}` is not set"));
                    return self.reject(&a, Some(&flow), r).await;
                }
                Err(e) => return self.reject(&a, Some(&flow), Rejection::new(503, e.to_string())).await,
            };
            if let Err(e) = verifier.verify_bytes(&request, &bytes, &secret, received / 1000) {
                return self.reject(&a, Some(&flow), Rejection::new(401, e.to_string())).await;
            }
        }
        let body_json = request.parsed_body();
        if let Err(r) = decide::check_shape(&flow, &body_json) {
            return self.reject(&a, Some(&flow), r).await;
        }
        if let Some(reply) = decide::slack_challenge(&flow, &body_json) {
            return respond(&reply);
        }
        let mut idem = None;
        if let Some((scope, key, window)) = decide::idempotency_scope(&flow, &request, &body_json) {
            // The claim outlives the longest this function can take.
            let in_progress = Duration::from_secs(60);
            match self.store.table.claim(&scope, received, in_progress).await {
                Ok(Claim::Claimed) => idem = Some((scope, received + window)),
                Ok(Claim::Completed(reply)) => {
                    let (entry, line) = decide::duplicate(&a, &flow, &key);
                    self.lines(vec![line]);
                    self.logger.raw(&hookflow_aws::metrics::inbound("duplicate", received));
                    let _ = self.store.table.write(&Commit { log: vec![entry], ..Default::default() }, received).await;
                    return respond(&reply);
                }
                Ok(Claim::InProgress) => {
                    let r = Rejection::new(409, "a request with this idempotency key is being handled; try again");
                    return self.reject(&a, Some(&flow), r).await;
                }
                Err(e) => return self.reject(&a, Some(&flow), Rejection::new(503, e.to_string())).await,
            }
        }
        verifier.strip_credentials(&mut request);
        let run_id = format!("run_{}", uuid::Uuid::now_v7().simple());
        let accepted = decide::accept(&flow, &request, (&run_id, &a.event_id), received, idem.clone());
        let (mut run, mut out, mut reply) = (accepted.run, accepted.outcome, accepted.reply);
        let mut timed_out = false;
        if accepted.waits {
            let timeout = flow.flow.trigger.respond.timeout.map_or(DEFAULT_SYNC_TIMEOUT, |t| t.get());
            let deadline = tokio::time::Instant::now() + timeout;
            reply = self.run_inline(&flow, &mut run, &mut out, deadline).await;
            timed_out = reply.is_none() && !run.status.is_finished();
            if let (Some((scope, expires)), Some(r)) = (&idem, &reply) {
                out.commit.idempotency = Some((scope.clone(), serde_json::to_string(r).unwrap_or_default(), *expires));
            }
        }
        let lines = std::mem::take(&mut out.lines);
        if let Err(e) = self.store.apply(out.commit, SystemClock.now_ms()).await {
            if let Some((scope, _)) = &idem {
                let _ = self.store.table.release(scope).await;
            }
            let r = match e {
                hookflow_aws::Error::TooLarge(why) => Rejection::new(413, format!("the run cannot be queued: {why}")),
                e => Rejection::new(503, format!("store unavailable: {e}")),
            };
            return self.reject(&a, Some(&flow), r).await;
        }
        self.lines(lines);
        self.logger.raw(&hookflow_aws::metrics::inbound("accepted", received));
        match reply {
            Some(r) => respond(&r),
            None if timed_out => respond(&decide::answer_timed_out(&a.event_id)),
            None if flow.flow.trigger.respond.mode == hookflow_core::flow::RespondMode::Sync => {
                respond(&decide::failed_before_answering(&a.event_id))
            }
            None => respond(&decide::json_reply(
                500,
                serde_json::json!({"error": "the trigger's answer failed", "event_id": a.event_id}),
            )),
        }
    }

    /// Sends the steps a sync run waits on, one attempt each, feeding each
    /// result back to the run, until it answers, ends, needs a retry, or
    /// the deadline passes. Whatever is left stays in `out` for the queues.
    async fn run_inline(
        &self,
        flow: &CompiledFlow,
        run: &mut Run,
        out: &mut Outcome,
        deadline: tokio::time::Instant,
    ) -> Option<Reply> {
        loop {
            if let Some(r) = out.replies.first() {
                return Some(r.clone());
            }
            let RunStatus::Waiting { delivery_id, .. } = &run.status else { return None };
            let id = format!("d:{delivery_id}");
            let at = out.commit.jobs.iter().position(|j| j.kind == JobKind::Delivery && j.id == id)?;
            let job = out.commit.jobs.remove(at);
            let Ok(dj) = serde_json::from_str::<DeliveryJob>(&job.payload) else {
                out.commit.jobs.push(job);
                return None;
            };
            let secrets = match hookflow_io::sender::resolve_secrets(&self.secrets, &dj.delivery).await {
                Ok(s) => s,
                Err(_) => {
                    out.commit.jobs.push(job);
                    return None;
                }
            };
            let attempt = match tokio::time::timeout_at(deadline, self.sender.send(&dj.delivery, &secrets)).await {
                Ok(a) => a,
                Err(_) => {
                    // Out of time: the dispatcher sends it (again, with the
                    // same webhook-id).
                    out.commit.jobs.push(job);
                    return None;
                }
            };
            let now = SystemClock.now_ms();
            let step = engine::after_attempt(job.id.clone(), dj, &attempt, now, &mut rand::rng());
            out.lines.extend(step.lines);
            let mut c = step.commit;
            out.commit.log.append(&mut c.log);
            if c.dead.is_some() {
                out.commit.dead = c.dead.take();
            }
            if let Some((id, payload, due)) = c.reschedule.take() {
                // A retry is the dispatcher's: the answer waits no longer.
                out.commit.jobs.push(NewJob {
                    id,
                    kind: JobKind::Delivery,
                    payload,
                    not_before: due,
                    tenant: run.tenant.clone(),
                    leased_for: None,
                    group: None,
                });
                return None;
            }
            // The result goes straight back to the run.
            let next = c.jobs.iter().position(|j| j.kind == JobKind::Run);
            let input = next.map(|i| c.jobs.remove(i));
            out.commit.jobs.append(&mut c.jobs);
            let input = input?;
            let Ok(RunJob { input, .. }) = serde_json::from_str::<RunJob>(&input.payload) else { return None };
            let Ok((advanced, effects)) = advance(flow, run.clone(), input) else { return None };
            *run = advanced;
            out.commit.runs.retain(|r| r.id != run.id);
            engine::record(out, run, effects, now);
        }
    }
}
