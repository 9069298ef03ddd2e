"""Akamai's published signer (edgegrid-python) against the credstore's IAM API."""

import json

import requests
from akamai.edgegrid import EdgeGridAuth, EdgeRc

CLIENTS = "/identity-management/v3/api-clients"


def session_for(store):
    edgerc = EdgeRc(str(store.data / "akamai.edgerc"))
    session = requests.Session()
    session.auth = EdgeGridAuth.from_edgerc(edgerc, "default")
    return session, "http://" + edgerc.get("default", "host")


def test_signed_requests_are_accepted(store):
    session, base = session_for(store)
    me = session.get(base + CLIENTS + "/self", params={"actions": "true"})
    assert me.status_code == 200, me.text
    assert me.json()["clientId"] == store.ids()["akamai"]["clientId"]

    body = {
        "clientType": "CLIENT",
        "authorizedUsers": ["sdk"],
        "apiAccess": {"allAccessibleApis": True},
        "groupAccess": {"cloneAuthorizedUserGroups": True},
        "createCredential": True,
    }
    created = session.post(base + CLIENTS, json=body, params={"accountSwitchKey": store.ids()["akamai"]["otherAccountSwitchKey"]})
    assert created.status_code == 201, created.text
    assert created.headers["Location"].endswith(created.json()["clientId"])
    assert created.json()["credentials"][0]["clientSecret"]


def test_tampered_requests_are_refused(store):
    session, base = session_for(store)
    body = json.dumps({"clientType": "CLIENT"})
    prepared = session.prepare_request(requests.Request("POST", base + CLIENTS, data=body, headers={"Content-Type": "application/json"}))
    prepared.body = json.dumps({"clientType": "USER_CLIENT"})
    prepared.headers["Content-Length"] = str(len(prepared.body))
    refused = session.send(prepared)
    assert refused.status_code == 401
    problem = refused.json()
    assert problem["statusCode"] == 401 and problem["title"] == "Unauthorized"

    prepared = session.prepare_request(requests.Request("GET", base + CLIENTS + "/self"))
    prepared.url = prepared.url + "?actions=true"
    assert session.send(prepared).status_code == 401

    replayed = session.prepare_request(requests.Request("GET", base + CLIENTS + "/self"))
    assert session.send(replayed).status_code == 200
    assert session.send(replayed).status_code == 401
