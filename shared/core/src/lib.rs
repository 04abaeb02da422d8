//! # hookflow-core
//!
//! The pure domain of Hookflow, a webhook platform: no AWS, no network, no
//! I/O. Its functions take data and return data — a flow validated, a
//! request rendered, a run advanced, an attempt classified, an event fanned
//! out, each as the unit of work to store ([`commit::Commit`]) — so the
//! Lambda functions, the local dev server and the tests all drive the same
//! code. The only outside things it reads are the time *inside new ids*
//! (uuid v7, for `run_`, `evt_` and `sub_` ids that sort by time) and
//! randomness (ids, secrets, retry jitter); every "now" is a parameter.
//!
//! Modules stand in a strict dependency order (each uses only those below
//! it); `docs/ARCHITECTURE.md` ("Modules") lists them with what each
//! decides, and the code map says where each behaviour lives.

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
pub mod keyring;
#[cfg(test)]
mod layers;
pub mod ports;
pub mod request;
pub mod retry;
pub mod run;
pub mod schema;
pub mod scrub;
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
