//! # hookflow-console
//!
//! The browser view of a Hookflow deployment: its flows and trigger URLs,
//! the request log (with a live tail), runs, dead deliveries and
//! subscriptions. Server-rendered HTML (minijinja, the template engine
//! flows use), one small stylesheet and one small script, all embedded in
//! the binary: it works offline, with no Node and no CDN.
//!
//! The console reads and changes nothing itself: every page is made from
//! admin API answers and every button is an admin API request, made in the
//! process through the API's own router ([`api::Api`]). So `hookflow dev`
//! and a deployed stack get the same console over the same backend trait.
//!
//! | module | role |
//! |---|---|
//! | [`session`] | one-time sign-in codes, sessions, CSRF tokens |
//! | `api` | the admin API, called in the process |
//! | `pages` | the routes: each page and each action |
//! | `pages::flow` | the flow page: source checked inline, dry run, a real test request |
//! | `replays` | replaying every dead delivery of a filter, with progress |
//! | `view` | admin API JSON → what a template shows |
//! | `assets` | the embedded templates, stylesheet and script |
//!
//! Security: sign-in by a one-time link or the admin token; a session
//! cookie `HttpOnly; SameSite=Strict`; a CSRF token on every change; a
//! Content-Security-Policy that allows only the console's own script and
//! style; secrets are never rendered (the log is redacted before it is
//! stored; a subscription's new secret is shown once, on the answer to the
//! request that made it).

pub mod api;
mod assets;
mod pages;
mod replays;
pub mod session;
mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

/// The admin API called in process, for the CLI's admin commands too.
pub use api::{Api, Failure};
pub use session::Sessions;
/// What a run page's header says, for the CLI's `runs show` too.
pub use view::Headline;

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An embedded template does not parse (a bug the unit tests catch).
    #[error("the console's templates: {0}")]
    Templates(#[from] minijinja::Error),
    /// The HTTP client of test requests could not be built.
    #[error("the console's HTTP client: {0}")]
    Client(#[from] hookflow_io::Error),
    #[error(
        "the console cannot listen on {at}: {cause} (give it another address, such as 127.0.0.1:0 for any free port, or `off`)"
    )]
    Listen { at: String, cause: std::io::Error },
}

/// What the console needs from the process that serves it.
pub struct Config {
    /// The admin API's router (`hookflow_admin::router`).
    pub admin: Router,
    /// The admin API's bearer token: the console's calls carry it, and it
    /// signs a browser in.
    pub admin_token: String,
    /// Where the trigger endpoint is (`http://127.0.0.1:8787`), for the
    /// trigger URLs shown; `None` when it is not known (a deployed stack
    /// whose API URL was not given).
    pub triggers_base: Option<String>,
}

/// The console's state.
pub struct Console {
    api: api::Api,
    token: String,
    triggers_base: Option<String>,
    sessions: Sessions,
    replays: replays::Replays,
    templates: minijinja::Environment<'static>,
    /// Sends **Send a test request**'s requests to the trigger endpoint.
    probe: hookflow_io::Probe,
    /// The `Host` values it answers (its loopback address): a page of
    /// another site whose name was made to resolve to 127.0.0.1 (DNS
    /// rebinding) is refused. `None`: any (not on loopback, or in tests).
    hosts: Option<Vec<String>>,
}

impl Console {
    /// The console, answering any `Host` ([`listen`] binds it to its
    /// address).
    pub fn new(config: Config) -> Result<Arc<Self>, Error> {
        Self::build(config, None)
    }

    fn build(config: Config, hosts: Option<Vec<String>>) -> Result<Arc<Self>, Error> {
        Ok(Arc::new(Console {
            api: api::Api::new(config.admin, config.admin_token.clone()),
            token: config.admin_token,
            triggers_base: config.triggers_base.map(|b| b.trim_end_matches('/').to_string()),
            sessions: Sessions::default(),
            replays: replays::Replays::default(),
            templates: assets::templates()?,
            probe: hookflow_io::Probe::new()?,
            hosts,
        }))
    }

    /// A one-time sign-in link's path and query (`/console/login?code=…`),
    /// valid for [`session::CODE_TTL_MS`].
    pub fn login_path(&self) -> String {
        format!("/console/login?code={}", self.sessions.new_code(now_ms()))
    }
}

/// The console's routes: `/` (to the console) and `/console/…`.
pub fn router(console: Arc<Console>) -> Router {
    pages::router(console)
}

/// A console bound to its address, ready to serve.
pub struct Listening {
    pub addr: SocketAddr,
    /// The one-time sign-in link to print.
    pub login_url: String,
    listener: tokio::net::TcpListener,
    app: Router,
}

impl Listening {
    /// Serves until the process ends, within the bounds every listener of
    /// `hookflow` has ([`hookflow_io::server`]): a request's head within
    /// 15 s, at most 2,048 connections, 256 a client.
    pub async fn serve(self) -> std::io::Result<()> {
        hookflow_io::server::serve(self.listener, self.app, hookflow_io::server::Bounds::default(), |e| {
            eprintln!("console: accept failed: {e}");
        })
        .await
    }
}

/// Binds `at` and makes the console: on a loopback address it answers only
/// requests for that address (`127.0.0.1:PORT`, `localhost:PORT`).
pub async fn listen(at: &str, config: Config) -> Result<Listening, Error> {
    let failed = |cause| Error::Listen { at: at.to_string(), cause };
    let listener = tokio::net::TcpListener::bind(at).await.map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    let hosts = addr.ip().is_loopback().then(|| vec![addr.to_string(), format!("localhost:{}", addr.port())]);
    let console = Console::build(config, hosts)?;
    let login_url = format!("http://{addr}{}", console.login_path());
    Ok(Listening { addr, login_url, listener, app: router(console) })
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
