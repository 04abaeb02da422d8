//! A request of the operator's own: the console's **Send a test request**,
//! to the trigger URL of one of the deployment's flows.
//!
//! Not a delivery: no secrets are resolved and nothing is signed (the
//! operator types what the request carries), and there is no SSRF guard —
//! the URL is the deployment's own trigger endpoint, built by the console,
//! usually on loopback. Redirects are not followed; the answer's body is
//! kept up to [`MAX_CAPTURE`].

use std::time::{Duration, Instant};

use crate::sender::MAX_CAPTURE;

/// What the endpoint answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy), at most [`MAX_CAPTURE`] bytes of it.
    pub body: String,
    pub truncated: bool,
    pub duration_ms: u64,
}

/// Sends requests to the deployment's own endpoints. Build once, share.
#[derive(Clone)]
pub struct Probe {
    client: reqwest::Client,
}

impl Probe {
    pub fn new() -> Result<Self, crate::Error> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::sender::tls_config()?)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| crate::Error::Config(format!("HTTP client: {e}")))?;
        Ok(Probe { client })
    }

    /// Sends one request; an error says why nothing was answered.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let start = Instant::now();
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| format!("`{method}` is not a method"))?;
        let mut req = self.client.request(method, url).body(body);
        for (name, value) in headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("header `{name}`: not a valid header name"))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| format!("header `{name}`: the value has a character headers cannot carry"))?;
            req = req.header(name, value);
        }
        let mut r = req.send().await.map_err(|e| format!("no answer from {url}: {e}"))?;
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = r.chunk().await.map_err(|e| format!("the answer from {url} broke off: {e}"))? {
            let room = MAX_CAPTURE - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.len() > room {
                truncated = true;
                break;
            }
        }
        Ok(Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            truncated,
            duration_ms: start.elapsed().as_millis() as u64,
        })
    }
}
