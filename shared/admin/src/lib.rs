//! # hookflow-admin
//!
//! The admin API under `/v1` — flows, subscriptions, events, the request
//! log, runs and dead deliveries — as an axum router over a [`Backend`],
//! so `hookflow dev` and a Lambda function serve the same routes, errors and
//! OpenAPI document.
//!
//! | module | role |
//! |---|---|
//! | [`backend`] | the port: what the routes need from a deployment |
//! | [`routes`] | the router: parse, check, call the backend, answer |
//! | [`openapi`] | the OpenAPI 3.1 document (`docs/openapi.json`) |

pub mod backend;
pub mod openapi;
pub mod routes;

pub use axum::{self, Router};
pub use backend::{Backend, BackendError, FlowInfo, LogFilter, Page, Published};
pub use routes::{Admin, ApiError, router};
