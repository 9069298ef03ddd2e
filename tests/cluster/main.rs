//! Integration tests against a real kube-apiserver + etcd.

mod api_client;
mod api_token;
mod chart;
mod crds;
mod examples;
mod fixtures;
mod harness;
mod observability;
mod processes;
mod service_account_key;
mod stores;
mod support;
mod validation;
