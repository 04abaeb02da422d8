//! Sends one attempt of a delivery over HTTP.
//!
//! The only place where secret values meet a request: placeholders are
//! resolved here, signatures computed here, and nothing of it is returned
//! except the response. Every connection goes through the SSRF guard: names
//! are resolved by [`GuardedResolver`], which hands the connector only
//! addresses the policy allows; IP literals are checked before sending.
//! Redirects are never followed.

use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hookflow_core::headers::Headers;
use hookflow_core::retry::parse_retry_after;
use hookflow_core::run::{CapturedResponse, Delivery};
use hookflow_core::scrub::Scrubber;
use hookflow_core::ssrf::TargetPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use std::collections::HashMap;

/// Most of a response body kept for `steps.<id>.response` and the log.
pub const MAX_CAPTURE: usize = 16 * 1024;

pub use hookflow_core::attempt::{AttemptError as ErrorClass, AttemptResult};

pub use hookflow_core::attempt::Attempt;

#[derive(Debug)]
struct SsrfRefused(String);

impl std::fmt::Display for SsrfRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SsrfRefused {}

/// Resolves names, keeping only addresses the policy allows.
struct GuardedResolver {
    policy: Arc<TargetPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // An address needs no lookup (and no blocking thread).
            let all: Vec<SocketAddr> = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, 0)],
                Err(_) => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let mut refused = None;
            let allowed: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        refused = Some(format!("{host} resolves to {} ({})", a.ip(), why.describe()));
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let msg = refused.unwrap_or_else(|| format!("{host} has no addresses"));
                return Err(Box::new(SsrfRefused(msg)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The HTTP sender. Build once, share.
pub struct Sender {
    client: reqwest::Client,
    policy: Arc<TargetPolicy>,
}

/// Secret values by name, fetched for one delivery (`hookflow_pipeline::secrets::resolve`).
pub type SecretValues = HashMap<String, String>;

fn classify(e: &reqwest::Error) -> ErrorClass {
    let mut src = e.source();
    while let Some(s) = src {
        if s.is::<SsrfRefused>() {
            return ErrorClass::Ssrf;
        }
        src = s.source();
    }
    let text = format!("{e:?}").to_ascii_lowercase();
    if e.is_timeout() {
        ErrorClass::Timeout
    } else if text.contains("dns") || text.contains("failed to lookup") {
        ErrorClass::Dns
    } else if text.contains("tls") || text.contains("certificate") {
        ErrorClass::Tls
    } else if e.is_builder() {
        ErrorClass::Request
    } else {
        ErrorClass::Connect
    }
}

/// `e` and its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = x.source();
    }
    s
}

/// TLS for outbound calls: Mozilla's root program, compiled in
/// (`webpki-roots`). The platform verifier reqwest uses by default reads and
/// parses the system bundle when the client is built, ~4 ms of every Lambda
/// cold start; the compiled-in roots cost nothing to load and are the same
/// set browsers trust. A receiver behind a private CA is a private target,
/// refused by the SSRF policy anyway.
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, crate::Error> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl Sender {
    pub fn new(policy: TargetPolicy) -> Result<Self, crate::Error> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(256)
            .dns_resolver(GuardedResolver { policy: policy.clone() })
            .build()
            .map_err(|e| crate::Error::Config(format!("HTTP client: {e}")))?;
        Ok(Sender { client, policy })
    }

    /// Sends one attempt of `d` with the secret values it uses.
    pub async fn send(&self, d: &Delivery, secrets: &SecretValues) -> Attempt {
        let start = Instant::now();
        let fail = |class, msg: String| Attempt {
            result: AttemptResult { response: None, retry_after: None, error: Some((class, msg)) },
            duration_ms: start.elapsed().as_millis() as u64,
        };
        // Secret placeholders resolve here; a missing one names itself.
        let mut lookup = |name: &str| secrets.get(name).cloned().ok_or_else(|| name.to_string());
        let unset = |name: String| fail(ErrorClass::Secret, format!("secret `{name}` is not set"));
        let url = match d.request.url.resolve(&mut lookup) {
            Ok(u) => u,
            Err(name) => return unset(name),
        };
        let parsed = match reqwest::Url::parse(&url) {
            Ok(u) => u,
            Err(e) => return fail(ErrorClass::Request, format!("invalid URL: {e}")),
        };
        // A secret bound to hosts goes nowhere else (the flow's `secrets:`),
        // checked before anything connects.
        if let Some(why) =
            parsed.host_str().and_then(|h| d.secret_refused(h.trim_start_matches('[').trim_end_matches(']')))
        {
            return fail(ErrorClass::Ssrf, why);
        }
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal
            && let Err(why) = self.policy.check(ip)
        {
            return fail(ErrorClass::Ssrf, format!("{ip} is {}", why.describe()));
        }
        let method = reqwest::Method::from_bytes(d.request.method.as_str().as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut req = self.client.request(method, parsed).timeout(d.timeout);
        // Header values a secret was rendered into: scrubbed from the
        // response whole, as well as the secrets themselves.
        let mut rendered = Vec::new();
        for (name, value) in &d.request.headers {
            let v = match value.resolve(&mut lookup) {
                Ok(v) => v,
                Err(name) => return unset(name),
            };
            if v.contains(['\r', '\n', '\0']) {
                return fail(ErrorClass::Request, format!("header {name}: value contains CR, LF or NUL"));
            }
            if !value.secret_names().is_empty() {
                rendered.push(v.clone());
            }
            req = req.header(name.as_str(), v);
        }
        let scrub = Scrubber::new(secrets.values().map(String::as_str), rendered.iter().map(String::as_str));
        let fail = |class, msg: String| fail(class, scrub.text(&msg));
        let body = d.request.body.clone().unwrap_or_default();
        let ts = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        match d.signature(secrets, body.as_bytes(), ts) {
            Ok(hs) => {
                for (k, v) in hs {
                    req = req.header(k, v);
                }
            }
            Err(why) => return fail(ErrorClass::Secret, why),
        }
        if d.request.body.is_some() {
            req = req.body(body);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return fail(classify(&e), chain(&e)),
        };
        let status = resp.status().as_u16();
        let headers: Headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), scrub.text(&String::from_utf8_lossy(v.as_bytes()))))
            .collect();
        let retry_after = headers.get("retry-after").and_then(|v| parse_retry_after(v, SystemTime::now()));
        // Read past the capture's size by the longest secret form, so a
        // secret that straddles the cut is seen whole and scrubbed.
        let cap = MAX_CAPTURE + scrub.longest();
        let mut bytes = Vec::new();
        let mut resp = resp;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = cap.saturating_sub(bytes.len());
                    bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if bytes.len() >= cap {
                        break;
                    }
                }
                Ok(None) => break,
                // A response that broke off mid-body still has its status.
                Err(_) => break,
            }
        }
        // A whole JSON body is scrubbed once parsed, string by string: its
        // structure cannot break (a secret `1234` inside `12345`), and
        // escapes no needle has (`\u0026`, `\/`) are undone. Anything else
        // (text, or JSON cut at the capture's size) is scrubbed as text,
        // then cut.
        let text = String::from_utf8_lossy(&bytes);
        let mut response = if bytes.len() <= MAX_CAPTURE {
            CapturedResponse::new(status, headers, &text)
        } else {
            CapturedResponse::new(status, headers, hookflow_core::text::head(&scrub.text(&text), MAX_CAPTURE))
        };
        scrub.json(&mut response.body);
        Attempt {
            result: AttemptResult { response: Some(response), retry_after, error: None },
            duration_ms: start.elapsed().as_millis() as u64,
        }
    }
}

impl hookflow_core::ports::Sender for Sender {
    async fn send(&self, delivery: &Delivery, secrets: &SecretValues) -> Attempt {
        Sender::send(self, delivery, secrets).await
    }
}
