//! What can go wrong, each as one line a user can act on.

use std::time::Duration;

/// A failed plugin command; `main` prints it as one line and exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("no usable kubeconfig: {0}")]
    Config(String),
    #[error("cannot reach the Kubernetes API: {0}")]
    Unreachable(String),
    #[error("{target} not found in namespace {namespace}")]
    NotFound { target: String, namespace: String },
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("the Kubernetes API refused the request: {0}")]
    Refused(String),
    #[error("unknown kind {0:?}: use apitoken, apiclient or serviceaccountkey (sakey)")]
    UnknownKind(String),
    #[error("expected KIND/NAME (for example apitoken/billing-api), got {0:?}")]
    BadTarget(String),
    #[error(
        "{0} is paused (annotation apikeys.dev/paused: \"true\"): the operator will not act on it until the annotation is removed"
    )]
    Paused(String),
    #[error("{target} was not rotated: Ready=False, {reason}: {message}")]
    RotationFailed {
        target: String,
        reason: String,
        message: String,
    },
    #[error("{0} was deleted while waiting for it")]
    Deleted(String),
    #[error("timed out after {}s waiting for {what}; see `kubectl apikeys describe {target}`", .after.as_secs())]
    Timeout {
        target: String,
        what: &'static str,
        after: Duration,
    },
    #[error("{0} has a status the plugin cannot read: {1}")]
    UnreadableStatus(String, String),
    #[error("not confirmed; nothing was changed")]
    NotConfirmed,
    #[error("reading the confirmation from stdin: {0}")]
    Stdin(#[source] std::io::Error),
}

impl PluginError {
    /// Classifies a failed API request. `missing` is the error to report on 404, for
    /// requests about one named object.
    pub fn from_kube(error: kube::Error, missing: Option<PluginError>) -> PluginError {
        match error {
            kube::Error::Api(status) if status.code == 404 && missing.is_some() => {
                missing.expect("checked by the guard")
            }
            kube::Error::Api(status) if status.code == 403 => PluginError::Forbidden(status.message),
            kube::Error::Api(status) if status.code == 401 => PluginError::Forbidden(format!(
                "the cluster did not accept the credentials: {}",
                status.message
            )),
            kube::Error::Api(status) => PluginError::Refused(status.message),
            other => PluginError::Unreachable(one_line(&other)),
        }
    }
}

/// An error and its sources as one line: transport errors keep the useful part (such as
/// "Connection refused") in a source, not in their own message.
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let text = error.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = error.source();
    }
    parts.join(": ")
}
