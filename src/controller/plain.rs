//! Kubernetes API failures as the plain words a person reads in a condition, an event or a
//! log line: what the API server said, never kube's `Debug` dump of its `Status`.

/// What went wrong with a Kubernetes API request, as a sentence fragment ("deployments.apps
/// \"billing-api\" not found", "the Kubernetes API server could not be reached").
pub fn kube_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        kube::Error::Api(status) => format!("the Kubernetes API server answered {}", status.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            "the Kubernetes API server could not be reached".into()
        }
        kube::Error::SerdeError(_) => "the Kubernetes API server's answer could not be read".into(),
        kube::Error::Auth(_) => "the operator could not authenticate to the Kubernetes API server".into(),
        _ => "the request to the Kubernetes API server failed".into(),
    }
}

/// The HTTP status of a refused request, if the API server answered.
pub fn kube_status(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_refusal_reads_as_what_the_server_said() {
        let status = kube::core::Status::failure("deployments.apps \"billing-api\" not found", "NotFound")
            .with_code(404);
        let error = kube::Error::Api(Box::new(status));
        assert_eq!(kube_error(&error), "deployments.apps \"billing-api\" not found");
        assert!(!error.to_string().is_empty());
        assert_eq!(kube_status(&error), Some(404));
    }
}
