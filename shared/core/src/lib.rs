//! # hookflow-core
//!
//! The pure domain of Hookflow, a webhook platform: no AWS, no network, no
//! clock of its own. Everything that talks to the outside world is a trait
//! (a *port*) implemented by an adapter crate; everything here is a function
//! of its inputs, so the Lambda functions, the local dev server and the tests
//! all drive the same code.
//!
//! | module | what it decides |
//! |---|---|
//! | [`source`] | parsing flow files with a position for every field |
//! | [`flow`] | the flow language as Rust types (and its JSON Schema) |
//! | [`validate`] | the rules types cannot express; errors with file:line:col |
//! | [`template`] | `{{ }}` templates: strict, typed, bounded |
//! | [`request`] | rendering an outbound request; secrets as placeholders |
//! | [`status`] | which response codes succeed, retry or halt |
//! | [`retry`] | when to try again; the default schedule and its arithmetic |
//! | [`signature`] | Standard Webhooks and HMAC signing and verification |
//! | [`ssrf`] | which addresses outbound requests may reach |
//! | [`auth`] | verifying an inbound request against its trigger |
//! | [`run`] | the run state machine: `(run, input) -> (run, effects)` |
//! | [`attempt`] | what one delivery attempt means: delivered, retry, or dead |
//! | [`commit`] | a unit of work as data: run state, jobs, log entries |
//! | [`engine`] | the steps as pure functions: effects and attempts to commits and log lines |
//! | [`events`] | event types and the patterns subscriptions select them with (`*`, `**`) |
//! | [`subscription`] | subscriptions: lifecycle, keyrings and rotation, fan-out, endpoint health |
//! | [`inbound`] | the trigger endpoint's checks and acceptance, transport-free |
//! | [`ports`] | the traits adapters implement: flows, runs, queue, secrets, clock |

pub mod attempt;
pub mod auth;
pub mod commit;
pub mod duration;
pub mod engine;
pub mod error;
pub mod events;
pub mod flow;
pub mod headers;
pub mod inbound;
pub mod ports;
pub mod request;
pub mod retry;
pub mod run;
pub mod schema;
pub mod signature;
pub mod source;
pub mod ssrf;
pub mod status;
pub mod subscription;
pub mod template;
pub mod text;
pub mod validate;

pub use error::{Diagnostic, Error};
pub use flow::Flow;
pub use validate::{CompiledFlow, load_flow};
