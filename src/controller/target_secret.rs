//! Writing the Secret a key resource delivers its credential in.
//!
//! The Secret is server-side applied by the operator's field manager, owned by the key
//! resource (controller owner reference) and labelled so the operator can watch only its
//! own Secrets. A Secret of the same name that the operator did not create is never taken
//! over: the resource reports the conflict instead.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use sha2::{Digest, Sha256};

use super::FIELD_MANAGER;
use crate::api::SecretTemplate;

/// Label on every Secret the operator writes; its watch selects on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "apikey-operator";
/// Annotation naming the upstream credential the Secret holds (an id, not a secret).
pub const CREDENTIAL_ID_ANNOTATION: &str = "apikeys.dev/credential-id";
/// Annotation holding the credential's fingerprint (see [`fingerprint`]).
pub const FINGERPRINT_ANNOTATION: &str = "apikeys.dev/fingerprint";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "Secret {name} already exists and is not managed by this resource; delete it or set spec.secret.name to another name"
    )]
    OwnedByOther { name: String },
    #[error("Secret {name} could not be written: {}", super::plain::kube_error(source))]
    Kube { name: String, source: kube::Error },
}

/// The credential to deliver, as the operator's own key names and values.
pub struct Material {
    /// Upstream identifier of the credential (stored as an annotation).
    pub credential_id: String,
    /// `(key, value)` pairs under the operator's key names, before renames.
    pub entries: Vec<(&'static str, String)>,
}

impl Material {
    /// The fingerprint of this material.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.entries.iter().map(|(_, v)| v.as_str()))
    }
}

/// `sha256:` and the first 16 hex digits of the SHA-256 over the values: tells credentials
/// apart in status and annotations without revealing anything usable.
pub fn fingerprint<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for value in values {
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The Secret as the operator wants it.
pub fn desired(
    name: &str,
    namespace: &str,
    owner: OwnerReference,
    template: &SecretTemplate,
    material: &Material,
) -> Secret {
    let mut labels = template.labels.clone();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    let mut annotations = template.annotations.clone();
    annotations.insert(CREDENTIAL_ID_ANNOTATION.into(), material.credential_id.clone());
    annotations.insert(FINGERPRINT_ANNOTATION.into(), material.fingerprint());
    let data: BTreeMap<String, ByteString> = material
        .entries
        .iter()
        .map(|(key, value)| {
            let key = template
                .keys
                .get(*key)
                .cloned()
                .unwrap_or_else(|| key.to_string());
            (key, ByteString(value.as_bytes().to_vec()))
        })
        .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Whether `existing` may be written by the resource with uid `owner_uid`: either it is
/// absent, or the operator created it for that resource.
pub fn is_ours(existing: Option<&Secret>, owner_uid: &str) -> bool {
    let Some(secret) = existing else { return true };
    let managed = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .map(String::as_str)
        == Some(MANAGED_BY_VALUE);
    let owned = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == owner_uid);
    managed && owned
}

/// Whether `existing` already matches `desired` (data, our labels and annotations, owner),
/// so that writing it again would change nothing.
pub fn is_current(existing: &Secret, desired: &Secret) -> bool {
    let subset = |want: &Option<BTreeMap<String, String>>, have: &Option<BTreeMap<String, String>>| {
        want.iter()
            .flatten()
            .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
    };
    existing.data == desired.data
        && subset(&desired.metadata.labels, &existing.metadata.labels)
        && subset(&desired.metadata.annotations, &existing.metadata.annotations)
        && existing.metadata.owner_references == desired.metadata.owner_references
}

/// The fingerprint of the credential `secret` holds: its values of the operator's `keys`
/// (in delivery order, under the template's renames); `None` when one is missing or not
/// text. Computed from the data, not read from the annotation, so that a value edited or
/// removed by hand counts as lost material.
pub fn held_fingerprint(secret: &Secret, template: &SecretTemplate, keys: &[&str]) -> Option<String> {
    let data = secret.data.as_ref()?;
    let values = keys
        .iter()
        .map(|key| {
            let name = template.keys.get(*key).map_or(*key, String::as_str);
            std::str::from_utf8(&data.get(name)?.0).ok()
        })
        .collect::<Option<Vec<&str>>>()?;
    Some(fingerprint(values))
}

/// The credential id recorded on a Secret the operator wrote.
pub fn recorded_credential_id(secret: &Secret) -> Option<&str> {
    secret
        .metadata
        .annotations
        .as_ref()?
        .get(CREDENTIAL_ID_ANNOTATION)
        .map(String::as_str)
}

/// Server-side applies `desired`, refusing to take over a Secret that is not ours.
pub async fn apply(
    api: &Api<Secret>,
    existing: Option<&Secret>,
    owner_uid: &str,
    desired: &Secret,
) -> Result<(), SecretError> {
    let name = desired.metadata.name.clone().unwrap_or_default();
    if !is_ours(existing, owner_uid) {
        return Err(SecretError::OwnedByOther { name });
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(desired))
        .await
        .map_err(|source| SecretError::Kube { name, source })?;
    Ok(())
}

/// Deletes the Secret if it is ours (garbage collection would, but only where a
/// kube-controller-manager runs, and only eventually).
pub async fn delete(api: &Api<Secret>, name: &str, owner_uid: &str) -> Result<(), SecretError> {
    let existing = api.get_opt(name).await.map_err(|source| SecretError::Kube {
        name: name.into(),
        source,
    })?;
    if existing.is_some() && is_ours(existing.as_ref(), owner_uid) {
        api.delete(name, &DeleteParams::default())
            .await
            .map_err(|source| SecretError::Kube {
                name: name.into(),
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "apikeys.dev/v1alpha1".into(),
            kind: "ApiToken".into(),
            name: "t".into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn material(token: &str) -> Material {
        Material {
            credential_id: "id-1".into(),
            entries: vec![("token", token.into())],
        }
    }

    #[test]
    fn renames_keys_and_labels_the_secret() {
        let template = SecretTemplate {
            keys: [("token".to_string(), "PREFACTOR_TOKEN".to_string())].into(),
            labels: [("team".to_string(), "billing".to_string())].into(),
            ..SecretTemplate::default()
        };
        let secret = desired("s", "ns", owner("u1"), &template, &material("tok"));
        let data = secret.data.as_ref().unwrap();
        assert_eq!(data.get("PREFACTOR_TOKEN").unwrap().0, b"tok");
        assert!(!data.contains_key("token"));
        let labels = secret.metadata.labels.as_ref().unwrap();
        assert_eq!(labels.get(MANAGED_BY_LABEL).unwrap(), MANAGED_BY_VALUE);
        assert_eq!(labels.get("team").unwrap(), "billing");
        assert_eq!(recorded_credential_id(&secret), Some("id-1"));
    }

    #[test]
    fn fingerprints_tell_credentials_apart_without_revealing_them() {
        let a = material("secret-a").fingerprint();
        assert_ne!(a, material("secret-b").fingerprint());
        assert_eq!(a.len(), "sha256:".len() + 16);
        assert!(!a.contains("secret-a"));
    }

    #[test]
    fn only_our_own_secret_may_be_written() {
        let ours = desired("s", "ns", owner("u1"), &SecretTemplate::default(), &material("x"));
        assert!(is_ours(None, "u1"));
        assert!(is_ours(Some(&ours), "u1"));
        assert!(!is_ours(Some(&ours), "u2"));
        let foreign = Secret {
            metadata: ObjectMeta {
                name: Some("s".into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        assert!(!is_ours(Some(&foreign), "u1"));
    }

    #[test]
    fn the_held_fingerprint_follows_the_data_not_the_annotation() {
        let template = SecretTemplate {
            keys: [("token".to_string(), "TOKEN".to_string())].into(),
            ..SecretTemplate::default()
        };
        let written = desired("s", "ns", owner("u1"), &template, &material("x"));
        let held = |secret: &Secret| held_fingerprint(secret, &template, &["token"]);
        assert_eq!(held(&written), Some(material("x").fingerprint()));

        let mut edited = written.clone();
        edited.data = Some([("TOKEN".to_string(), ByteString(b"by hand".to_vec()))].into());
        assert_ne!(held(&edited), held(&written), "an edit is not the credential");
        edited.data = Some(BTreeMap::new());
        assert_eq!(held(&edited), None, "a removed key holds nothing");
        edited.data = Some([("TOKEN".to_string(), ByteString(vec![0xff]))].into());
        assert_eq!(held(&edited), None);
    }

    #[test]
    fn an_identical_secret_needs_no_write() {
        let want = desired("s", "ns", owner("u1"), &SecretTemplate::default(), &material("x"));
        let mut have = want.clone();
        have.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("extra".into(), "kept".into());
        assert!(is_current(&have, &want));
        let newer = desired("s", "ns", owner("u1"), &SecretTemplate::default(), &material("y"));
        assert!(!is_current(&have, &newer));
    }
}
