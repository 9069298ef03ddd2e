//! Integration tests against a real kube-apiserver + etcd.

mod api_token;
mod argocd;
mod crds;
mod examples;
mod fixtures;
mod gitops;
mod harness;
mod observability;
mod plugin;
mod processes;
mod stores;
mod support;
mod validation;
