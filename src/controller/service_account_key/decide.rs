//! Pure decisions of the ServiceAccountKey controller: unit-tested without a cluster or
//! upstream.

use k8s_openapi::jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::api::{Locale, ServiceAccountKeySpec};
use crate::controller::conditions::reason;
use crate::controller::ownership::{OwnerMark, user_description};
use crate::upstream::trend::{ApiKey as TrendKey, ApiKeySettings};

/// Why the spec cannot be used with a Trend Micro store: a reason and what to fix.
pub fn trend_micro_problem(spec: &ServiceAccountKeySpec) -> Option<(&'static str, String)> {
    if spec.role_id.is_none() {
        return Some((
            reason::ROLE_ID_REQUIRED,
            "the store is a Trend Micro store, which creates keys with a role: set spec.roleID".into(),
        ));
    }
    spec.service_account.is_some().then(|| {
        (
            reason::FIELD_NOT_APPLICABLE,
            "spec.serviceAccount applies to ZenML keys only: unset it for a Trend Micro store".into(),
        )
    })
}

/// The service account a ZenML key is created on, or why the spec cannot be used with a
/// ZenML store.
pub fn zenml_service_account(spec: &ServiceAccountKeySpec) -> Result<&str, (&'static str, String)> {
    match spec.service_account.as_deref() {
        None => Err((
            reason::SERVICE_ACCOUNT_REQUIRED,
            "the store is a ZenML store, which creates keys on a service account: set spec.serviceAccount"
                .into(),
        )),
        Some(_) if spec.role_id.is_some() || spec.expires_at.is_some() => Err((
            reason::FIELD_NOT_APPLICABLE,
            "spec.roleID and spec.expiresAt apply to Trend Micro keys only: unset them for a ZenML store"
                .into(),
        )),
        Some(account) => Ok(account),
    }
}

/// ZenML's `retain_period_minutes` for a `retainPrevious`: whole minutes, rounded up so
/// the previous key never stops earlier than asked.
pub fn retain_minutes(retain: SignedDuration) -> u64 {
    let seconds = retain.as_secs().max(0) as u64;
    let partial = retain.subsec_nanos() > 0 || !seconds.is_multiple_of(60);
    seconds / 60 + u64::from(partial)
}

/// How a Trend Micro rotation keeps (or does not keep) the previous secret working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrendRotation {
    /// A second key with the same settings; the previous key is deleted after the overlap.
    SecondKey,
    /// A new secret for the same key; the previous secret stops at once.
    Regenerate,
}

/// Trend Micro's regenerate ends the old secret at once, so an overlap takes a second key.
pub fn trend_rotation(retain: SignedDuration) -> TrendRotation {
    if retain.is_zero() {
        TrendRotation::Regenerate
    } else {
        TrendRotation::SecondKey
    }
}

/// The deterministic name of the key a rotation by second key creates: found again by name
/// after a crash, and distinct for every rotation.
pub fn rotated_key_name(base: &str, rotation_count: i64) -> String {
    format!("{base}-r{}", rotation_count + 1)
}

/// What an issuance of a Trend Micro secret does, recorded in `status.pending.request`
/// before it is sent so a restarted operator repeats exactly this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrendIssue {
    /// Create key `key_name` (or, found by that name after a crash, regenerate its secret);
    /// `replaces` is retired after `retainPrevious`.
    Create {
        key_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<i64>,
    },
    /// Regenerate the secret of key `id`.
    Regenerate { id: i64 },
}

/// What an issuance of a ZenML secret does (see [`TrendIssue`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ZenmlIssue {
    /// Create key `name` (or, found by name after a crash, rotate it with no retention:
    /// its first secret is lost, so it must not stay valid).
    Create { name: String },
    /// Rotate key `id`, keeping the previous secret valid this many minutes.
    Rotate { id: String, retain_minutes: u64 },
}

fn locale_name(locale: Locale) -> &'static str {
    match locale {
        Locale::EnUs => "en-US",
        Locale::JaJp => "ja-JP",
    }
}

/// The body that creates a Trend Micro key named `key_name` as the spec describes it.
pub fn trend_settings(spec: &ServiceAccountKeySpec, key_name: &str, mark: &OwnerMark) -> ApiKeySettings {
    ApiKeySettings {
        key_name: Some(key_name.to_string()),
        description: Some(mark.describe(spec.description.as_deref())),
        locale: spec.locale.map(|l| locale_name(l).to_string()),
        role_id: spec.role_id,
        time_zone: spec.time_zone.clone(),
        active: Some(spec.active),
        expiry_date: spec.expires_at.as_ref().map(|t| t.0.as_millisecond()),
    }
}

/// The partial modify body that brings `observed` to the spec, or `None` when in sync.
/// Fields the spec leaves unset are left as the upstream has them; the description always
/// carries `mark` (stamped here on a key created before marks existed).
pub fn trend_changes(
    spec: &ServiceAccountKeySpec,
    observed: &TrendKey,
    mark: &OwnerMark,
) -> Option<ApiKeySettings> {
    let mut wanted = trend_settings(spec, &observed.key_name, mark);
    if spec.description.is_none() {
        let kept = observed.description.as_deref().and_then(user_description);
        wanted.description = Some(mark.describe(kept));
    }
    let differs = |want: &Option<String>, have: &Option<String>| want.is_some() && want != have;
    let changes = ApiKeySettings {
        key_name: None,
        description: wanted
            .description
            .clone()
            .filter(|_| differs(&wanted.description, &observed.description)),
        locale: wanted
            .locale
            .clone()
            .filter(|_| differs(&wanted.locale, &observed.locale)),
        role_id: wanted.role_id.filter(|r| Some(*r) != observed.role_id),
        time_zone: wanted
            .time_zone
            .clone()
            .filter(|_| differs(&wanted.time_zone, &observed.time_zone)),
        active: Some(spec.active).filter(|a| *a != observed.active),
        expiry_date: wanted.expiry_date.filter(|e| Some(*e) != observed.expiry_date),
    };
    (changes != ApiKeySettings::default()).then_some(changes)
}

/// A key's state in the words shown in `status.upstreamState`.
pub fn state_name(active: Option<bool>) -> &'static str {
    match active {
        Some(true) => "active",
        Some(false) => "inactive",
        None => "deleted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> ServiceAccountKeySpec {
        let mut value = serde_json::json!({"storeRef": {"name": "s"}});
        value
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn each_provider_demands_its_own_fields() {
        let zenml = spec(serde_json::json!({"serviceAccount": "sa"}));
        let trend = spec(serde_json::json!({"roleID": 3}));
        assert_eq!(zenml_service_account(&zenml), Ok("sa"));
        assert_eq!(trend_micro_problem(&trend), None);
        assert_eq!(
            zenml_service_account(&trend).unwrap_err().0,
            reason::SERVICE_ACCOUNT_REQUIRED
        );
        assert_eq!(trend_micro_problem(&zenml).unwrap().0, reason::ROLE_ID_REQUIRED);
    }

    #[test]
    fn retention_rounds_up_to_whole_minutes() {
        assert_eq!(retain_minutes(SignedDuration::ZERO), 0);
        assert_eq!(retain_minutes(SignedDuration::from_secs(60)), 1);
        assert_eq!(retain_minutes(SignedDuration::from_secs(61)), 2);
        assert_eq!(retain_minutes(SignedDuration::from_secs(20)), 1);
        assert_eq!(retain_minutes(SignedDuration::from_mins(90)), 90);
    }

    #[test]
    fn trend_overlap_takes_a_second_key_with_a_deterministic_name() {
        assert_eq!(trend_rotation(SignedDuration::ZERO), TrendRotation::Regenerate);
        assert_eq!(
            trend_rotation(SignedDuration::from_secs(30)),
            TrendRotation::SecondKey
        );
        assert_eq!(rotated_key_name("ns-app", 0), "ns-app-r1");
        assert_eq!(rotated_key_name("ns-app", 4), "ns-app-r5");
        let recorded = serde_json::to_string(&TrendIssue::Create {
            key_name: "ns-app-r1".into(),
            replaces: Some(7),
        })
        .unwrap();
        assert_eq!(
            serde_json::from_str::<TrendIssue>(&recorded).unwrap(),
            TrendIssue::Create {
                key_name: "ns-app-r1".into(),
                replaces: Some(7)
            }
        );
    }

    #[test]
    fn only_fields_the_spec_sets_and_the_upstream_differs_on_are_changed() {
        let spec = spec(serde_json::json!({
            "roleID": 3, "description": "ci", "timeZone": "Europe/Berlin", "active": false,
        }));
        let mark = crate::controller::ownership::ClusterIdentity::new("c").mark("uid");
        let observed = TrendKey {
            id: 9,
            key_name: "ns-app".into(),
            description: Some(mark.describe(Some("ci"))),
            locale: Some("en-US".into()),
            role_id: Some(3),
            time_zone: Some("UTC".into()),
            active: true,
            created: None,
            last_sign_in: None,
            unlock_time: None,
            unsuccessful_sign_in_attempts: None,
            expiry_date: None,
            service_account: None,
        };
        let changes = trend_changes(&spec, &observed, &mark).unwrap();
        assert_eq!(
            changes,
            ApiKeySettings {
                time_zone: Some("Europe/Berlin".into()),
                active: Some(false),
                ..ApiKeySettings::default()
            }
        );
        let in_sync = TrendKey {
            time_zone: Some("Europe/Berlin".into()),
            active: false,
            ..observed
        };
        assert_eq!(trend_changes(&spec, &in_sync, &mark), None);

        // A key from before marks is stamped, its description kept when the spec sets none.
        let unmarked = TrendKey {
            description: Some("by hand".into()),
            ..in_sync
        };
        let no_description = ServiceAccountKeySpec {
            description: None,
            ..spec.clone()
        };
        assert_eq!(
            trend_changes(&no_description, &unmarked, &mark),
            Some(ApiKeySettings {
                description: Some(mark.describe(Some("by hand"))),
                ..ApiKeySettings::default()
            })
        );
    }
}
