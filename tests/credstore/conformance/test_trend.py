"""Trend Micro's published SDK (deep-security-api) drives the credstore's /api/apikeys."""

import deepsecurity
import pytest
from deepsecurity.rest import ApiException

VERSION = "v1"


def api_for(store, secret):
    config = deepsecurity.Configuration()
    config.host = store.base + "/api"
    # Configuration instances are shallow copies of a shared default: give each its own dict.
    config.api_key = {"api-secret-key": secret}
    return deepsecurity.APIKeysApi(deepsecurity.ApiClient(config))


def test_sdk_lifecycle_and_authentication_with_an_issued_key(store):
    admin = api_for(store, store.read("trendmicro.secret-key"))

    created = admin.create_api_key(deepsecurity.ApiKey(key_name="sdk-key", description="from the SDK", role_id=1, locale="en-US"), VERSION)
    assert isinstance(created, deepsecurity.ApiKey)
    assert created.id > 0 and created.secret_key and created.active is True and created.created > 0

    described = admin.describe_api_key(created.id, VERSION)
    assert described.key_name == "sdk-key" and described.secret_key is None

    modified = admin.modify_api_key(created.id, deepsecurity.ApiKey(description="modified"), VERSION)
    assert modified.description == "modified" and modified.key_name == "sdk-key"

    issued = api_for(store, created.secret_key)
    current = issued.describe_current_api_key(VERSION)
    assert current.id == created.id and current.tenant_id is not None

    regenerated = admin.replace_api_secret_key(created.id, VERSION)
    assert regenerated.secret_key and regenerated.secret_key != created.secret_key
    with pytest.raises(ApiException) as refused:
        issued.describe_current_api_key(VERSION)
    assert refused.value.status == 401
    assert api_for(store, regenerated.secret_key).describe_current_api_key(VERSION).id == created.id

    criteria = deepsecurity.SearchCriteria(field_name="keyName", string_test="equal", string_value="sdk-%", string_wildcards=True)
    found = admin.search_api_keys(VERSION, search_filter=deepsecurity.SearchFilter(search_criteria=[criteria], max_items=10))
    assert [k.id for k in found.api_keys] == [created.id]
    paged = admin.search_api_keys(
        VERSION,
        search_filter=deepsecurity.SearchFilter(
            search_criteria=[deepsecurity.SearchCriteria(id_test="greater-than", id_value=0)], sort_by_object_id=True, max_items=1
        ),
    )
    assert len(paged.api_keys) == 1

    assert created.id in [k.id for k in admin.list_api_keys(VERSION).api_keys]
    admin.delete_api_key(created.id, VERSION)
    with pytest.raises(ApiException) as gone:
        admin.describe_api_key(created.id, VERSION)
    assert gone.value.status == 404


def test_sdk_sees_the_vendor_error_shape(store):
    with pytest.raises(ApiException) as refused:
        api_for(store, "not-a-key").list_api_keys(VERSION)
    assert refused.value.status == 401
    assert '"message"' in refused.value.body
