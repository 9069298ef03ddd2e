//! Pure decisions of the ApiClient controller: unit-tested without a cluster or upstream.

use serde::{Deserialize, Serialize};

use crate::api::ApiClientSpec;
use crate::upstream::akamai::{
    AkamaiApiClient, ClientSettings, Credential, CredentialStatus, CredentialUpdate,
};

/// The create (and full-replace update) body for the spec, under upstream name `name`
/// with `description` (the user's text and the owner mark).
pub fn settings(spec: &ApiClientSpec, name: &str, description: &str) -> ClientSettings {
    ClientSettings {
        client_type: spec.client_type,
        api_access: spec.api_access.clone(),
        group_access: spec.group_access.clone(),
        authorized_users: spec.authorized_users.clone(),
        allow_account_switch: spec.allow_account_switch,
        can_auto_create_credential: spec.can_auto_create_credential,
        client_description: Some(description.to_string()),
        client_name: Some(name.to_string()),
        ip_acl: spec.ip_acl.clone(),
        purge_options: spec.purge_options.clone(),
        notification_emails: spec.notification_emails.clone(),
    }
}

/// Whether the client's settings must be sent again: the spec changed since it was last
/// applied (`generation_changed`), or a field the API reports plainly drifted upstream.
/// Access lists come back decorated (API names, group names), so they are compared
/// through the generation only.
pub fn settings_stale(
    spec: &ApiClientSpec,
    name: &str,
    description: &str,
    observed: &AkamaiApiClient,
    generation_changed: bool,
) -> bool {
    generation_changed
        || observed.client_name.as_deref() != Some(name)
        || observed.client_description.as_deref() != Some(description)
        || (!spec.notification_emails.is_empty() && observed.notification_emails != spec.notification_emails)
        || observed.authorized_users != spec.authorized_users
}

/// What an issuance of a credential does, recorded in `status.pending.request` before the
/// credential is created: the credentials that existed then, so a restarted operator can
/// tell a credential it created but whose secret it lost (any other one) and remove it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialIssue {
    pub known: Vec<i64>,
    /// The credential the new one replaces, retired after `retainPrevious`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<i64>,
}

/// Credentials created by an interrupted issuance: not known before it, not deleted.
pub fn lost_credentials(issue: &CredentialIssue, credentials: &[Credential]) -> Vec<i64> {
    credentials
        .iter()
        .filter(|c| c.status != CredentialStatus::Deleted && !issue.known.contains(&c.credential_id))
        .map(|c| c.credential_id)
        .collect()
}

/// The update that brings the current credential to the spec (active, with the spec's
/// description and expiry), or `None` when it already is.
pub fn credential_update(spec: &ApiClientSpec, current: &Credential) -> Option<CredentialUpdate> {
    let wanted_expiry = spec.credential.expires_at.as_ref().map(|t| t.0);
    let description = spec.credential.description.clone();
    let stale = current.status != CredentialStatus::Active
        || (wanted_expiry.is_some() && wanted_expiry != current.expires_on)
        || (description.is_some() && description != current.description);
    let expires_on = wanted_expiry.or(current.expires_on)?;
    stale.then(|| CredentialUpdate {
        expires_on,
        status: CredentialStatus::Active,
        description: description.or_else(|| current.description.clone()),
    })
}

/// The host a client's credentials work against: the API's `baseURL` for it, without
/// scheme, or the store's host.
pub fn credential_host(observed_base_url: Option<&str>, store_host: &str) -> String {
    observed_base_url
        .map(|url| url.split_once("://").map_or(url, |(_, rest)| rest))
        .map(|host| host.trim_end_matches('/').to_string())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| store_host.to_string())
}

/// The values of the four `.edgerc` fields a consumer needs.
pub struct EdgercValues<'a> {
    pub host: &'a str,
    pub client_token: &'a str,
    pub client_secret: &'a str,
    pub access_token: &'a str,
}

/// The keys of an ApiClient's Secret, in delivery order.
pub const SECRET_KEYS: [&str; 5] = ["host", "client_token", "client_secret", "access_token", ".edgerc"];

/// The Secret's entries: the four fields and an `.edgerc` with a `[default]` section.
pub fn secret_entries(values: &EdgercValues<'_>) -> Vec<(&'static str, String)> {
    let edgerc = format!(
        "[default]\nclient_secret = {}\nhost = {}\naccess_token = {}\nclient_token = {}\n",
        values.client_secret, values.host, values.access_token, values.client_token
    );
    let fields = [
        values.host,
        values.client_token,
        values.client_secret,
        values.access_token,
    ];
    let values = fields.into_iter().map(str::to_string).chain([edgerc]);
    SECRET_KEYS.into_iter().zip(values).collect()
}

/// A client's state in the words shown in `status.upstreamState`.
pub fn state_name(locked: Option<bool>) -> &'static str {
    match locked {
        Some(true) => "locked",
        Some(false) => "unlocked",
        None => "deleted",
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn credential(id: i64, status: CredentialStatus) -> Credential {
        Credential {
            credential_id: id,
            client_token: format!("akab-{id}"),
            status,
            description: None,
            created_on: None,
            expires_on: Some("2028-01-01T00:00:00Z".parse().unwrap()),
            max_allowed_expiry: None,
        }
    }

    fn spec(extra: serde_json::Value) -> ApiClientSpec {
        let mut value = serde_json::json!({
            "storeRef": {"name": "a"}, "authorizedUsers": ["bot"],
            "apiAccess": {"allAccessibleApis": true}, "purgeOptions": {"canPurgeByCacheTag": true, "canPurgeByCpcode": true, "cpcodeAccess": {"allCurrentAndNewCpcodes": true}}, "groupAccess": {"cloneAuthorizedUserGroups": true},
        });
        value
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_credential_unknown_to_the_recorded_issue_was_lost_in_a_crash() {
        let issue = CredentialIssue {
            known: vec![1],
            replaces: Some(1),
        };
        let listed = [
            credential(1, CredentialStatus::Active),
            credential(2, CredentialStatus::Active),
            credential(3, CredentialStatus::Deleted),
        ];
        assert_eq!(lost_credentials(&issue, &listed), vec![2]);
    }

    #[test]
    fn the_current_credential_is_brought_to_the_spec() {
        let plain = spec(serde_json::json!({}));
        assert!(credential_update(&plain, &credential(1, CredentialStatus::Active)).is_none());
        let reactivate = credential_update(&plain, &credential(1, CredentialStatus::Inactive)).unwrap();
        assert_eq!(reactivate.status, CredentialStatus::Active);
        let described = spec(
            serde_json::json!({"credential": {"description": "ci", "expiresAt": "2027-06-01T00:00:00Z"}}),
        );
        let update = credential_update(&described, &credential(1, CredentialStatus::Active)).unwrap();
        assert_eq!(update.description.as_deref(), Some("ci"));
        assert_eq!(
            update.expires_on,
            "2027-06-01T00:00:00Z".parse::<Timestamp>().unwrap()
        );
    }

    #[test]
    fn the_secret_carries_the_four_fields_and_an_edgerc() {
        let entries = secret_entries(&EdgercValues {
            host: "akab-h.luna.akamaiapis.net",
            client_token: "akab-c",
            client_secret: "s3cr3t",
            access_token: "akab-a",
        });
        let edgerc = &entries.iter().find(|(k, _)| *k == ".edgerc").unwrap().1;
        assert!(edgerc.starts_with("[default]\n"));
        assert!(edgerc.contains("host = akab-h.luna.akamaiapis.net\n"));
        assert_eq!(entries.len(), 5);
        assert_eq!(
            credential_host(Some("http://127.0.0.1:8080/"), "store"),
            "127.0.0.1:8080"
        );
        assert_eq!(credential_host(None, "store.example"), "store.example");
    }
}
