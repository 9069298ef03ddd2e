//! Integration tests against a real kube-apiserver + etcd.

mod crds;
mod support;
