//! `hookflow dev`: run flows locally on the embedded store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use std::sync::Arc;

use hookflow_admin::Admin;
use hookflow_core::signature::WebhookSecret;
use hookflow_core::ssrf::TargetPolicy;
use hookflow_core::subscription::Settings;
use hookflow_local::admin::DevBackend;
use hookflow_local::dev::{Limits, banner, prune, serve, serve_metrics, watch};
use hookflow_local::flows::Flows;
use hookflow_local::flows::load_dir;
use hookflow_local::logger::{Format, Logger};
use hookflow_local::secrets::Secrets;
use hookflow_local::{Runtime, RuntimeConfig};
use ipnet::IpNet;

pub struct Options {
    pub flows: PathBuf,
    pub listen: String,
    pub data: PathBuf,
    pub secrets_file: Option<PathBuf>,
    pub allow_private_targets: Vec<IpNet>,
    pub pretty: bool,
    pub retention: std::time::Duration,
    /// How long a dead delivery stays listed and replayable.
    pub dead_retention: std::time::Duration,
    /// The admin API's bearer token; generated when absent.
    pub admin_token: Option<String>,
    /// Where the console listens, if anywhere.
    pub console: Option<String>,
    /// Where `GET /metrics` listens, if anywhere.
    pub metrics: Option<String>,
    pub subscriptions: Settings,
    /// The server's read timeout and bounds.
    pub limits: Limits,
}

/// A warning for each secret a loaded flow reads that is not set, naming
/// the flows and how to set it (their requests are refused, or their steps
/// fail, until it is).
fn unset_secrets(flows: &Flows, secrets: &Secrets) -> Vec<String> {
    let mut readers: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for flow in flows.all() {
        for name in flow.secret_names() {
            readers.entry(name).or_default().push(format!("{}/{}", flow.flow.tenant, flow.flow.id));
        }
    }
    readers
        .into_iter()
        .filter(|(name, _)| secrets.get(name).is_none())
        .map(|(name, flows)| {
            format!(
                "warning: secret `{name}` (read by {}) is not set: {}",
                flows.join(", "),
                hookflow_local::secrets::how_to_set(&name)
            )
        })
        .collect()
}

pub fn run(opts: Options) -> Result<ExitCode> {
    let dir = opts.flows.display();
    if !opts.flows.exists() {
        anyhow::bail!(
            "the flows directory {dir} does not exist: create it (mkdir -p {dir}) and add a flow file, \
             or point --flows at yours (examples/ has four)"
        );
    }
    if !opts.flows.is_dir() {
        anyhow::bail!(
            "--flows takes a directory, and {dir} is a file: give its directory (or check it alone with `hookflow validate {dir}`)"
        );
    }
    let flows = match load_dir(&opts.flows) {
        Ok(f) => {
            if f.is_empty() {
                // Subscriptions and events need no flow: start, and say so.
                eprintln!(
                    "warning: no flow files (*.yaml, *.yml, *.json) in {}: no trigger is served until one is added \
                     (the admin API, subscriptions and events work without)",
                    opts.flows.display()
                );
            }
            for w in f.iter().flat_map(|c| &c.warnings) {
                eprintln!("warning: {w}");
            }
            f
        }
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            eprintln!("hookflow dev: not starting: fix the flows above");
            return Ok(ExitCode::FAILURE);
        }
    };
    let flows = Flows::new(flows)?;
    let (secrets, warnings) = Secrets::load(opts.secrets_file.as_deref())?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    for line in unset_secrets(&flows, &secrets) {
        eprintln!("{line}");
    }
    // The dev server may reach loopback (receivers on this machine) and
    // whatever the user opts into; everything else private stays refused.
    let mut allow: Vec<IpNet> = vec!["127.0.0.0/8".parse()?, "::1/128".parse()?];
    allow.extend(opts.allow_private_targets);
    let logger = Logger::new(
        if opts.pretty { Format::Pretty } else { Format::Json },
        secrets.values().map(str::to_string).collect::<Vec<_>>().into_iter(),
    )
    .background();
    let config = RuntimeConfig {
        data_dir: opts.data.clone(),
        target_policy: TargetPolicy::allowing(allow),
        secrets,
        logger,
        concurrency: 64,
        subscriptions: opts.subscriptions,
    };
    let (token, generated) = match opts.admin_token {
        Some(t) if !t.trim().is_empty() => (crate::admin_token(&t)?, false),
        _ => (WebhookSecret::generate().expose().replacen("whsec_", "hfa_", 1), true),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async move {
        let rt = Runtime::new(config, flows)?;
        let listener = tokio::net::TcpListener::bind(&opts.listen).await.with_context(|| {
            format!("cannot listen on {} (give --listen another HOST:PORT; port 0 takes any free one)", opts.listen)
        })?;
        let addr = listener.local_addr()?;
        let backend = DevBackend::new(rt.clone(), opts.flows.clone());
        let admin = Arc::new(Admin { backend, token: Some(token.clone()) });
        // Both addresses are taken before anything is printed: a port in
        // use is the one thing said.
        let console = match &opts.console {
            Some(at) => Some(
                crate::console::listen(
                    at,
                    hookflow_console::Config {
                        admin: hookflow_admin::router(admin.clone()),
                        admin_token: token.clone(),
                        triggers_base: Some(format!("http://{addr}")),
                    },
                )
                .await?,
            ),
            None => None,
        };
        let metrics = match &opts.metrics {
            Some(at) => Some(tokio::net::TcpListener::bind(at).await.with_context(|| {
                format!("cannot listen on {at} for --metrics (give another HOST:PORT; port 0 takes any free one)")
            })?),
            None => None,
        };
        println!("{}", banner(&rt, addr));
        if generated {
            println!("admin API: http://{addr}/v1 (Authorization: Bearer {token})");
        } else {
            println!("admin API: http://{addr}/v1 (bearer token from --admin-token / HOOKFLOW_ADMIN_TOKEN)");
        }
        if let Some(console) = console {
            crate::console::announce(&console);
            tokio::spawn(async move {
                if let Err(e) = console.serve().await {
                    eprintln!("the console stopped: {e}");
                }
            });
        }
        if let Some(listener) = metrics {
            println!("metrics: http://{}/metrics (Prometheus text)", listener.local_addr()?);
            let rt = rt.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_metrics(rt, listener).await {
                    eprintln!("the metrics endpoint stopped: {e}");
                }
            });
        }
        tokio::spawn(rt.clone().work());
        tokio::spawn(watch(rt.clone(), opts.flows.clone(), addr));
        tokio::spawn(prune(rt.clone(), opts.retention, opts.dead_retention));
        tokio::select! {
            r = serve(rt, admin, listener, opts.limits) => r?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}
