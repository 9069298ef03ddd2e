//! Pure decisions of the ApiToken controller: unit-tested without a cluster or upstream.

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::api::{ApiTokenSpec, TokenScope, TokenState};
use crate::upstream::prefactor::{NewApiToken, TokenAction, TokenScope as UpstreamScope, TokenStatus};

/// What to do about the token's upstream state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateStep {
    /// Upstream already matches the spec.
    InSync,
    /// Send this action.
    Act(TokenAction),
    /// The token was revoked upstream although the spec wants it usable.
    RevokedBehindOurBack,
    /// The token no longer exists upstream although the spec wants it usable.
    DeletedBehindOurBack,
}

/// Compares the desired state with the observed one (`None`: the token is gone).
pub fn state_step(desired: TokenState, observed: Option<TokenStatus>) -> StateStep {
    use StateStep::*;
    match (desired, observed) {
        (TokenState::Active, Some(TokenStatus::Active))
        | (TokenState::Suspended, Some(TokenStatus::Suspended))
        | (TokenState::Revoked, Some(TokenStatus::Revoked) | None) => InSync,
        (TokenState::Active, Some(TokenStatus::Suspended)) => Act(TokenAction::Activate),
        (TokenState::Suspended, Some(TokenStatus::Active)) => Act(TokenAction::Suspend),
        (TokenState::Revoked, Some(TokenStatus::Active | TokenStatus::Suspended)) => Act(TokenAction::Revoke),
        (TokenState::Active | TokenState::Suspended, Some(TokenStatus::Revoked)) => RevokedBehindOurBack,
        (TokenState::Active | TokenState::Suspended, None) => DeletedBehindOurBack,
    }
}

/// The upstream's word for a state, as shown in `status.upstreamState`.
pub fn upstream_state_name(observed: Option<TokenStatus>) -> &'static str {
    match observed {
        Some(TokenStatus::Active) => "active",
        Some(TokenStatus::Suspended) => "suspended",
        Some(TokenStatus::Revoked) => "revoked",
        None => "deleted",
    }
}

/// The create request recorded in `status.pending.request` before it is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    pub scope: TokenScope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl CreateRequest {
    pub fn from_spec(spec: &ApiTokenSpec) -> Self {
        CreateRequest {
            scope: spec.scope,
            account_id: spec.account_id.clone(),
            environment_id: spec.environment_id.clone(),
            expires_at: spec.expires_at.as_ref().map(|t| t.0),
        }
    }

    pub fn to_upstream(&self) -> NewApiToken {
        NewApiToken {
            token_scope: match self.scope {
                TokenScope::Account => UpstreamScope::Account,
                TokenScope::Environment => UpstreamScope::Environment,
            },
            account_id: self.account_id.clone(),
            environment_id: self.environment_id.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// Whether the spec asks for a different expiry than the current token has; the upstream
/// cannot change a token's expiry, so this takes a rotation.
pub fn expiry_changed(spec: &ApiTokenSpec, current_expiry: Option<Timestamp>) -> bool {
    spec.expires_at
        .as_ref()
        .is_some_and(|wanted| Some(wanted.0) != current_expiry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_wins_over_upstream_drift_but_terminal_states_are_reported() {
        use StateStep::*;
        assert_eq!(state_step(TokenState::Active, Some(TokenStatus::Active)), InSync);
        assert_eq!(
            state_step(TokenState::Active, Some(TokenStatus::Suspended)),
            Act(TokenAction::Activate)
        );
        assert_eq!(
            state_step(TokenState::Suspended, Some(TokenStatus::Active)),
            Act(TokenAction::Suspend)
        );
        assert_eq!(
            state_step(TokenState::Revoked, Some(TokenStatus::Suspended)),
            Act(TokenAction::Revoke)
        );
        assert_eq!(state_step(TokenState::Revoked, None), InSync);
        assert_eq!(
            state_step(TokenState::Active, Some(TokenStatus::Revoked)),
            RevokedBehindOurBack
        );
        assert_eq!(state_step(TokenState::Suspended, None), DeletedBehindOurBack);
    }

    #[test]
    fn the_recorded_request_round_trips_and_maps_to_the_upstream_body() {
        let spec: ApiTokenSpec = serde_json::from_value(serde_json::json!({
            "storeRef": {"name": "p"},
            "scope": "environment",
            "environmentId": "013xrzp12g3nqk8ngskn1wtxgka5b0nf",
            "expiresAt": "2027-01-01T00:00:00Z",
        }))
        .unwrap();
        let request = CreateRequest::from_spec(&spec);
        let recorded = serde_json::to_string(&request).unwrap();
        assert_eq!(serde_json::from_str::<CreateRequest>(&recorded).unwrap(), request);
        let body = serde_json::to_value(request.to_upstream()).unwrap();
        assert_eq!(body["token_scope"], "environment");
        assert_eq!(body["environment_id"], "013xrzp12g3nqk8ngskn1wtxgka5b0nf");
        assert!(expiry_changed(&spec, None));
        assert!(!expiry_changed(
            &spec,
            Some("2027-01-01T00:00:00Z".parse().unwrap())
        ));
    }
}
