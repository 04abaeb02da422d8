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

/// The variables the functions get (`HOOKFLOW_*`), from a stack's outputs
/// and parameters (template.yaml's names), and its API URL.
async fn stack_names(sdk: &aws_config::SdkConfig, stack: &str) -> Result<(Vec<(String, String)>, Option<String>)> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let found = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(aws_sdk_cloudformation::Error::from)
        .with_context(|| {
            format!("reading stack `{stack}` (is the name right, in this region, with these credentials?)")
        })?;
    let s = found.stacks().first().with_context(|| format!("no stack `{stack}`"))?;
    let output = |key: &str| {
        s.outputs().iter().find(|o| o.output_key() == Some(key)).and_then(|o| o.output_value()).map(str::to_string)
    };
    let parameter = |key: &str| {
        s.parameters()
            .iter()
            .find(|p| p.parameter_key() == Some(key))
            .and_then(|p| p.resolved_value().or(p.parameter_value()))
            .map(str::to_string)
    };
    let mut names = Vec::new();
    for (var, value) in [
        ("HOOKFLOW_TABLE", output("TableName")),
        ("HOOKFLOW_RUNS_QUEUE_URL", output("RunsQueueUrl")),
        ("HOOKFLOW_DELIVERIES_QUEUE_URL", output("DeliveriesQueueUrl")),
        ("HOOKFLOW_ORDERED_QUEUE_URL", output("OrderedDeliveriesQueueUrl")),
        ("HOOKFLOW_SECRETS_PREFIX", parameter("SecretsPrefix")),
        ("HOOKFLOW_LOG_RETENTION_DAYS", parameter("LogRetentionDays")),
    ] {
        match value {
            Some(v) => names.push((var.to_string(), v)),
            None if var == "HOOKFLOW_TABLE" || var.ends_with("QUEUE_URL") && var != "HOOKFLOW_ORDERED_QUEUE_URL" => {
                anyhow::bail!("stack `{stack}` has no output for {var}: is it a Hookflow stack (template.yaml)?")
            }
            None => {}
        }
    }
    Ok((names, output("ApiUrl")))
}

pub fn run(opts: Options) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async move {
        let sdk = match opts.region.clone() {
            Some(r) => aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new(r)).load().await,
            None => crate::aws::sdk().await,
        };
        // The stack's names as its functions read them (`HOOKFLOW_*`): from
        // the stack, or the table given and the environment; one message
        // naming every one missing.
        let (names, api_url, what) = match &opts.from {
            From::Stack(stack) => {
                let (names, api) = stack_names(&sdk, stack).await?;
                (names, opts.api_url.clone().or(api), format!("stack {stack}"))
            }
            From::Table(t) => (vec![("HOOKFLOW_TABLE".to_string(), t.clone())], opts.api_url.clone(), format!("table {t}")),
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
        let token = match opts.admin_token {
            Some(t) if !t.trim().is_empty() => crate::admin_token(&t)?,
            _ => WebhookSecret::generate().expose().replacen("whsec_", "hfa_", 1),
        };
        let admin = Arc::new(Admin { backend, token: Some(token.clone()) });
        println!("hookflow console of {what}");
        let config = hookflow_console::Config {
            admin: hookflow_admin::router(admin),
            admin_token: token,
            triggers_base: api_url,
        };
        let console = listen(&opts.listen, config).await?;
        tokio::select! {
            r = console.serve() => r?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}
