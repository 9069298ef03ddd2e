"""The credstore's ZenML responses parse with ZenML's own pydantic models."""

import requests
from zenml.models import APIKeyResponse, OAuthTokenResponse, Page
from zenml.models.v2.core.api_key import APIKey


def login(store, key):
    response = requests.post(store.base + "/api/v1/login", data={"grant_type": "zenml-api-key", "password": key})
    assert response.status_code == 200, response.text
    return OAuthTokenResponse.model_validate(response.json())


def test_responses_parse_as_zenml_models(store):
    token = login(store, store.read("zenml.api-key"))
    assert token.token_type == "bearer" and token.expires_in > 0
    headers = {"Authorization": f"Bearer {token.access_token}"}
    keys = f"{store.base}/api/v1/service_accounts/{store.ids()['zenml']['serviceAccountId']}/api_keys"

    created = APIKeyResponse.model_validate(requests.post(keys, json={"name": "pydantic", "description": "d"}, headers=headers).json())
    assert created.name == "pydantic" and created.key and created.active
    assert created.description == "d" and created.retain_period_minutes == 0
    assert APIKey.decode_api_key(created.key).id == created.id, "the key encodes its own id the way ZenML decodes it"
    assert created.service_account.id.hex == store.ids()["zenml"]["serviceAccountId"].replace("-", "")

    rotated = APIKeyResponse.model_validate(requests.put(f"{keys}/pydantic/rotate", json={"retain_period_minutes": 5}, headers=headers).json())
    assert rotated.key != created.key and rotated.retain_period_minutes == 5 and rotated.last_rotated is not None
    login(store, created.key)  # still inside the retain period

    for query in ({}, {"hydrate": "true", "size": 1}):
        page = Page[APIKeyResponse].model_validate(requests.get(keys, params=query, headers=headers).json())
        assert page.total == 1 and page.index == 1 and page.items[0].id == created.id

    shown = APIKeyResponse.model_validate(requests.get(f"{keys}/{created.id}", headers=headers).json())
    assert shown.key is None and shown.last_login is not None

    missing = requests.get(f"{keys}/nope", headers=headers)
    assert missing.status_code == 404 and missing.json()["detail"][0] == "KeyError"
    assert requests.delete(f"{keys}/pydantic", headers=headers).json() is None
