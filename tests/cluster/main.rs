//! Integration tests against a real kube-apiserver + etcd.

mod api_client;
mod api_token;
mod argocd;
mod chart;
mod clusters;
mod crds;
mod edges;
mod examples;
mod fixtures;
mod gitops;
mod harness;
mod messages;
mod observability;
mod plugin;
mod policy;
mod processes;
mod real_zenml;
mod retirement;
mod service_account_key;
mod stores;
mod support;
mod tenancy;
mod upgrade;
mod validation;
mod zenml_server;
