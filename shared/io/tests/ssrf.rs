//! The sender's SSRF guard, end to end against listeners on 127.0.0.1:
//! every way of writing a loopback or metadata address is refused before a
//! connection is made, a name that resolves to one is refused at
//! resolution, redirects are not followed, and an allowed network is
//! reached. (`tests/test_dev.py` checks the same through `hookflow dev`;
//! this catches a regression with `cargo test` alone.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hookflow_core::attempt::AttemptError;
use hookflow_core::request::{OutboundRequest, SecretText};
use hookflow_core::retry::RetryPolicy;
use hookflow_core::run::Delivery;
use hookflow_core::ssrf::TargetPolicy;
use hookflow_io::Sender;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A listener on 127.0.0.1 that counts connections and answers each with
/// `response`.
async fn listener(response: &'static str) -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
            let _ = s.write_all(response.as_bytes()).await;
        }
    });
    (port, hits)
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";

fn delivery(url: &str) -> Delivery {
    Delivery {
        id: "msg_1".into(),
        run_id: "run_1".into(),
        event_id: "evt_1".into(),
        tenant: "t".into(),
        flow_id: "f".into(),
        step: "s".into(),
        request: OutboundRequest {
            method: hookflow_core::flow::Method::Post,
            url: SecretText::plain(url),
            headers: vec![],
            body: Some("{}".into()),
        },
        status_policy: Default::default(),
        retry: RetryPolicy::from_spec(&Default::default()),
        sign: None,
        timeout: Duration::from_secs(5),
        wait: true,
        purpose: Default::default(),
        secret_hosts: Default::default(),
        shaped: false,
        limit: None,
    }
}

#[tokio::test]
async fn loopback_and_metadata_in_every_spelling_are_refused_before_connecting() {
    let (port, hits) = listener(OK).await;
    let sender = Sender::new(TargetPolicy::public_only()).unwrap();
    let urls = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.0.0.1:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::ffff:7f00:1]:{port}/"),
        format!("http://169.254.169.254:{port}/latest/meta-data/"),
        format!("http://[fd00:ec2::254]:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        format!("http://10.0.0.1:{port}/"),
    ];
    for url in &urls {
        let a = sender.send(&delivery(url), &Default::default()).await;
        let (class, message) = a.result.error.clone().unwrap_or_else(|| panic!("{url} was sent"));
        assert_eq!(class, AttemptError::Ssrf, "{url}: {message}");
        assert!(a.result.response.is_none());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no connection was made");
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_at_resolution() {
    let (port, hits) = listener(OK).await;
    let sender = Sender::new(TargetPolicy::public_only()).unwrap();
    let a = sender.send(&delivery(&format!("http://localhost:{port}/")), &Default::default()).await;
    let (class, message) = a.result.error.unwrap();
    assert_eq!(class, AttemptError::Ssrf, "{message}");
    assert!(message.contains("localhost"), "{message}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_allowed_network_is_reached_and_a_redirect_is_not_followed() {
    let (target, target_hits) = listener(OK).await;
    let redirect: &'static str = Box::leak(
        format!("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{target}/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .into_boxed_str(),
    );
    let (port, hits) = listener(redirect).await;
    let sender = Sender::new(TargetPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()])).unwrap();
    let a = sender.send(&delivery(&format!("http://127.0.0.1:{target}/")), &Default::default()).await;
    assert_eq!(a.result.response.map(|r| r.status), Some(200));
    assert_eq!(target_hits.load(Ordering::SeqCst), 1);

    let a = sender.send(&delivery(&format!("http://127.0.0.1:{port}/")), &Default::default()).await;
    assert_eq!(a.result.response.map(|r| r.status), Some(302), "the redirect is the answer");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(target_hits.load(Ordering::SeqCst), 1, "its location was not fetched");
}

#[tokio::test]
async fn a_secret_bound_to_other_hosts_is_not_sent_and_no_connection_is_made() {
    use hookflow_core::flow::SecretRule;
    use hookflow_core::request::Part;
    let (port, hits) = listener(OK).await;
    let sender = Sender::new(TargetPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()])).unwrap();
    let secrets = [("token".to_string(), "tok-123".to_string())].into_iter().collect();
    let mut d = delivery(&format!("http://127.0.0.1:{port}/"));
    d.request.headers = vec![(
        "authorization".into(),
        SecretText(vec![Part::Text("Bearer ".into()), Part::Secret { secret: "token".into(), url_encode: false }]),
    )];
    // The URL's host came from data; the flow binds the token elsewhere.
    d.secret_hosts = [("token".to_string(), SecretRule { hosts: vec!["api.partner.example".into()] })].into();
    let a = sender.send(&d, &secrets).await;
    let (class, message) = a.result.error.expect("refused");
    assert_eq!(class, AttemptError::Ssrf, "{message}");
    assert!(message.contains("secret `token` may be sent only to api.partner.example, not to 127.0.0.1"), "{message}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing connected");

    d.secret_hosts = [("token".to_string(), SecretRule { hosts: vec!["127.0.0.1".into()] })].into();
    let a = sender.send(&d, &secrets).await;
    assert_eq!(a.result.response.map(|r| r.status), Some(200));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
