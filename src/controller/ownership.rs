//! Who an upstream object belongs to (DESIGN §6). The operator acts for every namespace a
//! store serves, so it touches only objects it can prove belong to the resource at hand:
//!
//! - the **owner mark**, written into the object's description when it is created: 32 hex
//!   characters of SHA-256 over the cluster identity and the resource's UID. No other
//!   resource has that UID, in this cluster or another, and the CRDs refuse a description
//!   that contains the mark's prefix, so no resource can write another's mark;
//! - ids recorded in the resource's status, for upstream objects that carry no description
//!   (Prefactor tokens) and for objects created before marks existed (stamped on sight).
//!
//! Idempotency keys sent upstream are derived from the UID as well, so a pending record
//! copied into another resource's status replays nothing of the original's.

use std::fmt;

use sha2::{Digest, Sha256};

/// What precedes the mark in an upstream description; refused in user descriptions.
pub const MARK_PREFIX: &str = "apikeys.dev/owner=";

/// Names (by id) an existing upstream object this resource takes over, where its store
/// allows adoption. Its secret, if it has one, is replaced: the old one cannot be shown.
pub const ADOPT_ANNOTATION: &str = "apikeys.dev/adopt";

/// Identifies the cluster the operator serves, so two clusters sharing one upstream (the
/// same manifests applied to staging and production) never meet: by default the UID of
/// the `kube-system` namespace, which lives as long as the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterIdentity(String);

impl ClusterIdentity {
    pub fn new(id: impl Into<String>) -> Self {
        ClusterIdentity(id.into())
    }

    /// `--cluster-id` when given, else the `kube-system` namespace's UID.
    pub async fn resolve(client: &kube::Client, configured: Option<String>) -> Result<Self, kube::Error> {
        if let Some(id) = configured.filter(|id| !id.is_empty()) {
            return Ok(ClusterIdentity(id));
        }
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
        let kube_system = namespaces.get("kube-system").await?;
        Ok(ClusterIdentity(kube_system.metadata.uid.unwrap_or_default()))
    }

    fn digest(&self, parts: &[&str]) -> String {
        hex(&self.digest_bytes(parts))
    }

    fn digest_bytes(&self, parts: &[&str]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.0.as_bytes());
        for part in parts {
            // A separator no UID, name or namespace contains: ("a", "bc") ≠ ("ab", "c").
            hasher.update([0]);
            hasher.update(part.as_bytes());
        }
        hasher.finalize().into()
    }

    /// The mark of the resource with this UID.
    pub fn mark(&self, uid: &str) -> OwnerMark {
        OwnerMark(self.digest(&["owner", uid])[..32].to_string())
    }

    /// `<namespace>-<name>-<8 hex>`: the upstream name of a resource that sets none. The
    /// hash (of the cluster, the namespace and the name) keeps `a-b/c` and `a/b-c`, and the
    /// same resource in two clusters, apart; the readable part is cut to fit `max`.
    pub fn default_name(&self, namespace: &str, name: &str, max: usize) -> String {
        let suffix = &self.digest(&["name", namespace, name])[..8];
        let readable: String = format!("{namespace}-{name}")
            .chars()
            .take(max.saturating_sub(suffix.len() + 1))
            .collect();
        format!("{readable}-{suffix}")
    }

    /// The idempotency key sent upstream for a pending record's `nonce`, bound to the
    /// resource's UID (64 hex characters, the Prefactor limit).
    pub fn idempotency_key(&self, uid: &str, nonce: &str) -> String {
        self.digest(&["idempotency", uid, nonce])
    }

    /// The same key as a UUID (version 8, "custom": the digest's first 128 bits), for APIs
    /// that take only UUIDs (ZenML's `Idempotency-Key`).
    pub fn idempotency_uuid(&self, uid: &str, nonce: &str) -> uuid::Uuid {
        let digest = self.digest_bytes(&["idempotency", uid, nonce]);
        let mut bits = [0u8; 16];
        bits.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bits).into_uuid()
    }
}

/// The mark of one resource, as written into upstream descriptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerMark(String);

impl fmt::Display for OwnerMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose an upstream object is, judged by the mark in its description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Carries this resource's mark.
    Ours,
    /// Carries no mark: made by hand, or by a release before marks.
    Unmarked,
    /// Carries another resource's mark.
    Others,
}

impl OwnerMark {
    /// Whose the object with this upstream description is.
    pub fn judge(&self, description: Option<&str>) -> Ownership {
        match description.and_then(|d| split(d).1) {
            Some(mark) if mark == self.0 => Ownership::Ours,
            Some(_) => Ownership::Others,
            None => Ownership::Unmarked,
        }
    }

    /// The description written upstream: the user's own, then the mark in brackets.
    pub fn describe(&self, user: Option<&str>) -> String {
        match user.filter(|d| !d.is_empty()) {
            Some(user) => format!("{user} [{MARK_PREFIX}{}]", self.0),
            None => format!("[{MARK_PREFIX}{}]", self.0),
        }
    }
}

/// The user's part of a description read upstream (without the mark); `None` when empty.
pub fn user_description(description: &str) -> Option<&str> {
    Some(split(description).0).filter(|d| !d.is_empty())
}

/// Splits `"<user> [apikeys.dev/owner=<mark>]"` into the user's text and the mark.
fn split(description: &str) -> (&str, Option<&str>) {
    let Some(start) = description.rfind(&format!("[{MARK_PREFIX}")) else {
        return (description, None);
    };
    let Some(mark) = description[start..]
        .strip_prefix(&format!("[{MARK_PREFIX}"))
        .and_then(|rest| rest.strip_suffix(']'))
    else {
        return (description, None);
    };
    (description[..start].trim_end(), Some(mark))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(id: &str) -> ClusterIdentity {
        ClusterIdentity::new(id)
    }

    #[test]
    fn a_mark_is_the_resource_s_own_in_its_own_cluster() {
        let mark = cluster("c1").mark("uid-1");
        assert_eq!(mark.to_string().len(), 32);
        assert_eq!(mark, cluster("c1").mark("uid-1"), "stable");
        assert_ne!(mark, cluster("c1").mark("uid-2"), "another resource");
        assert_ne!(mark, cluster("c2").mark("uid-1"), "another cluster");
    }

    #[test]
    fn the_description_keeps_the_user_s_text_readable_and_the_mark_decides() {
        let ours = cluster("c").mark("u");
        let theirs = cluster("c").mark("v");
        let written = ours.describe(Some("billing reports"));
        assert!(
            written.starts_with("billing reports [apikeys.dev/owner="),
            "{written}"
        );
        assert_eq!(user_description(&written), Some("billing reports"));
        assert_eq!(ours.judge(Some(&written)), Ownership::Ours);
        assert_eq!(theirs.judge(Some(&written)), Ownership::Others);
        assert_eq!(ours.judge(Some("made by hand")), Ownership::Unmarked);
        assert_eq!(ours.judge(None), Ownership::Unmarked);

        let bare = ours.describe(None);
        assert_eq!(user_description(&bare), None);
        assert_eq!(ours.judge(Some(&bare)), Ownership::Ours);
        assert_eq!(ours.describe(Some("")), bare);
        // A bracket the user wrote that is not a mark stays the user's text.
        assert_eq!(user_description("see [docs]"), Some("see [docs]"));
        assert_eq!(ours.judge(Some("[apikeys.dev/owner=abc")), Ownership::Unmarked);
    }

    #[test]
    fn default_names_differ_where_namespace_and_name_meet_and_across_clusters() {
        let c = cluster("c");
        let ab_c = c.default_name("a-b", "c", 255);
        let a_bc = c.default_name("a", "b-c", 255);
        assert!(ab_c.starts_with("a-b-c-") && a_bc.starts_with("a-b-c-"));
        assert_ne!(ab_c, a_bc);
        assert_ne!(ab_c, cluster("d").default_name("a-b", "c", 255));
        assert_eq!(ab_c, c.default_name("a-b", "c", 255), "stable");

        let long = c.default_name(&"n".repeat(63), &"x".repeat(253), 255);
        assert_eq!(long.chars().count(), 255);
        assert_ne!(long, c.default_name(&"n".repeat(63), &"x".repeat(252), 255));
    }

    #[test]
    fn idempotency_keys_are_bound_to_the_uid() {
        let c = cluster("c");
        let key = c.idempotency_key("uid-1", "nonce");
        assert_eq!(key.len(), 64);
        assert_ne!(key, c.idempotency_key("uid-2", "nonce"), "a copied record");
        assert_ne!(key, c.idempotency_key("uid-1", "other"));
        let replay = c.idempotency_uuid("uid-1", "nonce");
        assert_eq!(replay.get_version_num(), 8);
        assert_eq!(replay, c.idempotency_uuid("uid-1", "nonce"), "stable");
        assert_ne!(replay, c.idempotency_uuid("uid-2", "nonce"), "a copied record");
        assert_ne!(replay, c.idempotency_uuid("uid-1", "other"));
    }
}
