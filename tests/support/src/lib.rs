//! What apikey-operator's test binaries and benchmarks share, in one crate rather than
//! files each binary includes: a library's public items are compiled once, and a binary
//! using only some of them raises no dead-code warnings about the rest.
//!
//! - [`envtest`]: the control plane (etcd + kube-apiserver) of one test binary, its client,
//!   namespaces and server-side apply;
//! - [`processes`]: the credential store and the operator as processes of the crate's binary;
//! - [`fixtures`]: stores wired to a credential store, waiting on conditions, and what tests
//!   ask a credential store over HTTP;
//! - [`zenml_server`]: the real open-source ZenML server;
//! - [`credstore`]: the credential store served in-process, and upstream clients built for it;
//! - [`paths`]: the test tools (and, inside the crate, the repository and the build's binaries).

pub mod credstore;
pub mod envtest;
pub mod fixtures;
pub mod paths;
pub mod processes;
mod upstream_clients;
pub mod zenml_server;
