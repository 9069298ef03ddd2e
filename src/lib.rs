//! apikey-operator: API keys in upstream credential stores, managed as Kubernetes resources.

pub mod api;
pub mod credstore;
pub mod localcluster;
pub mod upstream;
