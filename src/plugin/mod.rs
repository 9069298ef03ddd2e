//! `kubectl apikeys`: the operator's resources from the user's chair.
//!
//! The plugin reads status, conditions and events and writes only annotations (and one
//! event for the break-glass path). It never reads Secret data: everything it prints comes
//! from the key resources, whose status carries fingerprints, never secret material.

pub mod cli;
pub mod compromised;
pub mod describe;
pub mod error;
pub mod kind;
pub mod rotate;
pub mod status;
pub mod table;
pub mod view;

pub use cli::Cli;
pub use error::PluginError;
