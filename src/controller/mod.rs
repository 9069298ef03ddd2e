//! Controllers: one per kind, plus the machinery they share.

pub mod conditions;
pub mod rollout;
pub mod schedule;
pub mod target_secret;

/// The one field manager every server-side apply of the operator uses.
pub const FIELD_MANAGER: &str = "apikey-operator";
