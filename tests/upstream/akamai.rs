//! The Akamai IAM client against the credential store: every client and credential
//! operation, and proof that an issued credential signs requests that are accepted while
//! the client is unlocked and the credential active, and refused otherwise.

use apikey_operator::api::{AccessLevel, ApiAccess, ApiGrant, ClientType, GroupAccess, IpAcl};
use apikey_operator::upstream::akamai::{ClientSettings, CredentialStatus, CredentialUpdate};
use apikey_operator::upstream::name_index::Lookup;
use apikey_operator::upstream::{AkamaiClient, ErrorClass, UpstreamClient};

use apikey_operator_test_support::credstore::Store;

fn akamai(client: &UpstreamClient) -> &AkamaiClient {
    match client {
        UpstreamClient::Akamai(client) => client,
        other => panic!("not an Akamai client: {other:?}"),
    }
}

fn settings(name: &str) -> ClientSettings {
    ClientSettings {
        client_type: ClientType::Client,
        api_access: ApiAccess {
            all_accessible_apis: None,
            apis: Some(vec![ApiGrant {
                api_id: 5580,
                access_level: AccessLevel::ReadWrite,
            }]),
        },
        group_access: GroupAccess {
            clone_authorized_user_groups: Some(true),
            groups: None,
        },
        authorized_users: vec!["platform-bot".into()],
        allow_account_switch: None,
        can_auto_create_credential: None,
        client_description: Some("purges the CDN".into()),
        client_name: Some(name.into()),
        ip_acl: Some(IpAcl {
            enable: false,
            cidr: vec![],
        }),
        purge_options: None,
        notification_emails: vec!["platform@example.com".into()],
    }
}

/// Whether a request signed with this credential is accepted (`GET /api-clients/self`).
async fn signs(
    store: &Store,
    client_token: &str,
    client_secret: &str,
    access_token: &str,
) -> Result<(), ErrorClass> {
    let client = store.akamai(client_token, client_secret, access_token, None);
    client.probe().await.map(drop).map_err(|e| e.class())
}

#[tokio::test]
async fn client_and_credential_lifecycle() {
    let store = Store::start().await;
    let admin = store.akamai_admin(None);
    admin.probe().await.expect("the bootstrap .edgerc authenticates");
    let admin = akamai(&admin);

    let before = admin.requests_sent();
    let created = admin.create_client(&settings("cdn-purge")).await.unwrap();
    assert_eq!(
        admin.requests_sent() - before,
        1,
        "a client create costs one request"
    );
    assert!(!created.is_locked);
    let id = created.client_id.clone();
    let access_token = created.access_token.clone().expect("the client's access token");
    assert_eq!(
        admin
            .get_client(&id)
            .await
            .unwrap()
            .unwrap()
            .client_name
            .as_deref(),
        Some("cdn-purge")
    );
    assert!(
        admin
            .list_clients()
            .await
            .unwrap()
            .iter()
            .any(|c| c.client_id == id)
    );
    // Found by a list taken now, and by a recent one: the second lookup sends nothing.
    for lookup in [Lookup::Now, Lookup::Recent] {
        let before = admin.requests_sent();
        let found = admin.find_clients_by_name("cdn-purge", lookup).await.unwrap();
        assert_eq!(
            found.iter().map(|c| c.client_id.as_str()).collect::<Vec<_>>(),
            [id.as_str()]
        );
        let sent = admin.requests_sent() - before;
        assert_eq!(sent, u64::from(lookup == Lookup::Now), "{lookup:?}");
    }

    // A credential: its secret is shown once, and it signs requests that are accepted.
    let before = admin.requests_sent();
    let issued = admin.create_credential(&id).await.unwrap();
    assert_eq!(admin.requests_sent() - before, 1);
    let (token, secret) = (
        issued.credential.client_token.clone(),
        issued.client_secret.expose().to_string(),
    );
    assert_eq!(signs(&store, &token, &secret, &access_token).await, Ok(()));
    assert_eq!(
        signs(
            &store,
            &token,
            "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==",
            &access_token
        )
        .await,
        Err(ErrorClass::Authentication),
        "a wrong secret is an authentication failure"
    );
    let listed = admin.list_credentials(&id).await.unwrap();
    assert!(
        listed
            .iter()
            .any(|c| c.credential_id == issued.credential.credential_id)
    );

    // Settings: full-replace update, refused while locked, accepted after unlock.
    let mut changed = settings("cdn-purge");
    changed.client_description = Some("purges the CDN and more".into());
    admin.set_locked(&id, true).await.unwrap();
    assert_eq!(
        signs(&store, &token, &secret, &access_token).await,
        Err(ErrorClass::Authentication),
        "locked"
    );
    let refused = admin.update_client(&id, &changed).await.unwrap_err();
    assert_eq!(
        refused.class(),
        ErrorClass::Conflict,
        "a locked client cannot be changed: {refused}"
    );
    admin.set_locked(&id, false).await.unwrap();
    let updated = admin.update_client(&id, &changed).await.unwrap();
    assert_eq!(
        updated.client_description.as_deref(),
        Some("purges the CDN and more")
    );
    assert_eq!(
        signs(&store, &token, &secret, &access_token).await,
        Ok(()),
        "unlocked again"
    );

    // Expiry and description of the credential.
    let expires_on: jiff::Timestamp = "2027-06-30T12:00:00Z".parse().unwrap();
    let update = CredentialUpdate {
        expires_on,
        status: CredentialStatus::Active,
        description: Some("managed by apikey-operator".into()),
    };
    let after = admin
        .update_credential(&id, issued.credential.credential_id, &update)
        .await
        .unwrap();
    assert_eq!(after.expires_on, Some(expires_on));
    assert_eq!(after.description.as_deref(), Some("managed by apikey-operator"));

    // Rotation: a second credential, the first deactivated then deleted.
    let before = admin.requests_sent();
    let second = admin.create_credential(&id).await.unwrap();
    admin
        .deactivate_credential(&id, issued.credential.credential_id)
        .await
        .unwrap();
    admin
        .delete_credential(&id, issued.credential.credential_id)
        .await
        .unwrap();
    assert_eq!(
        admin.requests_sent() - before,
        3,
        "create new, deactivate old, delete old"
    );
    assert_eq!(
        signs(&store, &token, &secret, &access_token).await,
        Err(ErrorClass::Authentication),
        "retired"
    );
    let second_secret = second.client_secret.expose().to_string();
    assert_eq!(
        signs(
            &store,
            &second.credential.client_token,
            &second_secret,
            &access_token
        )
        .await,
        Ok(())
    );

    // Deletion: deactivate every credential, then the client.
    admin.deactivate_all_credentials(&id).await.unwrap();
    assert_eq!(
        signs(
            &store,
            &second.credential.client_token,
            &second_secret,
            &access_token
        )
        .await,
        Err(ErrorClass::Authentication)
    );
    admin.delete_client(&id).await.unwrap();
    assert!(admin.get_client(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn an_active_credential_cannot_be_deleted_and_switch_keys_are_checked() {
    let store = Store::start().await;
    let admin = store.akamai_admin(None);
    let admin = akamai(&admin);
    let created = admin.create_client(&settings("guarded")).await.unwrap();
    let issued = admin.create_credential(&created.client_id).await.unwrap();
    let refused = admin
        .delete_credential(&created.client_id, issued.credential.credential_id)
        .await
        .unwrap_err();
    assert!(
        matches!(refused.class(), ErrorClass::Conflict | ErrorClass::InvalidRequest),
        "deleting an ACTIVE credential is refused: {refused}"
    );
    assert!(
        !refused.to_string().contains(issued.client_secret.expose()),
        "no secret in the message"
    );

    let ids = store.ids("akamai");
    let allowed = ids["otherAccountSwitchKey"]
        .as_str()
        .expect("a second account's switch key");
    let other = store.akamai_admin(Some(allowed));
    other.probe().await.expect("an allowed switch key works");
    let bogus = store.akamai_admin(Some("1-NOSUCHACCOUNT"));
    let error = bogus.probe().await.unwrap_err();
    assert_eq!(
        error.class(),
        ErrorClass::Permission,
        "an unknown switch key is refused: {error}"
    );
}
