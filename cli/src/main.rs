//! `hookflow`: the command line of Hookflow.
//!
//! This file only parses arguments and maps outcomes to exit codes; each
//! command lives in its own module.

mod dev;
mod dry_run;
mod flows;
mod sign;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
        #[arg(required = true)]
        paths: Vec<PathBuf>,
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
        /// {status, headers, body}. Steps without one get 200 and `{}`.
        #[arg(long = "response", value_name = "STEP=FILE")]
        responses: Vec<String>,
    },
    /// Print the Standard Webhooks `webhook-signature` header value for a
    /// body (several space-separated secrets give several signatures).
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
    /// Verify a Standard Webhooks signature. Exits 0 when valid, 1 with the
    /// reason when not.
    Verify {
        #[arg(long)]
        secret: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        timestamp: String,
        /// The `webhook-signature` header value.
        #[arg(long)]
        signature: String,
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
        #[arg(long, default_value = "127.0.0.1:8080")]
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
        /// `json` (default) or `pretty`.
        #[arg(long, default_value = "json", value_parser = ["json", "pretty"])]
        log_format: String,
    },
    /// Print the JSON Schema of flow files.
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { paths } => flows::validate(&paths),
        Command::Test { flow, sample, request, responses } => {
            dry_run::run(&flow, sample, request.as_deref(), &responses)
        }
        Command::Sign { secret, id, timestamp, file } => sign::sign(&secret, &id, timestamp, file.as_deref()),
        Command::Verify { secret, id, timestamp, signature, file, tolerance, now } => {
            sign::verify(&secret, &id, &timestamp, &signature, file.as_deref(), tolerance, now)
        }
        Command::Dev { flows, listen, data, secrets_file, allow_private_targets, log_format } => {
            dev::run(dev::Options {
                flows,
                listen,
                data,
                secrets_file,
                allow_private_targets,
                pretty: log_format == "pretty",
            })
        }
        Command::Schema => {
            print!("{}", hookflow_core::schema::flow_schema());
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
