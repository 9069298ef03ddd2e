//! Status is not a capability (DESIGN §6). Anyone who may write a key resource's status
//! subresource could otherwise point it at another namespace's upstream objects, and the
//! operator would rotate, retire or delete them in that resource's name. Upstream owner
//! marks guard the objects that can carry one; Prefactor tokens, and objects from before
//! marks, have only the ids in status. So every status the operator writes carries
//! `ownerProof`: an HMAC, under a key only the operator reads, of the resource's UID and
//! the upstream ids the status records. A status whose ids it does not match is not acted on.
//!
//! The key lives in Secret `apikey-operator-status-key` in the operator's namespace and is
//! made on first start. A status written before that Secret existed (the release before
//! proofs, or a key Secret deleted and made anew) carries no valid proof; it is trusted
//! when the API server's own records show no write to it since the key was created (every
//! `managedFields` entry of the status subresource is older), and proven at its next write.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use sha2::Sha256;

use crate::api::KeyStatus;

/// The Secret holding the key, in the operator's namespace.
pub const SECRET_NAME: &str = "apikey-operator-status-key";
const SECRET_KEY: &str = "key";

/// The operator's key for status proofs.
#[derive(Clone)]
pub struct StatusKey {
    key: Vec<u8>,
    /// When the key was made: statuses last written before it are from before proofs.
    created: Timestamp,
}

impl std::fmt::Debug for StatusKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusKey")
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl StatusKey {
    pub fn new(key: Vec<u8>, created: Timestamp) -> Self {
        StatusKey { key, created }
    }

    /// Reads the key from its Secret in `namespace`, making it (32 random bytes) when absent.
    pub async fn load_or_create(client: &kube::Client, namespace: &str) -> Result<Self, kube::Error> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        if let Some(found) = secrets.get_opt(SECRET_NAME).await?
            && let Some(key) = Self::from_secret(&found)
        {
            return Ok(key);
        }
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).expect("the operating system provides randomness");
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(SECRET_NAME.into()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_string(),
                    "apikey-operator".to_string(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                SECRET_KEY.to_string(),
                ByteString(fresh.to_vec()),
            )])),
            ..Secret::default()
        };
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(created) => Ok(Self::from_secret(&created).expect("the Secret just made holds the key")),
            // Another replica made it first: use that one.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let found = secrets.get(SECRET_NAME).await?;
                Ok(Self::from_secret(&found).expect("the key Secret another replica made holds the key"))
            }
            Err(error) => Err(error),
        }
    }

    fn from_secret(secret: &Secret) -> Option<Self> {
        let key = secret.data.as_ref()?.get(SECRET_KEY)?.0.clone();
        let created = secret.metadata.creation_timestamp.as_ref()?.0;
        (key.len() >= 32).then_some(StatusKey { key, created })
    }

    /// The proof for `status` of the resource with UID `uid`; `None` when the status records
    /// no upstream id (there is nothing to prove).
    pub fn sign(&self, uid: &str, status: &KeyStatus) -> Option<String> {
        let mut retiring: Vec<&str> = status.retiring.iter().map(|r| r.id.as_str()).collect();
        if status.upstream_id.is_none() && status.credential_id.is_none() && retiring.is_empty() {
            return None;
        }
        retiring.sort_unstable();
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in [
            "apikeys.dev/status-proof",
            uid,
            status.upstream_id.as_deref().unwrap_or_default(),
            status.credential_id.as_deref().unwrap_or_default(),
        ]
        .into_iter()
        .chain(retiring)
        {
            // A separator no id contains: ("a", "bc") ≠ ("ab", "c").
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        Some(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// Whether `status` carries the proof the operator would write for it.
    pub fn proves(&self, uid: &str, status: &KeyStatus) -> bool {
        self.sign(uid, status) == status.owner_proof
    }

    /// Whether every write to the status subresource `meta` records happened before the key
    /// was made: a status from before proofs, untouched since.
    pub fn predates(&self, meta: &ObjectMeta) -> bool {
        let mut status_writes = meta
            .managed_fields
            .iter()
            .flatten()
            .filter(|entry| entry.subresource.as_deref() == Some("status"))
            .peekable();
        // Both times are whole seconds: a write in the second the key was made counts as
        // before it (the release before proofs stops before its replacement starts; a
        // forger would have to hit that one second).
        status_writes.peek().is_some()
            && status_writes.all(|entry| entry.time.as_ref().is_some_and(|t| t.0 <= self.created))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};

    use super::*;
    use crate::api::RetiringCredential;

    fn key() -> StatusKey {
        StatusKey::new(vec![7; 32], "2026-12-01T00:00:00Z".parse().unwrap())
    }

    fn status(upstream: &str, retiring: &[&str]) -> KeyStatus {
        KeyStatus {
            upstream_id: Some(upstream.into()),
            credential_id: Some(upstream.into()),
            retiring: retiring
                .iter()
                .map(|id| RetiringCredential {
                    id: id.to_string(),
                    retire_at: Time(Timestamp::UNIX_EPOCH),
                })
                .collect(),
            ..KeyStatus::default()
        }
    }

    #[test]
    fn a_proof_binds_the_ids_to_the_resource() {
        let key = key();
        let mut mine = status("t1", &["t0"]);
        mine.owner_proof = key.sign("uid-a", &mine);
        assert!(key.proves("uid-a", &mine));
        assert!(!key.proves("uid-b", &mine), "copied to another resource");

        let mut forged = mine.clone();
        forged.upstream_id = Some("victim".into());
        assert!(!key.proves("uid-a", &forged), "another id");
        let mut forged = mine.clone();
        forged.retiring[0].id = "victim".into();
        assert!(!key.proves("uid-a", &forged), "another retiring id");
        let other_key = StatusKey::new(vec![8; 32], key.created);
        assert!(!other_key.proves("uid-a", &mine), "signed under another key");

        assert_eq!(key.sign("uid-a", &KeyStatus::default()), None, "nothing to prove");
        assert!(key.proves("uid-a", &KeyStatus::default()));
    }

    #[test]
    fn only_a_status_untouched_since_the_key_was_made_predates_it() {
        let key = key();
        let write = |time: &str, subresource: Option<&str>| ManagedFieldsEntry {
            manager: Some("apikey-operator".into()),
            subresource: subresource.map(str::to_string),
            time: Some(Time(time.parse().unwrap())),
            ..ManagedFieldsEntry::default()
        };
        let meta = |entries: Vec<ManagedFieldsEntry>| ObjectMeta {
            managed_fields: Some(entries),
            ..ObjectMeta::default()
        };
        let before = "2026-11-30T00:00:00Z";
        let after = "2026-12-02T00:00:00Z";
        assert!(key.predates(&meta(vec![write(before, Some("status")), write(after, None)])));
        assert!(!key.predates(&meta(vec![
            write(before, Some("status")),
            write(after, Some("status"))
        ])));
        assert!(
            !key.predates(&meta(vec![write(after, None)])),
            "no status write at all"
        );
    }
}
