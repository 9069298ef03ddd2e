//! The upstream side of the tenancy tests: credentials and how they authenticate, upstream
//! objects as the store admin sees them, and keys made by hand.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Upstream, World};
use apikey_operator_test_support::fixtures;
use apikey_operator_test_support::processes::Credstore;

/// A credential read from a key resource's Secret (or issued by hand upstream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cred {
    Zenml(String),
    Trend(String),
    Akamai(BTreeMap<String, String>),
    Prefactor(String),
}

impl Cred {
    /// Whether the upstream accepts it.
    pub async fn works(&self, credstore: &Credstore) -> bool {
        match self {
            Cred::Zenml(key) => fixtures::zenml_login(credstore, key).await == 200,
            Cred::Trend(key) => fixtures::trend_current(credstore, key).await == 200,
            Cred::Akamai(edgerc) => fixtures::akamai_get(edgerc, "/api-clients/self").await.0 == 200,
            Cred::Prefactor(token) => fixtures::ping(credstore, token).await == 200,
        }
    }

    /// The part no log, event or status may show.
    pub fn secret(&self) -> String {
        match self {
            Cred::Zenml(s) | Cred::Trend(s) | Cred::Prefactor(s) => s.clone(),
            Cred::Akamai(edgerc) => edgerc["client_secret"].clone(),
        }
    }
}

impl World {
    /// The upstream object `id` as the store admin sees it: its name and description (a
    /// Prefactor token: its id and state), or `None` when it is gone.
    pub async fn upstream(&self, upstream: Upstream, id: &str) -> Option<(String, String)> {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        match upstream {
            Upstream::Zenml => {
                let key = fixtures::zenml_key(&self.credstore, id).await?;
                Some((text(&key["name"]), text(&key["metadata"]["description"])))
            }
            Upstream::Trend => {
                let key = fixtures::trend_key(&self.credstore, id).await?;
                Some((text(&key["keyName"]), text(&key["description"])))
            }
            Upstream::Akamai => {
                let admin = fixtures::akamai_admin(&self.credstore);
                let (code, client) = fixtures::akamai_get(&admin, &format!("/api-clients/{id}")).await;
                (code == 200).then(|| (text(&client["clientName"]), text(&client["clientDescription"])))
            }
            Upstream::Prefactor => {
                let token = fixtures::upstream_token(&self.credstore, id).await?;
                Some((text(&token["id"]), text(&token["status"])))
            }
        }
    }

    /// A key made by hand upstream (by the store admin, not the operator): its id and
    /// secret.
    pub async fn hand_made(&self, upstream: Upstream, name: &str, description: &str) -> (String, Cred) {
        match upstream {
            Upstream::Zenml => {
                let (id, secret) = fixtures::hand_made_zenml_key(&self.credstore, name, description).await;
                (id, Cred::Zenml(secret))
            }
            Upstream::Trend => {
                let (id, secret) = fixtures::hand_made_trend_key(&self.credstore, name, description).await;
                (id, Cred::Trend(secret))
            }
            Upstream::Akamai => {
                let (id, edgerc) =
                    fixtures::hand_made_akamai_client(&self.credstore, name, description).await;
                (id, Cred::Akamai(edgerc))
            }
            Upstream::Prefactor => unreachable!("Prefactor tokens have no name to take"),
        }
    }
}
