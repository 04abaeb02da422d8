//! # hookflow-pipeline
//!
//! What Hookflow does, each written once and driven by both runtimes —
//! `hookflow dev` (SQLite, `hookflow-local`) and the Lambda functions
//! (DynamoDB, SQS, Secrets Manager: `hookflow-aws`): [`inbound`] takes a
//! trigger request from arrival to answer, [`run`] feeds one input to a
//! run from its job to the commit, [`delivery`] makes one delivery attempt
//! from gate to commit, [`publish`] fans an event out. [`inline`] answers a
//! sync trigger from the request itself (the ingress Lambda's way);
//! [`secrets`] fetches what one delivery needs; [`limits`] admits a delivery under its destination's limits; [`sampler`] bounds what
//! requests to unknown paths write.
//!
//! The decisions are the core's pure functions ([`hookflow_core::inbound`],
//! [`hookflow_core::engine`], [`hookflow_core::subscription`]); the
//! pipelines call them in their order and do the I/O through a ports trait
//! ([`InboundPorts`], [`RunPorts`], [`DeliveryPorts`], [`PublishPorts`]) that each driver implements with
//! its adapters. The drivers' handlers keep transport glue only: decode the
//! request or message, call the pipeline, encode the answer.

pub mod delivery;
pub mod inbound;
pub mod inline;
pub mod limits;
pub mod publish;
pub mod run;
pub mod sampler;
pub mod secrets;
#[cfg(test)]
mod testing;

pub use delivery::{Attempted, Counted, DeliveryPorts};
pub use inbound::{Admitted, Body, Call, InboundPorts, Unread, Verdict};
pub use limits::Limiter;
pub use publish::{Audience, PublishPorts, Repeat};
pub use run::RunPorts;
pub use sampler::Sampler;
