//! Integration tests against a real kube-apiserver + etcd (see the test-support crate,
//! tests/support, for the control plane, the processes and the fixtures they share).

mod api_client;
mod api_token;
mod argocd;
mod chart;
mod clusters;
mod crds;
mod edges;
mod examples;
mod gitops;
mod harness;
mod messages;
mod observability;
mod plugin;
mod policy;
mod real_zenml;
mod retirement;
mod service_account_key;
mod stores;
mod tenancy;
mod upgrade;
mod validation;
