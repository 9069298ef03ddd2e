//! The three key kinds, as users name them on the command line.

use std::fmt;
use std::str::FromStr;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};

use super::PluginError;
use crate::api::{ApiClient, ApiToken, ServiceAccountKey};

/// A key kind the plugin works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ApiClient,
    ApiToken,
    ServiceAccountKey,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::ApiClient, Kind::ApiToken, Kind::ServiceAccountKey];

    /// The API resource, from the same Rust types the CRDs are generated from.
    pub fn resource(self) -> ApiResource {
        match self {
            Kind::ApiClient => ApiResource::erase::<ApiClient>(&()),
            Kind::ApiToken => ApiResource::erase::<ApiToken>(&()),
            Kind::ServiceAccountKey => ApiResource::erase::<ServiceAccountKey>(&()),
        }
    }

    /// The kind as kubectl prints it in `KIND/NAME`.
    pub fn lowercase(self) -> &'static str {
        match self {
            Kind::ApiClient => "apiclient",
            Kind::ApiToken => "apitoken",
            Kind::ServiceAccountKey => "serviceaccountkey",
        }
    }

    pub fn namespaced(self, client: &Client, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), namespace, &self.resource())
    }
}

impl FromStr for Kind {
    type Err = PluginError;

    /// Accepts the kind, its plural and short names, in any case, optionally with the group
    /// (`apitokens.apikeys.dev`), as kubectl does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let bare = lower.strip_suffix(".apikeys.dev").unwrap_or(&lower);
        match bare {
            "apiclient" | "apiclients" => Ok(Kind::ApiClient),
            "apitoken" | "apitokens" => Ok(Kind::ApiToken),
            "serviceaccountkey" | "serviceaccountkeys" | "sakey" | "sakeys" => Ok(Kind::ServiceAccountKey),
            _ => Err(PluginError::UnknownKind(s.to_string())),
        }
    }
}

/// One key resource named on the command line as `KIND/NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    pub name: String,
}

impl FromStr for Target {
    type Err = PluginError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((kind, name)) if !name.is_empty() && !name.contains('/') => Ok(Target {
                kind: kind.parse()?,
                name: name.to_string(),
            }),
            _ => Err(PluginError::BadTarget(s.to_string())),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.lowercase(), self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_like_kubectl_resource_names() {
        for (input, kind) in [
            ("apitoken", Kind::ApiToken),
            ("ApiTokens", Kind::ApiToken),
            ("apitokens.apikeys.dev", Kind::ApiToken),
            ("apiclient", Kind::ApiClient),
            ("sakey", Kind::ServiceAccountKey),
            ("ServiceAccountKey", Kind::ServiceAccountKey),
        ] {
            assert_eq!(input.parse::<Kind>().unwrap(), kind, "{input}");
        }
        assert!(matches!(
            "secret".parse::<Kind>(),
            Err(PluginError::UnknownKind(_))
        ));
    }

    #[test]
    fn targets_need_a_kind_and_a_name() {
        let target: Target = "sakeys/siem-export".parse().unwrap();
        assert_eq!(target.to_string(), "serviceaccountkey/siem-export");
        for bad in ["billing-api", "apitoken/", "apitoken/a/b"] {
            assert!(
                matches!(bad.parse::<Target>(), Err(PluginError::BadTarget(_))),
                "{bad}"
            );
        }
    }
}
