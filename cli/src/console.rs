//! `hookflow console --table T`: the console of a deployed stack, served on
//! this machine (loopback by default) and working with the admin's own AWS
//! credentials on the stack's table, queues and secrets — no new public
//! surface on AWS. The same pages as `hookflow dev`'s, over the same admin
//! API routes, here with the admin function's backend in this process.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use hookflow_admin::Admin;
use hookflow_aws::AwsConfig;
use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;
use hookflow_core::signature::WebhookSecret;

pub struct Options {
    pub table: String,
    pub listen: String,
    /// The stack's HTTP API URL, for the trigger URLs shown.
    pub api_url: Option<String>,
    pub admin_token: Option<String>,
}

/// Binds the console (`hookflow dev --console`, `hookflow console`), warns
/// when the address is not loopback, and prints its sign-in link.
pub async fn listen(at: &str, config: hookflow_console::Config) -> Result<hookflow_console::Listening> {
    let console = hookflow_console::listen(at, config).await?;
    if !console.addr.ip().is_loopback() {
        eprintln!(
            "warning: the console listens on {}, not loopback: anyone who can reach it may try to sign in",
            console.addr
        );
    }
    println!("console: {}", console.login_url);
    Ok(console)
}

pub fn run(opts: Options) -> Result<ExitCode> {
    // The stack's names as its functions read them (`HOOKFLOW_*`, the
    // table from --table): one message naming every one missing.
    let table = opts.table.clone();
    let config = AwsConfig::from_lookup(|name| match name {
        "HOOKFLOW_TABLE" => Some(table.clone()),
        other => std::env::var(other).ok(),
    })
    .context("the stack's queues and secrets (export the variables the functions get; `hookflow local-aws up` prints them for an emulator)")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async move {
        let sdk = crate::aws::sdk().await;
        let backend = admin::AwsBackend {
            store: Store::from_config(&sdk, &config),
            secrets: Secrets::new(aws_sdk_secretsmanager::Client::new(&sdk), &config.secrets_prefix),
            settings: config.subscriptions.clone(),
        };
        let token = match opts.admin_token {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => WebhookSecret::generate().expose().replacen("whsec_", "hfa_", 1),
        };
        let admin = Arc::new(Admin { backend, token: Some(token.clone()) });
        println!("hookflow console of table {}", opts.table);
        let config = hookflow_console::Config {
            admin: hookflow_admin::router(admin),
            admin_token: token,
            triggers_base: opts.api_url,
        };
        let console = listen(&opts.listen, config).await?;
        tokio::select! {
            r = console.serve() => r?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}
