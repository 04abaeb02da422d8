//! What a step or an attempt leaves behind: the unit of work as data (`commit`), effects and attempts
//! turned into commits and log lines (`engine`), the ports the pipelines are generic over (`ports`),
//! the request log summed up (`stats`) and one row a request (`requests`).

pub mod commit;
pub mod engine;
pub mod ports;
pub mod requests;
pub mod stats;
