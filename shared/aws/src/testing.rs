//! Test support (feature `testing`): moto's server (the AWS API emulator
//! from PyPI, `moto[server]`) on a free loopback port, and SDK
//! configuration pointing at it. `scripts/test` installs moto into `.venv`;
//! set `MOTO_ENDPOINT` to use a server already running instead.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::{Credentials, Region};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Moto {
    endpoint: String,
    _child: Option<Child>,
}

/// The endpoint of moto's server, started on first use.
pub fn moto_endpoint() -> &'static str {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    &MOTO
        .get_or_init(|| {
            if let Ok(endpoint) = std::env::var("MOTO_ENDPOINT") {
                return Moto { endpoint, _child: None };
            }
            let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/moto_server");
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: run scripts/test (it installs moto into .venv) or set MOTO_ENDPOINT"
            );
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            // A watchdog shell stops moto when this test process ends
            // (statics are never dropped, so nothing else would).
            let script = format!(
                "{bin} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
                 while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
                parent = std::process::id()
            );
            let child = Command::new("sh")
                .args(["-c", &script])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting moto");
            let deadline = Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "moto did not start on port {port}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Moto { endpoint: format!("http://127.0.0.1:{port}"), _child: Some(child) }
        })
        .endpoint
}

/// SDK configuration for moto (fixed test credentials, us-east-1).
pub async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await
}

/// The DynamoDB requests sent through a client built by
/// [`Counted::client`], by operation (`Query`, `GetItem`, …).
#[derive(Debug, Default, Clone)]
pub struct Counted(Arc<Mutex<Vec<String>>>);

impl Counted {
    /// A DynamoDB client for `conf` whose requests this counts.
    pub fn client(&self, conf: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
        let conf = aws_sdk_dynamodb::config::Builder::from(conf).interceptor(self.clone()).build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    /// The operations sent since the last call, in order.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl aws_sdk_dynamodb::config::Intercept for Counted {
    fn name(&self) -> &'static str {
        "Counted"
    }

    fn read_before_transmit(
        &self,
        ctx: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = ctx.request().headers().get("x-amz-target").unwrap_or("?");
        let op = target.rsplit('.').next().unwrap_or(target).to_string();
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(op);
        Ok(())
    }
}

/// One poll of the Lambda event source mapping, played by the test: receive
/// up to ten messages from `queue_url`, hand them to `handle` as an SQS
/// event, delete those it did not report as failed. Returns (received,
/// failed).
pub async fn poll<F, Fut>(sqs: &aws_sdk_sqs::Client, queue_url: &str, handle: F) -> (usize, usize)
where
    F: FnOnce(aws_lambda_events::event::sqs::SqsEvent) -> Fut,
    Fut: std::future::Future<Output = aws_lambda_events::event::sqs::SqsBatchResponse>,
{
    poll_at_most(sqs, queue_url, 10, handle).await
}

/// [`poll`] with a batch size of `max` messages.
pub async fn poll_at_most<F, Fut>(sqs: &aws_sdk_sqs::Client, queue_url: &str, max: i32, handle: F) -> (usize, usize)
where
    F: FnOnce(aws_lambda_events::event::sqs::SqsEvent) -> Fut,
    Fut: std::future::Future<Output = aws_lambda_events::event::sqs::SqsBatchResponse>,
{
    let got = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .expect("ReceiveMessage")
        .messages
        .unwrap_or_default();
    // As the event source mapping fills them in: the queue's ARN (its
    // name tells a FIFO queue), the receipt handle, the system attributes.
    let name = queue_url.rsplit('/').next().unwrap_or_default();
    let records = got
        .iter()
        .map(|m| {
            let mut r = aws_lambda_events::event::sqs::SqsMessage::default();
            r.message_id = m.message_id.clone();
            r.receipt_handle = m.receipt_handle.clone();
            r.body = m.body.clone();
            r.event_source_arn = Some(format!("arn:aws:sqs:us-east-1:123456789012:{name}"));
            r.attributes =
                m.attributes().into_iter().flatten().map(|(k, v)| (k.as_str().to_string(), v.clone())).collect();
            r
        })
        .collect();
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = records;
    let response = handle(event).await;
    let failed: Vec<String> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    for m in &got {
        if !failed.iter().any(|f| Some(f) == m.message_id.as_ref()) {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("DeleteMessage");
        }
    }
    (got.len(), failed.len())
}

/// An HTTP receiver on 127.0.0.1 answering with the given statuses in
/// turn, then 200, and keeping every request it got.
#[derive(Clone, Default)]
pub struct Receiver {
    statuses: Arc<Mutex<VecDeque<u16>>>,
    seen: Arc<Mutex<Vec<String>>>,
    /// How long it takes to answer.
    delay: Duration,
}

impl Receiver {
    /// Starts it; it answers every request with `body`.
    pub async fn start(statuses: &[u16], body: &'static str) -> (Self, String) {
        Self::start_slow(statuses, body, Duration::ZERO).await
    }

    /// Starts one that takes `delay` to answer each request.
    pub async fn start_slow(statuses: &[u16], body: &'static str, delay: Duration) -> (Self, String) {
        let r = Receiver {
            statuses: Arc::new(Mutex::new(statuses.iter().copied().collect())),
            delay,
            ..Default::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let me = r.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Read the head, then the body by Content-Length.
                    loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text[..end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                me.seen.lock().unwrap().push(text);
                                break;
                            }
                        }
                    }
                    tokio::time::sleep(me.delay).await;
                    let status = me.statuses.lock().unwrap().pop_front().unwrap_or(200);
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        (r, url)
    }

    /// The requests received so far, head and body as text.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// A scan's items as text, with compressed attributes inflated: what a test
/// that looks for a value (an outcome, or a secret that must not be there)
/// has to read.
pub fn readable(items: &[std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>]) -> String {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut out = String::new();
    for item in items {
        for (k, v) in item {
            let shown = match v {
                AttributeValue::B(b) => miniz_oxide::inflate::decompress_to_vec_zlib(b.as_ref())
                    .map(|raw| format!("Z({:?})", String::from_utf8_lossy(&raw)))
                    .unwrap_or_else(|_| format!("{v:?}")),
                other => format!("{other:?}"),
            };
            out.push_str(&format!("{k}={shown}\n"));
        }
    }
    out
}
