//! Policies a flow states: response codes → success / retry / halt / gone (`status`), which
//! addresses a sender may connect to (`ssrf`), retry delays (`retry`), how fast a destination
//! is sent to (`limit`).

pub mod destination;
pub mod limit;
pub mod retry;
pub mod ssrf;
pub mod status;
