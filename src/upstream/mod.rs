//! Clients for the upstream credential stores.

pub mod edgegrid;
