//! Integration tests against a real kube-apiserver + etcd.

mod crds;
mod examples;
mod harness;
mod support;
mod validation;
