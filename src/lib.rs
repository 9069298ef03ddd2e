//! apikey-operator: API keys in upstream credential stores, managed as Kubernetes resources.

pub mod api;
pub mod controller;
pub mod credstore;
pub mod demo;
pub mod failpoint;
pub mod health;
pub mod leader;
pub mod localcluster;
pub mod metrics;
pub mod operator;
pub mod plugin;
pub mod telemetry;
pub mod upstream;
