use apikey_operator::upstream::prefactor::{NewApiToken, TokenAction, TokenScope, TokenStatus};
use apikey_operator::upstream::{ErrorClass, PrefactorClient, UpstreamClient};

use apikey_operator_test_support::credstore::Store;

fn prefactor(client: &UpstreamClient) -> &PrefactorClient {
    match client {
        UpstreamClient::Prefactor(client) => client,
        other => panic!("not a Prefactor client: {other:?}"),
    }
}

fn account_token() -> NewApiToken {
    NewApiToken {
        token_scope: TokenScope::Account,
        account_id: None,
        environment_id: None,
        expires_at: None,
    }
}

/// Status of `GET /api/v1/ping` with `token`: whether the token authenticates.
async fn ping(store: &Store, token: &str) -> u16 {
    store
        .http
        .get(format!("{}/api/v1/ping", store.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn token_lifecycle_create_suspend_activate_revoke_delete() {
    let store = Store::start().await;
    let client = store.prefactor(&store.file("prefactor.token"));
    client.probe().await.unwrap();
    let prefactor = prefactor(&client);

    let before = prefactor.requests_sent();
    let issued = prefactor.create(&account_token(), "create-1").await.unwrap();
    assert_eq!(
        prefactor.requests_sent() - before,
        1,
        "a create costs one request"
    );
    let id = issued.details.id.clone();
    assert_eq!(issued.details.status, TokenStatus::Active);
    assert!(issued.details.available_actions.suspend);
    assert_eq!(ping(&store, issued.token.expose()).await, 200);

    // A retried create with the same idempotency key returns the same token: no twin.
    let again = prefactor.create(&account_token(), "create-1").await.unwrap();
    assert_eq!(again.details.id, id);
    assert_eq!(
        prefactor
            .list()
            .await
            .unwrap()
            .iter()
            .filter(|token| token.id == id)
            .count(),
        1
    );

    assert_eq!(
        prefactor.get(&id).await.unwrap().unwrap().status,
        TokenStatus::Active
    );
    let suspended = prefactor
        .change_state(&id, TokenAction::Suspend, "suspend-1")
        .await
        .unwrap();
    assert_eq!(suspended.status, TokenStatus::Suspended);
    assert_eq!(ping(&store, issued.token.expose()).await, 401);
    let active = prefactor
        .change_state(&id, TokenAction::Activate, "activate-1")
        .await
        .unwrap();
    assert_eq!(active.status, TokenStatus::Active);
    assert_eq!(ping(&store, issued.token.expose()).await, 200);

    // Only revoked tokens can be deleted.
    let refused = prefactor.delete(&id).await.unwrap_err();
    assert_eq!(refused.class(), ErrorClass::Conflict, "{refused}");
    let revoked = prefactor
        .change_state(&id, TokenAction::Revoke, "revoke-1")
        .await
        .unwrap();
    assert_eq!(revoked.status, TokenStatus::Revoked);
    assert_eq!(ping(&store, issued.token.expose()).await, 401);
    prefactor.delete(&id).await.unwrap();
    assert_eq!(prefactor.get(&id).await.unwrap(), None);
    prefactor
        .delete(&id)
        .await
        .expect("deleting a deleted token reaches the goal");
}

#[tokio::test]
async fn rotation_costs_three_requests() {
    let store = Store::start().await;
    let client = store.prefactor(&store.file("prefactor.token"));
    let prefactor = prefactor(&client);
    let old = prefactor.create(&account_token(), "gen-1").await.unwrap();
    let before = prefactor.requests_sent();
    let new = prefactor.create(&account_token(), "gen-2").await.unwrap();
    prefactor
        .change_state(&old.details.id, TokenAction::Revoke, "gen-1-revoke")
        .await
        .unwrap();
    prefactor.delete(&old.details.id).await.unwrap();
    assert_eq!(prefactor.requests_sent() - before, 3);
    assert_eq!(ping(&store, new.token.expose()).await, 200);
    assert_eq!(ping(&store, old.token.expose()).await, 401);
}

#[tokio::test]
async fn environment_tokens_and_invalid_requests() {
    let store = Store::start().await;
    let client = store.prefactor(&store.file("prefactor.token"));
    let prefactor = prefactor(&client);
    let environment_id = store.ids("prefactor")["environmentId"]
        .as_str()
        .expect("environment id")
        .to_owned();
    let expires_at = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
    let scoped = NewApiToken {
        token_scope: TokenScope::Environment,
        environment_id: Some(environment_id.clone()),
        expires_at: Some(expires_at),
        account_id: None,
    };
    let issued = prefactor.create(&scoped, "env-1").await.unwrap();
    assert_eq!(
        issued.details.environment_id.as_deref(),
        Some(environment_id.as_str())
    );
    assert_eq!(
        issued.details.expires_at.map(|at| at.as_second()),
        Some(expires_at.as_second())
    );

    let missing = NewApiToken {
        environment_id: None,
        ..scoped.clone()
    };
    let error = prefactor.create(&missing, "env-2").await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::InvalidRequest, "{error}");
    assert_eq!(error.code(), Some("required_value"));

    // The same idempotency key for a different request is a conflict, not a silent replay.
    let error = prefactor.create(&account_token(), "env-1").await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Conflict, "{error}");
}

#[tokio::test]
async fn list_follows_offset_pages() {
    let store = Store::start().await;
    let client = store.prefactor(&store.file("prefactor.token"));
    let prefactor = prefactor(&client);
    let existing = prefactor.list().await.unwrap().len();
    for n in 0..105 {
        prefactor
            .create(&account_token(), &format!("bulk-{n}"))
            .await
            .unwrap();
    }
    let before = prefactor.requests_sent();
    let listed = prefactor.list().await.unwrap();
    assert_eq!(listed.len(), existing + 105);
    assert_eq!(prefactor.requests_sent() - before, 2, "two pages of 100");
    let mut ids: Vec<_> = listed.iter().map(|token| token.id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), listed.len(), "no token listed twice");
}

#[tokio::test]
async fn refused_admin_token_is_an_authentication_error_without_the_token() {
    let store = Store::start().await;
    let client = store.prefactor("pf_wrong_admin_token_value");
    let error = client.probe().await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Authentication, "{error}");
    assert_eq!(error.attempts(), 1, "auth failures are not retried");
    assert!(!error.to_string().contains("pf_wrong_admin_token_value"));
    let error = prefactor(&client)
        .create(&account_token(), "k")
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Authentication);
}
