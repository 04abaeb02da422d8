//! `hookflow local-aws up` and `hookflow apply` against moto's server.

use std::process::Command;

fn hookflow(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(args)
        .env("AWS_ENDPOINT_URL", hookflow_aws::testing::moto_endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("HOOKFLOW_TABLE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn apply_validates_diffs_writes_versions_and_prints_trigger_urls() {
    let prefix = format!("cli{}", std::process::id());
    let (code, out, err) = hookflow(&["local-aws", "up", "--prefix", &prefix]);
    assert_eq!(code, 0, "{err}");
    let table = format!("{prefix}-table");
    assert!(out.contains(&format!("export HOOKFLOW_TABLE={table}")), "{out}");

    let dir = tempdir();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello.yaml"), dir.join("hello.yaml")).unwrap();
    let flows = dir.to_str().unwrap();

    let (code, out, _) = hookflow(&["apply", "--flows", flows, "--table", &table, "--dry-run"]);
    assert_eq!(code, 0);
    assert!(out.contains(": new") && out.contains("+ id:"), "{out}");

    let api = "https://abc.execute-api.eu-west-1.amazonaws.com";
    let (code, out, err) = hookflow(&["apply", "--flows", flows, "--table", &table, "--api-url", api]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": v1") && out.contains(&format!("{api}/hooks/")), "{out}");
    let (_, out, _) = hookflow(&["apply", "--flows", flows, "--table", &table]);
    assert!(out.contains("unchanged (v1)"), "{out}");

    // An edit shows as a diff, then becomes v2.
    let text = std::fs::read_to_string(dir.join("hello.yaml")).unwrap();
    std::fs::write(dir.join("hello.yaml"), format!("{text}\n# edited\n")).unwrap();
    let (_, out, _) = hookflow(&["apply", "--flows", flows, "--table", &table, "--dry-run"]);
    assert!(out.contains("v1 -> v2") && out.contains("+ # edited"), "{out}");
    let (_, out, _) = hookflow(&["apply", "--flows", flows, "--table", &table]);
    assert!(out.contains(": v2"), "{out}");

    // One invalid flow: nothing is written, and the error names file and line.
    std::fs::write(
        dir.join("bad.yaml"),
        "id: bad\ntenant: t\ntrigger: { type: webhook, path: x }\nsteps: [{ id: a, type: nope }]\n",
    )
    .unwrap();
    std::fs::write(dir.join("hello.yaml"), format!("{text}\n# edited again\n")).unwrap();
    let (code, out, err) = hookflow(&["apply", "--flows", flows, "--table", &table]);
    assert_eq!(code, 1);
    assert!(out.contains("bad.yaml:4:"), "{out}");
    assert!(err.contains("nothing applied"), "{err}");
    let (_, out, _) =
        hookflow(&["apply", "--flows", dir.join("hello.yaml").to_str().unwrap(), "--table", &table, "--dry-run"]);
    assert!(out.contains("v2 -> v3"), "hello was not written: {out}");
}

#[test]
fn local_aws_up_refuses_without_an_emulator_endpoint() {
    let out = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["local-aws", "up"])
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AWS_ENDPOINT_URL is not set"));
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hookflow-apply-{}-{}", std::process::id(), hookflow_local_now()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hookflow_local_now() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}
