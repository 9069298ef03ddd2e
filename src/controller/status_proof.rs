//! Status is not a capability (DESIGN §6). Anyone who may write a key resource's status
//! subresource could otherwise point it at another namespace's upstream objects, and the
//! operator would rotate, retire or delete them in that resource's name. Upstream owner
//! marks guard the objects that can carry one; Prefactor tokens, and objects from before
//! marks, have only the ids in status. So every status the operator writes carries
//! `ownerProof`: an HMAC, under a key only the operator reads, of the resource's UID and
//! the upstream ids the status records. A status whose ids it does not match is not acted on.
//!
//! The key lives in Secret `apikey-operator-status-key` in the operator's namespace and is
//! made on first start. Statuses that exist before it (the release before proofs wrote
//! them) are proven once, by the first leader to run with the key, before its controllers
//! start; the Secret then records that they were, so a status written later without a
//! valid proof is never trusted.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use sha2::Sha256;
use tracing::info;

use super::key_run::KeyResource;
use crate::api::{ApiClient, ApiToken, KeyStatus, ServiceAccountKey, StoreKind, StoreRef};

/// The Secret holding the key, in the operator's namespace.
pub const SECRET_NAME: &str = "apikey-operator-status-key";
const SECRET_KEY: &str = "key";
/// Set on the key Secret once the statuses that existed before it have been proven.
const EXISTING_PROVEN_ANNOTATION: &str = "apikeys.dev/existing-statuses-proven";

/// The operator's key for status proofs.
#[derive(Clone)]
pub struct StatusKey {
    key: Vec<u8>,
    /// Where the key Secret lives.
    namespace: String,
    /// Whether the statuses that existed before the key have been proven.
    existing_proven: bool,
}

impl std::fmt::Debug for StatusKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusKey")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The key Secret exists but holds no usable key.
#[derive(Debug, thiserror::Error)]
#[error(
    "Secret {SECRET_NAME} in namespace {namespace} holds no 32-byte key under {SECRET_KEY:?}; delete it to have a new one made"
)]
pub struct UnusableKey {
    namespace: String,
}

/// Why the key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the status proof key Secret {SECRET_NAME} could not be read or written: {}",
        super::plain::kube_error(.0)
    )]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Unusable(#[from] UnusableKey),
}

impl StatusKey {
    pub fn new(key: Vec<u8>) -> Self {
        StatusKey {
            key,
            namespace: String::new(),
            existing_proven: true,
        }
    }

    /// Reads the key from its Secret in `namespace`, making it (32 random bytes) when absent.
    pub async fn load_or_create(client: &kube::Client, namespace: &str) -> Result<Self, KeyError> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let unusable = || UnusableKey {
            namespace: namespace.to_string(),
        };
        if let Some(found) = secrets.get_opt(SECRET_NAME).await? {
            return Ok(Self::from_secret(&found, namespace).ok_or_else(unusable)?);
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
        let written = match secrets.create(&PostParams::default(), &secret).await {
            Ok(created) => created,
            // Another replica made it first: use that one.
            Err(kube::Error::Api(status)) if status.code == 409 => secrets.get(SECRET_NAME).await?,
            Err(error) => return Err(error.into()),
        };
        Ok(Self::from_secret(&written, namespace).ok_or_else(unusable)?)
    }

    fn from_secret(secret: &Secret, namespace: &str) -> Option<Self> {
        let key = secret.data.as_ref()?.get(SECRET_KEY)?.0.clone();
        let existing_proven = secret
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.get(EXISTING_PROVEN_ANNOTATION).is_some_and(|v| v == "true"));
        (key.len() >= 32).then(|| StatusKey {
            key,
            namespace: namespace.to_string(),
            existing_proven,
        })
    }

    /// The proof for `status` of the resource with UID `uid` using `store`; `None` when
    /// the status records no upstream id and nothing in flight (there is nothing to prove).
    /// It covers the store (ids mean nothing in another), the ids, and the pending record
    /// (a forged one would replay a request of someone else's choosing).
    pub fn sign(&self, uid: &str, store: &StoreRef, status: &KeyStatus) -> Option<String> {
        let mut retiring: Vec<&str> = status.retiring.iter().map(|r| r.id.as_str()).collect();
        let records_nothing = status.upstream_id.is_none()
            && status.credential_id.is_none()
            && retiring.is_empty()
            && status.pending.is_none();
        if records_nothing {
            return None;
        }
        retiring.sort_unstable();
        let pending = status
            .pending
            .as_ref()
            .map(|p| serde_json::to_string(p).expect("a pending record serializes"))
            .unwrap_or_default();
        let store_kind = match store.kind {
            StoreKind::CredentialStore => "CredentialStore",
            StoreKind::ClusterCredentialStore => "ClusterCredentialStore",
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in [
            "apikeys.dev/status-proof",
            uid,
            store_kind,
            &store.name,
            status.upstream_id.as_deref().unwrap_or_default(),
            status.credential_id.as_deref().unwrap_or_default(),
            &pending,
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
    pub fn proves(&self, uid: &str, store: &StoreRef, status: &KeyStatus) -> bool {
        self.sign(uid, store, status) == status.owner_proof
    }

    /// Proves, once per key, the statuses that exist when the key is first used: those the
    /// release before proofs wrote. Run by the leader before its controllers start, so no
    /// other operator writes statuses meanwhile; then recorded on the key Secret, so later
    /// statuses without a valid proof are never trusted. A failure is retried at the next start.
    pub async fn prove_existing(
        &self,
        client: &kube::Client,
        namespace: Option<&str>,
    ) -> Result<usize, kube::Error> {
        if self.existing_proven {
            return Ok(0);
        }
        let proven = self.prove_all::<ApiToken>(client, namespace).await?
            + self.prove_all::<ServiceAccountKey>(client, namespace).await?
            + self.prove_all::<ApiClient>(client, namespace).await?;
        let mark = serde_json::json!({"metadata": {"annotations": {EXISTING_PROVEN_ANNOTATION: "true"}}});
        Api::<Secret>::namespaced(client.clone(), &self.namespace)
            .patch(SECRET_NAME, &PatchParams::default(), &Patch::Merge(&mark))
            .await?;
        info!(proven, "statuses written before status proofs are proven");
        Ok(proven)
    }

    async fn prove_all<K: KeyResource>(
        &self,
        client: &kube::Client,
        namespace: Option<&str>,
    ) -> Result<usize, kube::Error> {
        let api: Api<K> = match namespace {
            Some(namespace) => Api::namespaced(client.clone(), namespace),
            None => Api::all(client.clone()),
        };
        let mut proven = 0;
        for object in api.list(&ListParams::default()).await? {
            let status = object.key_status().cloned().unwrap_or_default();
            let uid = object.meta().uid.clone().unwrap_or_default();
            let store = object.common().store_ref;
            if self.proves(&uid, store, &status) {
                continue;
            }
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": object.meta().resource_version},
                "status": {"ownerProof": self.sign(&uid, store, &status)},
            });
            let namespaced: Api<K> = Api::namespaced(client.clone(), &object.namespace().unwrap_or_default());
            namespaced
                .patch_status(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            proven += 1;
        }
        Ok(proven)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::api::{PendingKind, PendingOperation, RetiringCredential};

    fn store(name: &str) -> StoreRef {
        serde_json::from_value(serde_json::json!({"name": name})).unwrap()
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
                    break_glass: false,
                    waiting_for: None,
                    rotated_at: None,
                })
                .collect(),
            ..KeyStatus::default()
        }
    }

    #[test]
    fn a_proof_binds_store_ids_and_pending_record_to_the_resource() {
        let key = StatusKey::new(vec![7; 32]);
        let s = store("trend");
        let mut mine = status("t1", &["t0"]);
        mine.owner_proof = key.sign("uid-a", &s, &mine);
        assert!(key.proves("uid-a", &s, &mine));
        assert!(!key.proves("uid-b", &s, &mine), "copied to another resource");
        assert!(
            !key.proves("uid-a", &store("trend-prod"), &mine),
            "moved to another store"
        );

        let mut forged = mine.clone();
        forged.upstream_id = Some("victim".into());
        assert!(!key.proves("uid-a", &s, &forged), "another id");
        let mut forged = mine.clone();
        forged.retiring[0].id = "victim".into();
        assert!(!key.proves("uid-a", &s, &forged), "another retiring id");
        let mut forged = mine.clone();
        forged.pending = Some(PendingOperation {
            operation: PendingKind::Rotate,
            idempotency_key: "k".into(),
            started_at: Time(Timestamp::UNIX_EPOCH),
            trigger: None,
            request: Some(r#"{"scope":"account"}"#.into()),
        });
        assert!(!key.proves("uid-a", &s, &forged), "a pending record added");
        let other_key = StatusKey::new(vec![8; 32]);
        assert!(!other_key.proves("uid-a", &s, &mine), "signed under another key");

        assert_eq!(
            key.sign("uid-a", &s, &KeyStatus::default()),
            None,
            "nothing to prove"
        );
        assert!(key.proves("uid-a", &s, &KeyStatus::default()));
        let pending_only = KeyStatus {
            pending: forged.pending.clone(),
            ..KeyStatus::default()
        };
        assert!(
            !key.proves("uid-a", &s, &pending_only),
            "a forged create in flight"
        );
    }
}
