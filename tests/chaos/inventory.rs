//! What the upstream holds, listed through each vendor API as its admin, matched against
//! what the resources' statuses account for; and every Secret's key tried against the
//! credential store.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject};
use serde_json::Value;

use crate::fleet::{Fleet, Kind};
use crate::world::World;
use apikey_operator_test_support::fixtures::{self, akamai_admin, akamai_get};

/// One upstream credential: the API's kind, and an id unique within it (Akamai
/// credentials are `client/credential`, clients `client`).
pub type Credential = (Kind, String);

/// Every credential of every API the credential store holds, apart from its bootstrap
/// admin objects.
pub async fn upstream(world: &World) -> BTreeSet<Credential> {
    let mut all = BTreeSet::new();
    all.extend(
        prefactor_tokens(world)
            .await
            .into_iter()
            .map(|id| (Kind::ApiToken, id)),
    );
    all.extend(zenml_keys(world).await.into_iter().map(|id| (Kind::ZenmlKey, id)));
    all.extend(trend_keys(world).await.into_iter().map(|id| (Kind::TrendKey, id)));
    all.extend(
        akamai_credentials(world)
            .await
            .into_iter()
            .map(|id| (Kind::ApiClient, id)),
    );
    all
}

/// The credentials each surviving resource's status names: current and retiring.
pub fn accounted(fleet: &Fleet, seen: &BTreeMap<String, DynamicObject>) -> BTreeMap<String, Vec<Credential>> {
    fleet
        .members
        .iter()
        .filter(|m| m.survives())
        .map(|member| {
            let status = &seen[&member.name].data["status"];
            let text = |v: &Value| v.as_str().map(str::to_string);
            let upstream_id = text(&status["upstreamId"]).expect("a converged resource has an upstream id");
            let retiring = status["retiring"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| text(&r["id"]));
            let ids: Vec<Credential> = match member.kind {
                Kind::ApiClient => {
                    let current = text(&status["credentialId"]).expect("a credential id");
                    std::iter::once(upstream_id.clone())
                        .chain(
                            std::iter::once(current)
                                .chain(retiring)
                                .map(|c| format!("{upstream_id}/{c}")),
                        )
                        .map(|id| (Kind::ApiClient, id))
                        .collect()
                }
                kind => std::iter::once(upstream_id)
                    .chain(retiring)
                    .map(|id| (kind, id))
                    .collect(),
            };
            (member.name.clone(), ids)
        })
        .collect()
}

/// Checks that the upstream holds exactly what the survivors account for — no orphan, no
/// twin, nothing of a deleted resource — and that no two resources claim one credential.
pub fn assert_matches(upstream: &BTreeSet<Credential>, accounted: &BTreeMap<String, Vec<Credential>>) {
    let mut claimed: BTreeMap<&Credential, &String> = BTreeMap::new();
    for (name, ids) in accounted {
        for id in ids {
            if let Some(other) = claimed.insert(id, name) {
                panic!("{id:?} is claimed by both {other} and {name}");
            }
        }
    }
    let orphans: Vec<_> = upstream.iter().filter(|c| !claimed.contains_key(c)).collect();
    let missing: Vec<_> = claimed.iter().filter(|(c, _)| !upstream.contains(c)).collect();
    assert!(
        orphans.is_empty() && missing.is_empty(),
        "upstream credentials no resource accounts for: {orphans:?}; credentials resources name that the upstream lacks: {missing:?}"
    );
}

/// Once nothing is retiring, each survivor has exactly one live credential (an Akamai
/// client: the client and one credential).
pub fn assert_one_live_credential_each(fleet: &Fleet, accounted: &BTreeMap<String, Vec<Credential>>) {
    for member in fleet.members.iter().filter(|m| m.survives()) {
        let ids = &accounted[&member.name];
        let expected = if member.kind == Kind::ApiClient { 2 } else { 1 };
        assert_eq!(
            ids.len(),
            expected,
            "{} {}: one live credential, found {ids:?}",
            member.kind,
            member.name
        );
    }
}

/// Every survivor's Secret authenticates against the credential store; no deleted
/// resource's Secret remains.
pub async fn assert_secrets_work(world: &World, fleet: &Fleet) {
    let secrets: BTreeMap<String, Secret> = Api::<Secret>::namespaced(world.client.clone(), &world.namespace)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| (s.metadata.name.clone().unwrap(), s))
        .collect();
    let mut failures = Vec::new();
    for member in &fleet.members {
        let secret = secrets.get(&member.name);
        if !member.survives() {
            if secret.is_some() {
                failures.push(format!("{} {}: Secret left behind", member.kind, member.name));
            }
            continue;
        }
        let Some(secret) = secret else {
            failures.push(format!("{} {}: no Secret", member.kind, member.name));
            continue;
        };
        let data: BTreeMap<String, String> = secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect();
        let status = authenticate(world, member.kind, &data).await;
        if status != 200 {
            failures.push(format!(
                "{} {}: its key is refused ({status})",
                member.kind, member.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "Secrets that do not work:\n{}",
        failures.join("\n")
    );
}

async fn authenticate(world: &World, kind: Kind, data: &BTreeMap<String, String>) -> u16 {
    let value = |key: &str| data.get(key).map(String::as_str).unwrap_or_default();
    match kind {
        Kind::ApiToken => fixtures::ping(&world.credstore, value("token")).await,
        Kind::ZenmlKey => fixtures::zenml_login(&world.credstore, value("apiKey")).await,
        Kind::TrendKey => fixtures::trend_current(&world.credstore, value("apiKey")).await,
        Kind::ApiClient => akamai_get(data, "/api-clients/self").await.0,
    }
}

async fn prefactor_tokens(world: &World) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let page: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/api_token", world.credstore.url))
            .query(&[("pagination[offset]", ids.len()), ("pagination[page_size]", 100)])
            .bearer_auth(&world.credstore.prefactor_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let summaries = page["summaries"].as_array().expect("a token list");
        ids.extend(summaries.iter().map(|t| t["id"].as_str().unwrap().to_string()));
        if summaries.len() < 100 {
            return ids;
        }
    }
}

async fn zenml_keys(world: &World) -> Vec<String> {
    let http = reqwest::Client::new();
    let bearer = &fixtures::zenml_admin_session(&world.credstore).await;
    let account = world.bootstrap["zenml"]["serviceAccountId"].as_str().unwrap();
    let listed: Value = http
        .get(format!(
            "{}/api/v1/service_accounts/{account}/api_keys",
            world.credstore.url
        ))
        .query(&[("size", "10000")])
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["total_pages"], 1, "one page holds every key: {listed}");
    listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect()
}

async fn trend_keys(world: &World) -> Vec<String> {
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/api/apikeys", world.credstore.url))
        .header(
            "api-secret-key",
            world.credstore.bootstrap_file("trendmicro.secret-key"),
        )
        .header("api-version", "v1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = &world.bootstrap["trendmicro"]["apiKeyId"];
    listed["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["ID"] != *admin)
        .map(|k| k["ID"].to_string())
        .collect()
}

/// Clients, and their credentials that are not deleted, as `client` and `client/credential`.
async fn akamai_credentials(world: &World) -> Vec<String> {
    let admin = akamai_admin(&world.credstore);
    let admin_client = world.bootstrap["akamai"]["clientId"].as_str().unwrap();
    let (status, clients) = akamai_get(&admin, "/api-clients").await;
    assert_eq!(status, 200, "listing API clients: {clients}");
    let mut ids = Vec::new();
    for client in clients.as_array().unwrap() {
        let id = client["clientId"].as_str().unwrap();
        if id == admin_client {
            continue;
        }
        ids.push(id.to_string());
        let (status, credentials) = akamai_get(&admin, &format!("/api-clients/{id}/credentials")).await;
        assert_eq!(status, 200, "listing the credentials of {id}: {credentials}");
        ids.extend(
            credentials
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["status"] != "DELETED")
                .map(|c| format!("{id}/{}", c["credentialId"])),
        );
    }
    ids
}
