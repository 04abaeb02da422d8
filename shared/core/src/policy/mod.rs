//! Policies a flow states: response codes → success / retry / halt / gone (`status`), which
//! addresses a sender may connect to (`ssrf`), retry delays (`retry`).

pub mod retry;
pub mod ssrf;
pub mod status;
