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
//! The source is a folder per layer, bottom up: `util/` → `policy/` →
//! `sign/` → `flow/` (with `template` and `error` beside it) → `run/` →
//! `outcome/` → `inbound/` → `subscription/`; a module uses only those
//! below it ([`layers`]' test fails on an import that breaks the order).
//! Each module is public under its own name (`hookflow_core::retry`, not
//! `policy::retry`), so the other crates do not depend on the folders.
//! `docs/ARCHITECTURE.md` ("Modules") lists them with what each decides,
//! and the code map says where each behaviour lives.

pub mod error;
pub mod flow;
pub mod inbound;
#[cfg(test)]
mod layers;
mod outcome;
mod policy;
pub mod run;
mod sign;
pub mod subscription;
pub mod template;
mod util;

// Each layer's modules, under the names the other crates use.
pub use flow::{schema, source, validate};
pub use inbound::auth;
pub use outcome::{commit, engine, ports, requests, stats};
pub use policy::{destination, limit, retry, ssrf, status};
pub use run::{attempt, dry, request};
pub use sign::{keyring, signature};
pub use util::{duration, events, headers, scrub, text, tries};

pub use error::{Diagnostic, Error};
pub use flow::Flow;
pub use validate::{CompiledFlow, load_flow};
