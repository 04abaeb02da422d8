//! `hookflow`: the command line of Hookflow.
//!
//! This file only parses arguments and maps outcomes to exit codes; each
//! command lives in its own module.

#[macro_use]
mod output;
mod admin;
mod aws;
mod console;
mod dev;
mod dry_run;
mod flows;
mod records;
mod sign;
mod stack;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hookflow_local::store::LogFilter;

/// mimalloc rather than glibc's malloc: `hookflow dev` allocates on tokio
/// workers and frees on the store's writer thread, a pattern glibc's
/// per-thread arenas handle poorly (see docs/PERFORMANCE.md for the A/B).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "hookflow", version, about = "Webhook flows: receive, transform, deliver, sign.", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check flow files (YAML or JSON). For a directory, the *.yaml,
    /// *.yml and *.json files directly in it are checked. Prints one `file:line:col: field: message`
    /// line per problem; exits 1 when any file is invalid.
    Validate {
        /// Flow files, or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Refuse what a deployment refuses (a step's timeout past 20 s),
        /// as `apply` does; without it, that is a warning.
        #[arg(long)]
        aws: bool,
    },
    /// Dry-run a flow: print, as JSON lines, each step's decision and each
    /// fully rendered outbound request (secrets shown as ***). Sends nothing.
    /// Exits 1 when the run would fail.
    Test {
        /// The flow file.
        flow: PathBuf,
        /// Run on the trigger's `expect.body.sample`.
        #[arg(long, conflicts_with = "request")]
        sample: bool,
        /// A recorded request as JSON: {method, path, headers, query, body}.
        #[arg(long)]
        request: Option<PathBuf>,
        /// Stand in for a step's response: STEP=FILE, where FILE is JSON
        /// {status, headers, body}. Steps without one get 200 and `{}` (an AWS step,
        /// `{"message_id": …}`).
        #[arg(long = "response", value_name = "STEP=FILE")]
        responses: Vec<String>,
    },
    /// Print the Standard Webhooks `webhook-signature` header value for a
    /// body (several space-separated secrets give several signatures; a
    /// `whsk_` ed25519 key gives a `v1a` signature).
    Sign {
        /// `whsec_…` secret(s).
        #[arg(long)]
        secret: String,
        /// The message id (`webhook-id`).
        #[arg(long)]
        id: String,
        /// Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
        /// The body: a file, or `-` for standard input (default: empty).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Verify a Standard Webhooks signature (`--secret whsec_…`, or a
    /// `whpk_` public key for `v1a`). Exits 0 when valid, 1 with the reason
    /// when not.
    Verify {
        /// `whsec_…` secret(s), space-separated, or a `whpk_` public key.
        #[arg(long)]
        secret: String,
        /// The message id (`webhook-id`).
        #[arg(long)]
        id: String,
        /// The `webhook-timestamp` header value (Unix seconds).
        #[arg(long)]
        timestamp: String,
        /// The `webhook-signature` header value.
        #[arg(long)]
        signature: String,
        /// The body: a file, or `-` for standard input (default: empty).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Accepted clock skew in seconds.
        #[arg(long, default_value_t = 300)]
        tolerance: u64,
        /// Check against this time instead of now (Unix seconds).
        #[arg(long)]
        now: Option<i64>,
    },
    /// Run flows locally: the trigger endpoint, the run executor and the
    /// dispatcher in one process, on an embedded store (SQLite) that
    /// survives restarts. Logs JSON lines to stdout.
    Dev {
        /// Directory of flow files (reloaded on change).
        #[arg(long)]
        flows: PathBuf,
        /// Where the trigger endpoints and the admin API listen (HOST:PORT).
        #[arg(long, default_value = "127.0.0.1:8080", value_parser = host_port)]
        listen: String,
        /// Where the store lives.
        #[arg(long, default_value = ".hookflow")]
        data: PathBuf,
        /// Secrets as a JSON object or `.env` lines; `HOOKFLOW_SECRET_<NAME>`
        /// variables override it.
        #[arg(long)]
        secrets_file: Option<PathBuf>,
        /// Private networks outbound requests may reach besides loopback.
        #[arg(long = "allow-private-targets", value_name = "CIDR", num_args = 1..)]
        allow_private_targets: Vec<ipnet::IpNet>,
        /// `pretty` (one line a request, the warnings and the deliveries,
        /// with times) or `json` (every line, one JSON object each, for log
        /// tools); `auto` picks `pretty` at a terminal, else `json`.
        #[arg(long, default_value = "auto", value_parser = ["auto", "json", "pretty"])]
        log_format: String,
        /// How long the request log, published events and finished runs are
        /// kept (a run a delivery or a dead delivery still needs stays).
        #[arg(long, default_value = "7d")]
        retention: hookflow_core::duration::Span,
        /// How long a dead delivery stays listed and replayable (then it
        /// is forgotten, unsent).
        #[arg(long, default_value = "30d")]
        dead_retention: hookflow_core::duration::Span,
        /// The admin API's bearer token (generated and printed when absent).
        #[arg(long, env = "HOOKFLOW_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// Where Prometheus scrapes `GET /metrics` (requests, attempts,
        /// latency, the queue, dead deliveries), HOST:PORT; off when not
        /// given. Unauthenticated: keep it on loopback or a private network.
        #[arg(long, value_name = "ADDR", value_parser = host_port)]
        metrics: Option<String>,
        /// Where the console (the browser view) listens; `off` for none.
        /// The start prints a one-time sign-in link to it.
        #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR", value_parser = host_port_or_off)]
        console: String,
        /// Retry delays of event deliveries after the first attempt
        /// (default: the Standard Webhooks schedule, 5s,5m,30m,2h,5h,10h,14h,20h,24h).
        #[arg(long, value_delimiter = ',', value_name = "DELAYS")]
        event_retry: Vec<hookflow_core::duration::Span>,
        /// Retry delays of the subscription verification request (default
        /// over 24 h); when they run out the subscription is `failed`.
        #[arg(long, value_delimiter = ',', value_name = "DELAYS")]
        verification_retry: Vec<hookflow_core::duration::Span>,
        /// A subscription whose every attempt fails for this long is disabled.
        #[arg(long, default_value = "5d")]
        disable_after: hookflow_core::duration::Span,
        /// How long a rotated-out signing key keeps signing.
        #[arg(long, default_value = "24h")]
        rotation_grace: hookflow_core::duration::Span,
        /// The AWS destinations (SQS queues, SNS topics, EventBridge buses)
        /// subscriptions and steps may send to: ARN patterns, `*` any run
        /// of characters. Sent with your AWS configuration
        /// (`AWS_ENDPOINT_URL` for an emulator such as moto).
        #[arg(
            long,
            env = "HOOKFLOW_DESTINATIONS",
            hide_env_values = true,
            default_value = "*",
            value_name = "ARN_PATTERNS"
        )]
        destinations: String,
        /// How long a request's head may take to arrive, and then its body
        /// (408); an idle connection is closed after it.
        #[arg(long, default_value = "15s")]
        read_timeout: hookflow_core::duration::Span,
        /// Trigger requests handled at once; past it `503` with
        /// `Retry-After: 1`.
        #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
        max_inflight: u32,
        /// Trigger requests of one client (IP address; IPv6: its /64)
        /// handled at once; past it `429` with `Retry-After: 1`. 0: no
        /// bound (behind a proxy every client has its address).
        #[arg(long, default_value_t = 64)]
        max_inflight_per_client: u32,
        /// Connections of one client open at once; past it a new one is
        /// closed. 0: no bound.
        #[arg(long, default_value_t = 256)]
        max_connections_per_client: u32,
    },
    /// The console of a deployed stack, on this machine: the same pages as
    /// `hookflow dev`'s, over the stack's table, queues and secrets with
    /// your AWS credentials. With `--stack`, the stack's outputs and
    /// parameters name them; with `--table`, the `HOOKFLOW_*` variables
    /// (the queue URLs, the secrets prefix) of the environment do.
    #[command(group = clap::ArgGroup::new("stack_or_table").required(true).args(["stack", "table"]))]
    Console {
        /// The CloudFormation stack `sam deploy` made (its outputs name the
        /// table, the queues and the API URL; its parameters the secrets
        /// prefix). Wins over `--table`. One of the two is needed.
        #[arg(long)]
        stack: Option<String>,
        /// The stack's DynamoDB table (output `TableName`).
        #[arg(long, env = "HOOKFLOW_TABLE", hide_env_values = true)]
        table: Option<String>,
        /// The stack's region (else the AWS configuration's: `AWS_REGION`,
        /// the profile).
        #[arg(long)]
        region: Option<String>,
        /// Where the console listens (HOST:PORT; port 0: any free one).
        #[arg(long, default_value = "127.0.0.1:0", value_parser = host_port)]
        listen: String,
        /// The stack's HTTP API URL (output `ApiUrl`), for the trigger URLs shown.
        #[arg(long)]
        api_url: Option<String>,
        /// A token that also signs in (generated when absent; the printed
        /// link signs in once).
        #[arg(long, env = "HOOKFLOW_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
    },
    /// Subscriptions (endpoints subscribed to event types), through the
    /// admin API: of a running `hookflow dev` (`--url`, `--admin-token`),
    /// or of a deployment (`--stack` or `--table`, with your AWS
    /// credentials).
    Subscriptions {
        #[command(subcommand)]
        command: SubscriptionsCommand,
        #[command(flatten)]
        to: AdminTarget,
    },
    /// Events, through the admin API (as `subscriptions`).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
        #[command(flatten)]
        to: AdminTarget,
    },
    /// Prints `export HOOKFLOW_…='…'` lines from a deployed stack's outputs
    /// (the table, queues, API and admin URLs) for
    /// `eval "$(hookflow stack-env --stack hookflow)"`.
    StackEnv {
        /// The CloudFormation stack `sam deploy` made.
        #[arg(long)]
        stack: String,
        /// The stack's region (else the AWS configuration's: `AWS_REGION`,
        /// the profile).
        #[arg(long)]
        region: Option<String>,
    },
    /// The request log: inbound requests, steps, attempts (of `hookflow dev`,
    /// or of a deployment with `--table`).
    Logs {
        /// The data directory of `hookflow dev`.
        #[arg(long, default_value = ".hookflow")]
        data: PathBuf,
        /// Read a deployment's DynamoDB table (output `TableName`) instead of `--data`.
        #[arg(long, conflicts_with = "data")]
        table: Option<String>,
        /// With --table: whose requests (required unless --run).
        #[arg(long)]
        tenant: Option<String>,
        /// Only this flow's entries.
        #[arg(long)]
        flow: Option<String>,
        /// Only this run's entries (its whole timeline).
        #[arg(long)]
        run: Option<String>,
        /// `failed`: only rejections, failed attempts and failed runs.
        #[arg(long, value_parser = ["failed"])]
        status: Option<String>,
        /// Only entries newer than this, e.g. `1h`.
        #[arg(long)]
        since: Option<String>,
        /// One JSON object a line.
        #[arg(long)]
        json: bool,
        /// Oldest first (the default is newest first, as the console).
        #[arg(long)]
        reverse: bool,
    },
    /// Runs (of `hookflow dev`, or of a deployment with `--table`).
    Runs {
        /// What to do with runs.
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Deliveries that were halted or ran out of attempts.
    Dead {
        /// What to do with dead deliveries.
        #[command(subcommand)]
        command: DeadCommand,
    },
    /// Print the JSON Schema of flow files.
    Schema,
    /// Validate flows and write them to the deployment's DynamoDB table as
    /// new versions (only those that changed). Nothing is written when any
    /// flow is invalid. AWS credentials and region come from the usual
    /// places; `AWS_ENDPOINT_URL` points it at an emulator.
    Apply {
        /// Directory (or files) of flows.
        #[arg(long, required = true, num_args = 1..)]
        flows: Vec<PathBuf>,
        /// The stack's table (output `TableName`).
        #[arg(long, env = "HOOKFLOW_TABLE", hide_env_values = true)]
        table: String,
        /// Show what would change, as a diff; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// The stack's API URL (output `ApiUrl`), to print each trigger's URL.
        #[arg(long, env = "HOOKFLOW_API_URL", hide_env_values = true)]
        api_url: Option<String>,
    },
    /// An AWS emulator for trying the functions by hand: `up` creates the
    /// template's table and queues at `AWS_ENDPOINT_URL` (see scripts/local-aws).
    LocalAws {
        /// What to do with the emulator.
        #[command(subcommand)]
        command: LocalAwsCommand,
    },
}

#[derive(Subcommand)]
enum LocalAwsCommand {
    /// Create `{prefix}-table`, `{prefix}-runs`, `{prefix}-deliveries`, the
    /// FIFO queue of per-key ordered deliveries `{prefix}-ordered.fifo`, and
    /// their DLQs.
    Up {
        /// The names' prefix.
        #[arg(long, default_value = "hookflow")]
        prefix: String,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// A run's steps and attempts as a timeline.
    Show {
        /// The run's id, whole (as `hookflow logs` prints it).
        run_id: String,
        /// The data directory of `hookflow dev`.
        #[arg(long, default_value = ".hookflow")]
        data: PathBuf,
        /// Read a deployment's DynamoDB table (output `TableName`) instead of `--data`.
        #[arg(long, conflicts_with = "data")]
        table: Option<String>,
        /// The run's state and timeline as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DeadCommand {
    /// List dead deliveries.
    List {
        /// The data directory of `hookflow dev`.
        #[arg(long, default_value = ".hookflow")]
        data: PathBuf,
        /// Read a deployment's DynamoDB table (output `TableName`) instead of `--data`.
        #[arg(long, conflicts_with = "data")]
        table: Option<String>,
        /// Only this flow's.
        #[arg(long)]
        flow: Option<String>,
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// One JSON array (`[]` when there are none).
        #[arg(long)]
        json: bool,
        /// Oldest first (the default is newest first, as the console).
        #[arg(long)]
        reverse: bool,
    },
    /// Queue dead deliveries again, with their original webhook-id.
    Replay {
        /// The delivery id (see `dead list`).
        id: Option<String>,
        /// Every dead delivery (of `--flow`, if given).
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// Only this flow's (with --all).
        #[arg(long)]
        flow: Option<String>,
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// The data directory of `hookflow dev`.
        #[arg(long, default_value = ".hookflow")]
        data: PathBuf,
        /// Read a deployment's DynamoDB table (output `TableName`) instead of `--data`.
        #[arg(long, conflicts_with = "data")]
        table: Option<String>,
        /// With --table: the stack's deliveries queue (output `DeliveriesQueueUrl`).
        #[arg(long, env = "HOOKFLOW_DELIVERIES_QUEUE_URL", hide_env_values = true, requires = "table")]
        deliveries_queue_url: Option<String>,
        /// Wait up to this long (e.g. `30s`) for each replayed delivery's
        /// next attempt and print how it ended; exits 1 unless every one
        /// was delivered.
        #[arg(long, value_name = "DURATION")]
        wait: Option<hookflow_core::duration::Span>,
    },
}

/// A `--listen` address: `HOST:PORT`, said how when a port or a host was
/// given alone.
fn host_port(given: &str) -> Result<String, String> {
    let given = given.trim();
    if given.parse::<u16>().is_ok() {
        return Err(format!(
            "`{given}` is a port alone: give HOST:PORT, such as 127.0.0.1:{given} (this machine only) or 0.0.0.0:{given} (every interface)"
        ));
    }
    let port = given.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
    match port {
        Some((host, Ok(_))) if !host.is_empty() => Ok(given.to_string()),
        _ => Err(format!("`{given}` is not HOST:PORT: give an address and a port, such as 127.0.0.1:8080")),
    }
}

/// `--console`: HOST:PORT, or `off`.
fn host_port_or_off(given: &str) -> Result<String, String> {
    if given.trim() == "off" { Ok("off".into()) } else { host_port(given) }
}

/// Where the admin commands go.
#[derive(clap::Args)]
struct AdminTarget {
    /// The running `hookflow dev` (HOST:PORT or a URL).
    #[arg(long, global = true, default_value = "127.0.0.1:8080", env = "HOOKFLOW_DEV_URL", hide_env_values = true)]
    url: String,
    /// `hookflow dev`'s admin token.
    #[arg(long, global = true, env = "HOOKFLOW_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A deployment instead: its CloudFormation stack.
    #[arg(long, global = true)]
    stack: Option<String>,
    /// A deployment instead: its table (the rest from `HOOKFLOW_*`). Not
    /// read from HOOKFLOW_TABLE: a shell set up for a deployment still
    /// reaches `hookflow dev` unless told otherwise.
    #[arg(long, global = true)]
    table: Option<String>,
    /// The deployment's region (else the AWS configuration's).
    #[arg(long, global = true)]
    region: Option<String>,
}

impl AdminTarget {
    fn target(self) -> admin::Target {
        match (self.stack, self.table) {
            (Some(stack), _) => admin::Target::Deployment { from: console::From::Stack(stack), region: self.region },
            (None, Some(table)) => admin::Target::Deployment { from: console::From::Table(table), region: self.region },
            (None, None) => {
                let url = if self.url.contains("://") { self.url } else { format!("http://{}", self.url) };
                admin::Target::Dev { url, token: self.admin_token }
            }
        }
    }
}

#[derive(Subcommand)]
enum SubscriptionsCommand {
    /// One line a subscription: id, status, URL, event types.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// The API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Subscribe an endpoint; it is `pending` until it echoes the token
    /// Hookflow sends it. Prints the subscription with its secret (shown
    /// this once).
    Create {
        /// The endpoint's URL, or the ARN of an SQS queue, SNS topic or
        /// EventBridge bus the deployment allows.
        #[arg(long)]
        endpoint: String,
        /// Event types, comma-separated (`contact.*,payment.received`).
        #[arg(long, value_delimiter = ',', required = true)]
        types: Vec<String>,
        /// Free text for people.
        #[arg(long)]
        description: Option<String>,
        /// `ed25519` to sign with an asymmetric key (default: `whsec_`).
        #[arg(long)]
        signing: Option<String>,
        /// Deliver one key at a time, in order: the key's template
        /// (`{{ data.customer_id }}`).
        #[arg(long)]
        ordered_by: Option<String>,
        /// Its tenant (default `default`).
        #[arg(long)]
        tenant: Option<String>,
        /// Only the selected events this JSON filter matches
        /// (`{"data": {"amount": {"$gte": 100}}}`; README "Filters").
        #[arg(long)]
        filter: Option<String>,
        /// Headers for each delivery, as JSON: text, or a secret by name
        /// (`{"Authorization": {"secret": "crm_token", "prefix": "Bearer "}}`).
        #[arg(long)]
        headers: Option<String>,
        /// Each event reshaped for the endpoint, as JSON
        /// (`{"body": {"json": {"text": "{{ data.id }}"}}}`; README
        /// "Transformations").
        #[arg(long)]
        transform: Option<String>,
        /// At most this many requests a second to the endpoint (a
        /// fraction for slower: `0.5`); what is over waits its turn.
        #[arg(long, value_name = "PER_SECOND")]
        rate_limit: Option<f64>,
        /// How many may go at once after a pause (with `--rate-limit`;
        /// default 1).
        #[arg(long, requires = "rate_limit")]
        burst: Option<u32>,
        /// At most this many requests in flight to the endpoint at once.
        #[arg(long)]
        max_in_flight: Option<u32>,
    },
    /// A dry run of a transform (the subscription's, or `--transform`) on
    /// an event (`--event`, else a recent one it takes, else a sample):
    /// the request before and after. Sends and saves nothing.
    Preview {
        /// The subscription's id.
        id: String,
        /// The transform to try, as JSON.
        #[arg(long)]
        transform: Option<String>,
        /// The event to try it on, as JSON (`{"type": "order.paid", "data": {…}}`).
        #[arg(long)]
        event: Option<String>,
    },
    /// Changes a subscription's event types, description, filter,
    /// headers, transform or limits.
    Update {
        /// The subscription's id.
        id: String,
        /// New event types, comma-separated.
        #[arg(long, value_delimiter = ',')]
        types: Option<Vec<String>>,
        /// New free text for people.
        #[arg(long)]
        description: Option<String>,
        /// A new JSON filter.
        #[arg(long, conflicts_with = "no_filter")]
        filter: Option<String>,
        /// Remove the filter: every selected event.
        #[arg(long)]
        no_filter: bool,
        /// New headers, as JSON (all of them).
        #[arg(long, conflicts_with = "no_headers")]
        headers: Option<String>,
        /// Remove every header of its own.
        #[arg(long)]
        no_headers: bool,
        /// A new transform, as JSON.
        #[arg(long, conflicts_with = "no_transform")]
        transform: Option<String>,
        /// Remove the transform: events go as published.
        #[arg(long)]
        no_transform: bool,
        /// At most this many requests a second to the endpoint (a
        /// fraction for slower: `0.5`); what is over waits its turn.
        #[arg(long, value_name = "PER_SECOND", conflicts_with = "no_rate_limit")]
        rate_limit: Option<f64>,
        /// How many may go at once after a pause (with `--rate-limit`;
        /// default 1).
        #[arg(long, requires = "rate_limit")]
        burst: Option<u32>,
        /// At most this many requests in flight to the endpoint at once.
        #[arg(long, conflicts_with = "no_max_in_flight")]
        max_in_flight: Option<u32>,
        /// Remove the rate limit.
        #[arg(long)]
        no_rate_limit: bool,
        /// Remove the bound on requests in flight.
        #[arg(long)]
        no_max_in_flight: bool,
    },
    /// One subscription, as JSON.
    Show {
        /// The subscription's id.
        id: String,
    },
    /// Starts a new verification round (a new token sent to the endpoint).
    Verify {
        /// The subscription's id.
        id: String,
    },
    /// Enables a disabled subscription; `--replay` sends what it missed.
    Enable {
        /// The subscription's id.
        id: String,
        /// Deliver the matching events it missed since it was disabled.
        #[arg(long)]
        replay: bool,
    },
    /// Disables a subscription by hand.
    Disable {
        /// The subscription's id.
        id: String,
    },
    /// A new signing secret; the old one signs too until its grace ends.
    Rotate {
        /// The subscription's id.
        id: String,
    },
    /// Deletes a subscription (its queued deliveries are dropped).
    Delete {
        /// The subscription's id.
        id: String,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Publishes an event: one signed delivery per matching active
    /// subscription, and a run of each flow its type starts.
    Publish {
        /// The event's type (`contact.created`).
        #[arg(long = "type")]
        kind: String,
        /// Its data, as JSON.
        #[arg(long, default_value = "{}")]
        data: String,
        /// Its id: the idempotency key (a repeat within 24 h sends
        /// nothing). Give one whenever you may retry.
        #[arg(long)]
        id: Option<String>,
        /// Its tenant (default `default`).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// One line an event: id, type, data (newest first).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// The API's JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A subscription's limits as the admin API takes them.
fn limits(body: &mut serde_json::Value, rate_limit: Option<f64>, burst: Option<u32>, max_in_flight: Option<u32>) {
    if let Some(per_second) = rate_limit {
        body["rate_limit"] = serde_json::json!({"per_second": per_second, "burst": burst.unwrap_or(1)});
    }
    if let Some(m) = max_in_flight {
        body["max_in_flight"] = m.into();
    }
}

/// The admin API request of a subscriptions command.
fn subscriptions_call(command: SubscriptionsCommand) -> Result<(admin::Call, admin::Print), String> {
    use admin::{Call, Print};
    use hookflow_console::api::encode;
    let one = |id: &str, then: &str| format!("/v1/subscriptions/{}{then}", encode(id));
    Ok(match command {
        SubscriptionsCommand::List { tenant, json } => {
            let query = tenant.map(|t| format!("?tenant={}", encode(&t))).unwrap_or_default();
            (Call::get(format!("/v1/subscriptions{query}")), if json { Print::Json } else { Print::Subscriptions })
        }
        SubscriptionsCommand::Create {
            endpoint,
            types,
            description,
            signing,
            ordered_by,
            tenant,
            filter,
            headers,
            transform,
            rate_limit,
            burst,
            max_in_flight,
        } => {
            let mut body = serde_json::json!({"url": endpoint, "event_types": types});
            limits(&mut body, rate_limit, burst, max_in_flight);
            for (key, given) in [("filter", filter), ("headers", headers), ("transform", transform)] {
                if let Some(v) = given {
                    body[key] = json_arg(&format!("--{key}"), &v)?;
                }
            }
            for (k, v) in [("description", description), ("signing", signing), ("tenant", tenant)] {
                if let Some(v) = v {
                    body[k] = v.into();
                }
            }
            if let Some(key) = ordered_by {
                body["ordering"] = "per_key".into();
                body["key"] = key.into();
            }
            (Call::post("/v1/subscriptions", body), Print::Json)
        }
        SubscriptionsCommand::Update {
            id,
            types,
            description,
            filter,
            no_filter,
            headers,
            no_headers,
            transform,
            no_transform,
            rate_limit,
            burst,
            max_in_flight,
            no_rate_limit,
            no_max_in_flight,
        } => {
            let mut body = serde_json::json!({});
            limits(&mut body, rate_limit, burst, max_in_flight);
            if no_rate_limit {
                body["rate_limit"] = serde_json::Value::Null;
            }
            if no_max_in_flight {
                body["max_in_flight"] = serde_json::Value::Null;
            }
            if let Some(t) = types {
                body["event_types"] = t.into();
            }
            if let Some(d) = description {
                body["description"] = d.into();
            }
            let changes = [
                ("filter", (filter, no_filter)),
                ("headers", (headers, no_headers)),
                ("transform", (transform, no_transform)),
            ];
            for (key, (given, none)) in changes {
                match (given, none) {
                    (Some(v), _) => body[key] = json_arg(&format!("--{key}"), &v)?,
                    (None, true) => body[key] = serde_json::Value::Null,
                    (None, false) => {}
                }
            }
            (Call { method: "PATCH", path: one(&id, ""), body: Some(body) }, Print::Json)
        }
        SubscriptionsCommand::Preview { id, transform, event } => {
            let mut body = serde_json::json!({});
            for (key, given) in [("transform", transform), ("event", event)] {
                if let Some(v) = given {
                    body[key] = json_arg(&format!("--{key}"), &v)?;
                }
            }
            (Call::post(one(&id, "/preview"), body), Print::Json)
        }
        SubscriptionsCommand::Show { id } => (Call::get(one(&id, "")), Print::Json),
        SubscriptionsCommand::Verify { id } => (Call::post(one(&id, "/verify"), serde_json::json!({})), Print::Json),
        SubscriptionsCommand::Enable { id, replay } => {
            (Call::post(one(&id, "/enable"), serde_json::json!({"replay": replay})), Print::Json)
        }
        SubscriptionsCommand::Disable { id } => (Call::post(one(&id, "/disable"), serde_json::json!({})), Print::Json),
        SubscriptionsCommand::Rotate { id } => {
            (Call::post(one(&id, "/rotate-secret"), serde_json::json!({})), Print::Json)
        }
        SubscriptionsCommand::Delete { id } => (Call::delete(one(&id, "")), Print::Json),
    })
}

/// A JSON argument (`--filter`, `--headers`), or what is wrong with it.
fn json_arg(flag: &str, text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("{flag} is not JSON: {e} (README: \"Filters\", \"Headers\", \"Transformations\")"))
}

/// The admin API request of an events command.
fn events_call(command: EventsCommand) -> Result<(admin::Call, admin::Print), String> {
    use admin::{Call, Print};
    use hookflow_console::api::encode;
    Ok(match command {
        EventsCommand::Publish { kind, data, id, tenant } => {
            let data: serde_json::Value =
                serde_json::from_str(&data).map_err(|e| format!("--data is not JSON: {e}"))?;
            let mut body = serde_json::json!({"type": kind, "data": data});
            for (k, v) in [("id", id), ("tenant", tenant)] {
                if let Some(v) = v {
                    body[k] = v.into();
                }
            }
            (Call::post("/v1/events", body), Print::Json)
        }
        EventsCommand::List { tenant, json } => {
            let query = tenant.map(|t| format!("?tenant={}", encode(&t))).unwrap_or_default();
            (Call::get(format!("/v1/events{query}")), if json { Print::Json } else { Print::Events })
        }
    })
}

/// The fewest characters an admin token may have: a shorter one is
/// guessed too soon.
const MIN_ADMIN_TOKEN: usize = 16;

/// `--admin-token` (or `HOOKFLOW_ADMIN_TOKEN`), trimmed, if it is long
/// enough to stand for the admin.
fn admin_token(given: &str) -> anyhow::Result<String> {
    let token = given.trim();
    if token.chars().count() < MIN_ADMIN_TOKEN {
        anyhow::bail!(
            "--admin-token (or HOOKFLOW_ADMIN_TOKEN): {} characters; use at least {MIN_ADMIN_TOKEN} \
             (e.g. `openssl rand -hex 16`), or leave it out and one is generated and printed",
            token.chars().count()
        );
    }
    Ok(token.to_string())
}

fn source(data: PathBuf, table: Option<String>, deliveries_queue_url: Option<String>) -> records::Source {
    match table {
        Some(table) => records::Source::Aws { table, deliveries_queue_url },
        None => records::Source::Local(data),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { paths, aws } => flows::validate(&paths, aws),
        Command::Test { flow, sample, request, responses } => {
            dry_run::run(&flow, sample, request.as_deref(), &responses)
        }
        Command::Sign { secret, id, timestamp, file } => sign::sign(&secret, &id, timestamp, file.as_deref()),
        Command::Verify { secret, id, timestamp, signature, file, tolerance, now } => {
            sign::verify(&secret, &id, &timestamp, &signature, file.as_deref(), tolerance, now)
        }
        Command::Dev {
            flows,
            listen,
            data,
            secrets_file,
            allow_private_targets,
            log_format,
            retention,
            dead_retention,
            admin_token,
            metrics,
            console,
            event_retry,
            verification_retry,
            disable_after,
            rotation_grace,
            destinations,
            read_timeout,
            max_inflight,
            max_inflight_per_client,
            max_connections_per_client,
        } => {
            let spans = |v: &[hookflow_core::duration::Span]| v.iter().map(|s| s.get()).collect::<Vec<_>>();
            let mut subscriptions = hookflow_core::subscription::Settings::default()
                .with_schedules(&spans(&event_retry), &spans(&verification_retry));
            subscriptions.disable_after = disable_after.get();
            subscriptions.rotation_grace = rotation_grace.get();
            subscriptions.destinations = hookflow_core::destination::Allowed::parse(&destinations);
            dev::run(dev::Options {
                flows,
                listen,
                data,
                secrets_file,
                allow_private_targets,
                pretty: log_format == "pretty"
                    || (log_format == "auto" && std::io::IsTerminal::is_terminal(&std::io::stdout())),
                retention: retention.get(),
                dead_retention: dead_retention.get(),
                admin_token,
                console: (console != "off").then_some(console),
                metrics,
                subscriptions,
                limits: hookflow_local::dev::Limits {
                    read_timeout: read_timeout.get(),
                    max_inflight: max_inflight as usize,
                    max_inflight_per_client: max_inflight_per_client as usize,
                    max_connections_per_client: max_connections_per_client as usize,
                    ..Default::default()
                },
            })
        }
        Command::Console { stack, table, region, listen, api_url, admin_token } => {
            // Clap requires one of the two.
            let from = match (stack, table) {
                (Some(stack), _) => console::From::Stack(stack),
                (None, table) => console::From::Table(table.unwrap_or_default()),
            };
            console::run(console::Options { from, region, listen, api_url, admin_token })
        }
        Command::StackEnv { stack, region } => stack::env(&stack, region),
        Command::Subscriptions { command, to } => match subscriptions_call(command) {
            Ok((call, print)) => admin::run(to.target(), call, print),
            Err(e) => Err(anyhow::anyhow!(e)),
        },
        Command::Events { command, to } => match events_call(command) {
            Ok((call, print)) => admin::run(to.target(), call, print),
            Err(e) => Err(anyhow::anyhow!(e)),
        },
        Command::Logs { data, table, tenant, flow, run, status, since, json, reverse } => records::logs(
            source(data, table, None),
            tenant.as_deref(),
            LogFilter { flow_id: flow, run_id: run, failed_only: status.is_some(), ..Default::default() },
            since.as_deref(),
            records::Shown { json, reverse },
        ),
        Command::Runs { command: RunsCommand::Show { run_id, data, table, json } } => {
            records::run_show(source(data, table, None), &run_id, json)
        }
        Command::Dead { command: DeadCommand::List { data, table, flow, tenant, json, reverse } } => {
            records::dead_list(
                source(data, table, None),
                flow.as_deref(),
                tenant.as_deref(),
                records::Shown { json, reverse },
            )
        }
        Command::Dead {
            command: DeadCommand::Replay { id, all, flow, tenant, data, table, deliveries_queue_url, wait },
        } => records::dead_replay(
            source(data, table, deliveries_queue_url),
            records::Chosen { id: id.as_deref(), all, flow: flow.as_deref(), tenant: tenant.as_deref() },
            wait.map(|w| w.get()),
        ),
        Command::Apply { flows, table, dry_run, api_url } => aws::apply(&flows, &table, dry_run, api_url.as_deref()),
        Command::LocalAws { command: LocalAwsCommand::Up { prefix } } => aws::local_up(&prefix),
        Command::Schema => {
            output::text(&hookflow_core::schema::flow_schema());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hookflow: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_listen_address_is_host_and_port_and_says_how_when_not() {
        assert_eq!(super::host_port("127.0.0.1:8080").as_deref(), Ok("127.0.0.1:8080"));
        assert_eq!(super::host_port("[::1]:0").as_deref(), Ok("[::1]:0"));
        assert_eq!(super::host_port("localhost:9000").as_deref(), Ok("localhost:9000"));
        let port = super::host_port("8080").unwrap_err();
        assert!(port.contains("give HOST:PORT, such as 127.0.0.1:8080"), "{port}");
        assert!(super::host_port("localhost").unwrap_err().contains("not HOST:PORT"));
        assert!(super::host_port(":80").is_err() && super::host_port("h:99999").is_err());
        assert_eq!(super::host_port_or_off("off").as_deref(), Ok("off"));
    }

    use super::*;
    use clap::CommandFactory;

    /// Every argument of every command says what it is, and no help text
    /// shows an unset variable as set to nothing (`[env: NAME=]`).
    #[test]
    fn every_argument_of_every_command_says_what_it_is() {
        fn walk(cmd: &mut clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if !matches!(id, "help" | "version") && a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            let help = cmd.render_long_help().to_string();
            assert!(!help.contains("=]"), "{path}: an unset variable shown as empty:\n{help}");
            for sub in cmd.get_subcommands_mut() {
                let name = format!("{path} {}", sub.get_name());
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&mut Cli::command(), "hookflow", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }
}
