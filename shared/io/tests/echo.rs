//! A receiver that echoes what it was sent never gets a secret into what
//! Hookflow keeps: the captured response (stored in the request log and the
//! run, shown by the admin API and the CLI) has every secret value the
//! attempt used replaced by `***`, in the forms an echo takes.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hookflow_core::request::{OutboundRequest, Part, SecretText};
use hookflow_core::retry::RetryPolicy;
use hookflow_core::run::Delivery;
use hookflow_core::ssrf::TargetPolicy;
use hookflow_io::Sender;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A receiver on 127.0.0.1 that answers each request with its head as a
/// JSON string, and its `authorization` header again in `x-seen`.
async fn echo() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = vec![0u8; 16384];
            let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.unwrap_or(Ok(0)).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).split("\r\n\r\n").next().unwrap_or("").to_string();
            let auth = head
                .lines()
                .find_map(|l| l.strip_prefix("authorization: ").or_else(|| l.strip_prefix("Authorization: ")))
                .unwrap_or("")
                .to_string();
            let body =
                serde_json::json!({"you_sent": head, "again": auth, "raw_token": auth.split(' ').nth(1)}).to_string();
            // PHP's encoder writes `/` as `\/`: no needle has that form,
            // parsing undoes it.
            let body = body.replacen('{', r#"{"php": "k\/ey+42 x", "#, 1);
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nx-seen: {auth}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    port
}

fn secret(name: &str) -> Part {
    Part::Secret { secret: name.into(), url_encode: false }
}

fn delivery(port: u16, headers: Vec<(String, SecretText)>) -> Delivery {
    Delivery {
        id: "msg_1".into(),
        run_id: "run_1".into(),
        event_id: "evt_1".into(),
        tenant: "t".into(),
        flow_id: "f".into(),
        step: "s".into(),
        request: OutboundRequest {
            method: hookflow_core::flow::Method::Post,
            url: SecretText(vec![
                Part::Text(format!("http://127.0.0.1:{port}/hook?key=")),
                Part::Secret { secret: "api_key".into(), url_encode: true },
            ]),
            headers,
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
async fn secrets_a_receiver_echoes_are_not_in_the_captured_response() {
    let port = echo().await;
    let sender = Sender::new(TargetPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()])).unwrap();
    let secrets = [("token", "sk_live_4f9a0c2e"), ("password", "hunter2-correct"), ("api_key", "k/ey+42 x")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();

    for (header, sent) in [
        // A bearer token, echoed verbatim in a header and the body.
        (SecretText(vec![Part::Text("Bearer ".into()), secret("token")]), "Bearer sk_live_4f9a0c2e".to_string()),
        // Basic credentials: the password travels only base64-encoded with
        // the user name.
        (
            SecretText(vec![
                Part::Text("Basic ".into()),
                Part::Base64 { base64: vec![Part::Text("alice:".into()), secret("password")] },
            ]),
            format!("Basic {}", STANDARD.encode("alice:hunter2-correct")),
        ),
    ] {
        let a = sender.send(&delivery(port, vec![("authorization".into(), header)]), &secrets).await;
        let r = a.result.response.unwrap_or_else(|| panic!("no response: {:?}", a.result.error));
        assert_eq!(r.status, 400);
        let kept = format!("{:?} {}", r.headers, r.body);
        for leaked in [
            sent.as_str(),
            sent.split(' ').nth(1).unwrap(),
            "sk_live_4f9a0c2e",
            "hunter2-correct",
            "k%2Fey%2B42%20x",
            "k/ey+42 x",
        ] {
            assert!(!kept.contains(leaked), "{leaked} is in the captured response: {kept}");
        }
        assert_eq!(r.headers.get("x-seen"), Some("***"), "{kept}");
        assert!(r.body["you_sent"].as_str().unwrap().contains("/hook?key=***"), "{kept}");
    }
}
