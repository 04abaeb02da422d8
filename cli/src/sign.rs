//! `hookflow sign` and `hookflow verify`: Standard Webhooks from the shell.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use hookflow_core::signature::{SigningKey, asymmetric_verify, parse_secrets, standard_sign, standard_verify};

fn read_body(file: Option<&Path>) -> Result<Vec<u8>> {
    match file {
        None => Ok(Vec::new()),
        Some(p) if p == Path::new("-") => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).context("reading standard input")?;
            Ok(buf)
        }
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display())),
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

pub fn sign(secret: &str, id: &str, timestamp: Option<i64>, file: Option<&Path>) -> Result<ExitCode> {
    let body = read_body(file)?;
    let ts = timestamp.unwrap_or_else(now);
    if secret.trim().starts_with("whsk_") {
        // Asymmetric (ed25519): a `v1a` signature.
        let key = SigningKey::parse(secret).context("--secret")?;
        out!("{}", key.sign(id, ts, &body));
        return Ok(ExitCode::SUCCESS);
    }
    let secrets = parse_secrets(secret).context("--secret")?;
    out!("{}", standard_sign(&secrets, id, ts, &body));
    Ok(ExitCode::SUCCESS)
}

pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signature: &str,
    file: Option<&Path>,
    tolerance: u64,
    at: Option<i64>,
) -> Result<ExitCode> {
    let body = read_body(file)?;
    let (now, tolerance) = (at.unwrap_or_else(now), Duration::from_secs(tolerance));
    let checked = if secret.trim().starts_with("whpk_") {
        asymmetric_verify(secret, id, timestamp, signature, &body, now, tolerance)
    } else {
        let secrets = parse_secrets(secret).context("--secret")?;
        standard_verify(&secrets, id, timestamp, signature, &body, now, tolerance)
    };
    match checked {
        Ok(()) => {
            out!("valid");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            out!("invalid: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
