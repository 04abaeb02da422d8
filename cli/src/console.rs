//! `hookflow console --stack NAME` (or `--table T`): the console of a
//! deployed stack, served on this machine (loopback by default) and working
//! with the admin's own AWS credentials on the stack's table, queues and
//! secrets — no new public surface on AWS. The same pages as `hookflow
//! dev`'s, over the same admin API routes, here with the admin function's
//! backend in this process.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use hookflow_admin::Admin;
use hookflow_aws::AwsConfig;
use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;
use hookflow_core::signature::WebhookSecret;

/// Where the stack's names come from.
pub enum From {
    /// A CloudFormation stack: its outputs and parameters.
    Stack(String),
    /// A table, the rest from the `HOOKFLOW_*` variables.
    Table(String),
}

pub struct Options {
    pub from: From,
    /// The stack's region, if not the AWS configuration's.
    pub region: Option<String>,
    pub listen: String,
    /// The stack's HTTP API URL, for the trigger URLs shown.
    pub api_url: Option<String>,
    pub admin_token: Option<String>,
}

/// Binds the console (`hookflow dev --console`, `hookflow console`); see
/// [`announce`].
pub async fn listen(at: &str, config: hookflow_console::Config) -> Result<hookflow_console::Listening> {
    Ok(hookflow_console::listen(at, config).await?)
}

/// Prints the console's sign-in link, with a warning when its address is
/// not loopback.
pub fn announce(console: &hookflow_console::Listening) {
    if !console.addr.ip().is_loopback() {
        eprintln!(
            "warning: the console listens on {}, not loopback: anyone who can reach it may try to sign in",
            console.addr
        );
    }
    println!("console: {}", console.login_url);
}

/// A deployment's admin API, in this process, with the caller's own AWS
/// credentials (the admin function's backend): its router for `token`,
/// the stack's API URL, and what it is of (`stack S`, `table T`).
pub async fn deployment(
    from: &From,
    region: Option<String>,
    token: &str,
) -> Result<(axum::Router, Option<String>, String)> {
    let sdk = crate::aws::sdk_in(region).await;
    // The stack's names as its functions read them (`HOOKFLOW_*`): from
    // the stack, or the table given and the environment; one message
    // naming every one missing.
    let (names, api_url, what) = match from {
        From::Stack(stack) => {
            let found = crate::stack::names(&sdk, stack).await?;
            (found.vars, found.api_url, format!("stack {stack}"))
        }
        From::Table(t) => (vec![("HOOKFLOW_TABLE".to_string(), t.clone())], None, format!("table {t}")),
    };
    let config = AwsConfig::from_lookup(|name| {
        names.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).or_else(|| std::env::var(name).ok())
    })
    .context("the stack's queues and secrets (give --stack NAME, or export the variables the functions get; `hookflow local-aws up` prints them for an emulator)")?;
    let backend = hookflow_aws::AwsBackend {
        store: Store::from_config(&sdk, &config),
        secrets: Secrets::new(aws_sdk_secretsmanager::Client::new(&sdk), &config.secrets_prefix),
        settings: config.subscriptions.clone(),
    };
    let admin = Arc::new(Admin { backend, token: Some(token.to_string()) });
    Ok((hookflow_admin::router(admin), api_url, what))
}

pub fn run(opts: Options) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async move {
        let token = match opts.admin_token {
            Some(t) if !t.trim().is_empty() => crate::admin_token(&t)?,
            _ => WebhookSecret::generate().expose().replacen("whsec_", "hfa_", 1),
        };
        let (router, stack_api, what) = deployment(&opts.from, opts.region.clone(), &token).await?;
        let api_url = opts.api_url.clone().or(stack_api);
        println!("hookflow console of {what}");
        let config = hookflow_console::Config { admin: router, admin_token: token, triggers_base: api_url };
        let console = listen(&opts.listen, config).await?;
        announce(&console);
        tokio::select! {
            r = console.serve() => r?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}
