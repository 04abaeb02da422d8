//! The `hookflow` binary's offline commands, run as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn hookflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookflow")).args(args).current_dir(root()).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The JSON lines `hookflow test` printed.
fn lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

#[test]
fn examples_validate() {
    let o = hookflow(&["validate", "examples"]);
    assert!(o.status.success(), "{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("4 flow file(s) valid"));
    // A file named twice is one file (no clash with itself).
    let o = hookflow(&["validate", "examples", "examples/hello.yaml"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("4 flow file(s) valid"));
}

/// Every shipped example passes its own dry run as shipped, and the README
/// counts them right.
#[test]
fn every_example_passes_its_sample_dry_run_and_the_readme_counts_them() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let rel = format!("examples/{}", path.file_name().unwrap().to_string_lossy());
            let o = hookflow(&["test", &rel, "--sample"]);
            assert!(o.status.success(), "{rel}: {}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
            let l = lines(&o);
            assert_eq!(l.last().unwrap()["run"]["state"], "succeeded", "{rel}: {l:?}");
            names.push(rel);
        }
    }
    let words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let said = format!("{} complete examples live in", words[names.len()]);
    assert!(readme.to_lowercase().contains(&said), "README should say `{said}`: {names:?}");
}

/// The errors a newcomer meets first say what to do.
#[test]
fn first_mistakes_are_answered_with_what_to_do() {
    let dir = tempdir();
    let (empty, typos) = (dir.join("empty.yaml"), dir.join("typos.yaml"));
    std::fs::write(&empty, "# nothing yet\n").unwrap();
    std::fs::write(
        &typos,
        "id: t\ntenant: acme\ntrigger: { type: webhook, path: p, metods: [POST] }\nsteps:\n  - id: s\n    type: http\n    ur: https://x.example\n",
    )
    .unwrap();
    let o = hookflow(&["validate", empty.to_str().unwrap(), typos.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("empty.yaml:1:1: the file is empty: a flow is a mapping with `id`"), "{out}");
    assert!(out.contains(":3:36: trigger.metods: unknown field `metods`: did you mean `methods`?"), "{out}");
    assert!(out.contains(":7:5: steps[0].ur: unknown field `ur`: did you mean `url`?"), "{out}");
    assert!(out.contains("`id`, `if`, `on_failure`, `type`"), "a step's own keys are listed: {out}");

    let missing = dir.join("no-such-dir");
    let o = hookflow(&["dev", "--flows", missing.to_str().unwrap(), "--data", dir.join("d").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("does not exist: create it (mkdir -p"), "{err}");
    let o = hookflow(&["dev", "--flows", "examples", "--listen", "8080"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("`8080` is a port alone: give HOST:PORT, such as 127.0.0.1:8080"), "{err}");

    let o = hookflow(&["validate", "examples"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("secrets they read: github_webhook_secret, partner_signing_key"), "{err}");
}

/// `validate` says yes or no by the rules `dev` and `apply` use.
#[test]
fn validate_agrees_with_dev_and_apply() {
    let dir = tempdir();
    let flow = |id: &str, extra: &str| {
        format!(
            "id: {id}\ntenant: t\ntrigger: {{ type: webhook, path: same }}\nsteps:\n  - id: s\n    type: http\n    url: https://x.example/\n{extra}"
        )
    };
    std::fs::write(dir.join("a.yaml"), flow("a", "    timeout: 60s\n")).unwrap();
    std::fs::write(
        dir.join("b.yaml"),
        flow("b", "    body: { json: { v: \"{{ trigger.body.x | nosuchfilter }}\" } }\n"),
    )
    .unwrap();
    let o = hookflow(&["validate", dir.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("b.yaml:8:21: steps[0].body.json.v: template: unknown filter `nosuchfilter`"), "{out}");
    assert!(
        out.contains("a.yaml:8:5: steps[0].timeout: step `s` may take 60s") && out.contains("(on AWS only"),
        "{out}"
    );
    std::fs::write(dir.join("b.yaml"), flow("b", "")).unwrap();
    let o = hookflow(&["validate", dir.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(out.contains("a.yaml and ") && out.contains("b.yaml both use the trigger /hooks/t/same"), "{out}");
    std::fs::write(dir.join("b.yaml"), flow("b", "").replace("path: same", "path: other")).unwrap();
    let o = hookflow(&["validate", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "a timeout past AWS's is a warning: {}", stdout(&o));
    let o = hookflow(&["validate", "--aws", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "and an error with --aws: {}", stdout(&o));
    assert!(!stdout(&o).contains("(on AWS only"), "{}", stdout(&o));
}

#[test]
fn invalid_flows_print_file_line_col_field_lines_and_exit_1() {
    let dir = tempdir();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "id: bad\ntenant: acme\ntrigger: { type: webhook, path: 'a b' }\nsteps:\n  - id: s\n    type: http\n    url: https://x.example/{p}\n",
    )
    .unwrap();
    let o = hookflow(&["validate", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let want_path = format!("{}:3:", bad.display());
    assert!(out.contains(&want_path), "{out}");
    assert!(out.contains("trigger.path: `a b` contains a space"), "{out}");
    assert!(out.contains(":7:5: steps[0].url: `{p}` has no matching entry in `params`"), "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn dry_run_of_the_partner_sync_sample() {
    let o = hookflow(&["test", "examples/partner-sync.yaml", "--sample"]);
    assert!(o.status.success());
    let l = lines(&o);
    assert_eq!(l[0]["reply"]["status"], 202);
    let send = l.iter().find(|v| v["decision"] == "send").unwrap();
    let req = &send["detail"]["request"];
    assert_eq!(req["url"], "https://partner.example.com/partners/p-42/sync");
    assert_eq!(req["headers"]["Authorization"], "Bearer ***");
    assert_eq!(req["body"], r#"{"order":820982911946154508,"total":199.0}"#);
    assert!(l.iter().any(|v| v["decision"] == "sign" && v["scheme"] == "standard_webhooks"));
    assert_eq!(l.last().unwrap()["run"]["state"], "succeeded");
}

#[test]
fn dry_run_with_recorded_request_and_stand_in_responses() {
    let ok = hookflow(&[
        "test",
        "examples/quote-sync.yaml",
        "--request",
        "examples/requests/quote.json",
        "--response",
        "price=examples/requests/price-ok.json",
    ]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    let l = lines(&ok);
    let reply = l.iter().find(|v| v["decision"] == "reply").unwrap();
    assert_eq!(reply["reply"]["status"], 200);
    assert_eq!(reply["reply"]["body"], r#"{"sku":"SKU-9","total":25.0}"#);
    let url = l.iter().find(|v| v["decision"] == "send").unwrap()["detail"]["request"]["url"].clone();
    assert_eq!(url, "https://pricing.example.com/skus/SKU-9/price?qty=2&key=***");

    let missing = hookflow(&[
        "test",
        "examples/quote-sync.yaml",
        "--request",
        "examples/requests/quote.json",
        "--response",
        "price=examples/requests/price-404.json",
    ]);
    let l = lines(&missing);
    let reply = l.iter().find(|v| v["decision"] == "reply").unwrap();
    assert_eq!(reply["reply"]["status"], 404);
    assert_eq!(l.iter().find(|v| v["step"] == "total").unwrap()["decision"], "skipped");
}

#[test]
fn a_halting_response_fails_the_dry_run() {
    let dir = tempdir();
    let resp = dir.join("400.json");
    std::fs::write(&resp, r#"{"status": 400, "body": "bad"}"#).unwrap();
    let arg = format!("sync={}", resp.display());
    let o = hookflow(&["test", "examples/partner-sync.yaml", "--sample", "--response", &arg]);
    assert_eq!(o.status.code(), Some(1));
    let l = lines(&o);
    assert!(l.iter().any(|v| v["verdict"] == "halt"));
    assert_eq!(l.last().unwrap()["run"]["state"], "failed");
    assert_eq!(l.last().unwrap()["run"]["reason"], "status 400 halts the step");
}

#[test]
fn dry_run_errors_are_clear() {
    let o = hookflow(&["test", "examples/quote-sync.yaml", "--sample", "--response", "nope=x.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the flow has no step `nope`"));
}

#[test]
fn sign_and_verify_the_spec_vector() {
    let dir = tempdir();
    let body = dir.join("body.json");
    std::fs::write(&body, br#"{"test": 2432232314}"#).unwrap();
    let b = body.to_str().unwrap();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    let o = hookflow(&["sign", "--secret", secret, "--id", id, "--timestamp", "1614265330", "--file", b]);
    assert_eq!(stdout(&o).trim(), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    let sig = stdout(&o).trim().to_string();
    let ok = hookflow(&[
        "verify",
        "--secret",
        secret,
        "--id",
        id,
        "--timestamp",
        "1614265330",
        "--signature",
        &sig,
        "--file",
        b,
        "--now",
        "1614265330",
    ]);
    assert!(ok.status.success());
    // Now is long past 2021: outside the tolerance.
    let stale = hookflow(&[
        "verify",
        "--secret",
        secret,
        "--id",
        id,
        "--timestamp",
        "1614265330",
        "--signature",
        &sig,
        "--file",
        b,
    ]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(stdout(&stale).contains("invalid: timestamp outside the 300-second tolerance"));
    let bad = hookflow(&["sign", "--secret", "whsec_!!", "--id", id]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn schema_command_prints_the_published_schema() {
    let o = hookflow(&["schema"]);
    let published = std::fs::read_to_string(root().join("docs/flow.schema.json")).unwrap();
    assert_eq!(stdout(&o), published);
}

fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d =
        std::env::temp_dir().join(format!("hookflow-cli-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&d).unwrap();
    d
}
