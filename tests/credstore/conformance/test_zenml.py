"""The credstore's ZenML responses parse with ZenML's own pydantic models."""

import requests
from zenml.models import APIKeyResponse, OAuthTokenResponse, Page, ServiceAccountResponse, UserResponse
from zenml.models.v2.core.api_key import APIKey


def login(store, **form):
    response = requests.post(store.base + "/api/v1/login", data=form)
    assert response.status_code == 200, response.status_code
    return OAuthTokenResponse.model_validate(response.json())


def key_login(store, key):
    return login(store, grant_type="zenml-api-key", password=key)


def test_responses_parse_as_zenml_models(store):
    token = login(store, grant_type="password", username=store.read("zenml.admin-user"), password=store.read("zenml.admin-password"))
    assert token.token_type == "bearer" and token.expires_in is None, "tokens do not expire, as on the real server"
    headers = {"Authorization": f"Bearer {token.access_token}"}
    me = UserResponse.model_validate(requests.get(store.base + "/api/v1/current-user", headers=headers).json())
    assert me.name == store.read("zenml.admin-user") and me.is_admin and not me.is_service_account

    sa_id = store.ids()["zenml"]["serviceAccountId"]
    accounts = Page[ServiceAccountResponse].model_validate(
        requests.get(store.base + "/api/v1/service_accounts", params={"name": "apikey-operator"}, headers=headers).json()
    )
    assert accounts.total == 1 and accounts.items[0].id.hex == sa_id.replace("-", "")
    keys = f"{store.base}/api/v1/service_accounts/{sa_id}/api_keys"

    created = APIKeyResponse.model_validate(requests.post(keys, json={"name": "pydantic", "description": "d"}, headers=headers).json())
    assert created.name == "pydantic" and created.key and created.active
    assert created.description == "d" and created.retain_period_minutes == 0
    assert APIKey.decode_api_key(created.key).id == created.id, "the key encodes its own id the way ZenML decodes it"
    assert created.service_account.id.hex == sa_id.replace("-", "")

    rotated = APIKeyResponse.model_validate(requests.put(f"{keys}/pydantic/rotate", json={"retain_period_minutes": 5}, headers=headers).json())
    assert rotated.key != created.key and rotated.metadata is None, "the rotate answer is not hydrated"
    shown = APIKeyResponse.model_validate(requests.get(f"{keys}/pydantic", headers=headers).json())
    assert shown.retain_period_minutes == 5 and shown.last_rotated is not None
    key_login(store, created.key)  # still inside the retain period

    for query in ({}, {"hydrate": "true", "size": 1}):
        page = Page[APIKeyResponse].model_validate(requests.get(keys, params=query, headers=headers).json())
        assert page.total == 1 and page.index == 1 and page.items[0].id == created.id

    shown = APIKeyResponse.model_validate(requests.get(f"{keys}/{created.id}", headers=headers).json())
    assert shown.key is None and shown.last_login is not None

    missing = requests.get(f"{keys}/nope", headers=headers)
    assert missing.status_code == 404 and missing.json()["detail"][0] == "KeyError"
    assert requests.delete(f"{keys}/pydantic", headers=headers).json() is None


def test_the_bootstrap_service_account_key_still_manages_keys(store):
    """The emulation models a server with RBAC: the admin service account's key may manage keys."""
    token = key_login(store, store.read("zenml.api-key"))
    headers = {"Authorization": f"Bearer {token.access_token}"}
    me = UserResponse.model_validate(requests.get(store.base + "/api/v1/current-user", headers=headers).json())
    assert me.is_service_account and not me.is_admin
    keys = f"{store.base}/api/v1/service_accounts/{store.ids()['zenml']['serviceAccountId']}/api_keys"
    created = requests.post(keys, json={"name": "by-the-admin-key"}, headers=headers)
    assert created.status_code == 200
    assert requests.delete(f"{keys}/by-the-admin-key", headers=headers).status_code == 200
