//! Small shared types, used by every layer above: text cut at a char boundary (`text`), secret values
//! taken out of captured responses (`scrub`), spans and RFC 3339 (`duration`), a case-insensitive
//! header list (`headers`), event types and patterns (`events`), wrong credentials counted per
//! client (`tries`).

pub mod duration;
pub mod events;
pub mod headers;
pub mod scrub;
pub mod text;
pub mod tries;
