"""Differential test: one ZenML request sequence sent to the real open-source server
(zenml[server], started by tests/zenml/server.py on SQLite) and to the credstore's
emulation; statuses and normalised bodies must agree, except for the differences listed,
each with its reason, in zenml_differences.yaml. A listed difference that no longer
differs fails too (stale entry).

Normalisation, per target: UUIDs, ZENKEY_ secrets and bearer tokens become numbered
placeholders in order of first appearance (so "the replay returned the same key" still
compares), Python-style timestamps become <time>, and pydantic validation texts are
reduced to their error type, location and message (the real server appends its own
source paths, and the pydantic version to its links). Secrets never reach the output:
only normalised bodies are printed.

The real server runs without RBAC, like an open-source deployment; the admin is a
user logging in with grant_type=password on both sides.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import pathlib
import re
import sys
import tempfile
import time
import uuid

import pytest
import requests
import yaml

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tests" / "zenml"))
from server import ZenmlServer  # noqa: E402

DIFFERENCES_FILE = HERE / "zenml_differences.yaml"
API = "/api/v1"


# ----------------------------------------------------------------------------- targets
class Target:
    """One server under test and the state the sequence keeps for it."""

    def __init__(self, name: str, base: str, admin_user: str, admin_password: str, fallback_key: str | None = None):
        self.name = name
        # Only for measuring an emulation that predates its admin user: the admin
        # bearer then comes from the bootstrap service-account key.
        self.fallback_key = fallback_key
        self.base = base
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.state: dict = {}
        # No cookie jar: the real server's password login sets a session cookie that
        # would otherwise authenticate every later request (it wins over the bearer).
        self.http = requests.Session()
        self.http.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))

    def request(self, method: str, path: str, *, token: str | None = None, headers=None, **kw):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        return self.http.request(method, self.base + path, headers=h, timeout=30, **kw)

    def admin(self, method: str, path: str, **kw):
        return self.request(method, path, token=self.state["admin"], **kw)

    def login(self, **form):
        return self.request("POST", API + "/login", data=form)

    def keys(self, sa: str = "sa") -> str:
        return f"{API}/service_accounts/{self.state[sa]}/api_keys"


def token_of(response) -> str | None:
    try:
        return response.json().get("access_token")
    except (ValueError, AttributeError):
        return None


def key_of(response) -> str | None:
    try:
        return response.json()["body"]["key"]
    except (ValueError, KeyError, TypeError):
        return None


# ----------------------------------------------------------------------------- the sequence
STEPS: list = []


def step(fn):
    STEPS.append(fn)
    return fn


def remember(t: Target, name: str, value):
    if value is not None:
        t.state[name] = value


# -- login ----------------------------------------------------------------------
@step
def login_password(t):
    r = t.login(grant_type="password", username=t.admin_user, password=t.admin_password)
    remember(t, "admin", token_of(r))
    if "admin" not in t.state and t.fallback_key:
        remember(t, "admin", token_of(t.login(grant_type="zenml-api-key", password=t.fallback_key)))
    return r


@step
def session_cookie_of_password_login(t):
    r = t.login(grant_type="password", username=t.admin_user, password=t.admin_password)
    cookie = r.headers.get("set-cookie", "").split(";", 1)[0]
    return t.request("GET", API + "/current-user", headers={"Cookie": cookie, "Authorization": "Bearer not-a-token"})


@step
def current_user(t):
    return t.admin("GET", API + "/current-user")


@step
def login_password_grant_inferred(t):
    return t.login(username=t.admin_user, password=t.admin_password)


@step
def login_password_wrong(t):
    return t.login(grant_type="password", username=t.admin_user, password="wrong-password")


@step
def login_password_empty(t):
    return t.login(grant_type="password", username=t.admin_user, password="")


@step
def login_password_unknown_user(t):
    return t.login(grant_type="password", username="nobody-here", password="whatever")


@step
def login_password_without_username(t):
    return t.login(grant_type="password", password="whatever")


@step
def login_empty_form(t):
    return t.request("POST", API + "/login", data={})


@step
def login_unsupported_grant(t):
    return t.login(grant_type="bogus", password="whatever")


@step
def login_api_key_empty(t):
    return t.login(grant_type="zenml-api-key", password="")


@step
def login_api_key_garbage(t):
    return t.login(grant_type="zenml-api-key", password="ZENKEY_not-a-key")


@step
def login_api_key_grant_inferred_garbage(t):
    return t.login(password="not-a-key")


# -- authentication of API calls ----------------------------------------------------
@step
def no_bearer(t):
    return t.request("GET", API + "/service_accounts")


@step
def basic_auth_instead_of_bearer(t):
    return t.request("GET", API + "/service_accounts", headers={"Authorization": "Basic YWRtaW46eA=="})


@step
def bearer_bad_signature(t):
    head, _, sig = t.state["admin"].rpartition(".")
    forged = head + "." + ("A" if sig[:1] != "A" else "B") + sig[1:]
    return t.request("GET", API + "/service_accounts", token=forged)


@step
def bearer_not_a_jwt(t):
    return t.request("GET", API + "/service_accounts", token="not-a-token")


# -- service accounts --------------------------------------------------------------
@step
def sa_create(t):
    r = t.admin("POST", API + "/service_accounts", json={"name": "diff-bot", "description": "differential", "active": True})
    remember(t, "sa", r.json().get("id") if r.ok else None)
    return r


@step
def sa_create_duplicate(t):
    return t.admin("POST", API + "/service_accounts", json={"name": "diff-bot", "active": True})


@step
def sa_create_without_active(t):
    return t.admin("POST", API + "/service_accounts", json={"name": "diff-lacking"})


@step
def sa_create_inactive(t):
    r = t.admin("POST", API + "/service_accounts", json={"name": "diff-idle", "active": False})
    remember(t, "sa_idle", r.json().get("id") if r.ok else None)
    return r


@step
def sa_get_by_id(t):
    return t.admin("GET", f"{API}/service_accounts/{t.state['sa']}")


@step
def sa_get_by_name(t):
    return t.admin("GET", f"{API}/service_accounts/diff-bot")


@step
def sa_get_unhydrated(t):
    return t.admin("GET", f"{API}/service_accounts/{t.state['sa']}", params={"hydrate": "false"})


@step
def sa_get_bad_hydrate(t):
    return t.admin("GET", f"{API}/service_accounts/{t.state['sa']}", params={"hydrate": "maybe"})


@step
def sa_get_missing(t):
    return t.admin("GET", f"{API}/service_accounts/{uuid.uuid4()}")


@step
def sa_list(t):
    return t.admin("GET", API + "/service_accounts", params={"name": "startswith:diff-"})


@step
def sa_list_hydrated(t):
    return t.admin("GET", API + "/service_accounts", params={"name": "startswith:diff-", "hydrate": "true"})


@step
def sa_list_sorted_paged(t):
    return t.admin("GET", API + "/service_accounts", params={"name": "startswith:diff-", "sort_by": "desc:name", "size": 1})


@step
def sa_list_filter_active(t):
    return t.admin("GET", API + "/service_accounts", params={"name": "startswith:diff-", "active": "false"})


@step
def sa_update_nothing(t):
    return t.admin("PUT", f"{API}/service_accounts/{t.state['sa']}", json={})


@step
def sa_update_description(t):
    return t.admin("PUT", f"{API}/service_accounts/diff-bot", json={"description": "differential, updated", "active": True})


@step
def sa_update_bad_active(t):
    return t.admin("PUT", f"{API}/service_accounts/{t.state['sa']}", json={"active": "x"})


@step
def sa_update_missing(t):
    return t.admin("PUT", f"{API}/service_accounts/{uuid.uuid4()}", json={})


@step
def sa_list_bad_sort(t):
    return t.admin("GET", API + "/service_accounts", params={"sort_by": "zzz"})


@step
def sa_list_bad_size(t):
    return t.admin("GET", API + "/service_accounts", params={"size": 0})


# -- key creation ------------------------------------------------------------------------
@step
def key_create(t):
    r = t.admin("POST", t.keys(), json={"name": "k1", "description": "first"})
    remember(t, "k1_gen1", key_of(r))
    return r


@step
def key_create_duplicate(t):
    return t.admin("POST", t.keys(), json={"name": "k1"})


@step
def key_create_empty_name(t):
    r = t.admin("POST", t.keys(), json={"name": ""})
    remember(t, "empty_id", r.json().get("id") if r.ok else None)
    return r


@step
def key_create_missing_name(t):
    return t.admin("POST", t.keys(), json={"description": "no name"})


@step
def key_create_name_too_long(t):
    return t.admin("POST", t.keys(), json={"name": "x" * 256})


@step
def key_create_wrong_types(t):
    return t.admin("POST", t.keys(), json={"name": 5, "description": 7})


@step
def key_create_invalid_json(t):
    return t.admin("POST", t.keys(), data="{", headers={"Content-Type": "application/json"})


@step
def key_create_no_body(t):
    return t.admin("POST", t.keys())


@step
def key_create_array_body(t):
    return t.admin("POST", t.keys(), json=["k"])


@step
def key_create_sa_not_a_uuid(t):
    return t.admin("POST", f"{API}/service_accounts/diff-bot/api_keys", json={"name": "x"})


@step
def key_create_unknown_sa(t):
    return t.admin("POST", f"{API}/service_accounts/{uuid.uuid4()}/api_keys", json={"name": "x"})


@step
def key_create_extra_field(t):
    return t.admin("POST", t.keys(), json={"name": "extra", "bogus": 1})


@step
def key_create_idempotent(t):
    t.state["idem"] = str(uuid.uuid4())
    return t.admin("POST", t.keys(), json={"name": "idem"}, headers={"Idempotency-Key": t.state["idem"]})


@step
def key_create_idempotent_replay(t):
    return t.admin("POST", t.keys(), json={"name": "idem"}, headers={"Idempotency-Key": t.state["idem"]})


@step
def key_create_idempotent_replay_other_body(t):
    return t.admin("POST", t.keys(), json={"name": "idem-other"}, headers={"Idempotency-Key": t.state["idem"]})


@step
def key_list_after_replays(t):
    return t.admin("GET", t.keys(), params={"name": "startswith:idem"})


@step
def sa_create_reusing_idempotency_key(t):
    # Same key, other URL: the real server runs the request normally (no replay, no error).
    return t.admin(
        "POST", API + "/service_accounts", json={"name": "diff-reuse", "active": True}, headers={"Idempotency-Key": t.state["idem"]}
    )


@step
def key_create_idempotency_key_not_a_uuid(t):
    # Outside the pooled connections: after this 500 the real server sometimes resets the
    # kept-alive connection under the next request.
    return requests.post(
        t.base + t.keys(),
        json={"name": "idem-bad"},
        headers={"Idempotency-Key": "not-a-uuid", "Authorization": "Bearer " + t.state["admin"], "Connection": "close"},
        timeout=30,
    )


@step
def key_create_idempotent_error(t):
    t.state["idem2"] = str(uuid.uuid4())
    return t.admin("POST", t.keys(), json={"name": "k1"}, headers={"Idempotency-Key": t.state["idem2"]})


@step
def key_create_idempotent_error_not_replayed(t):
    # Errors are not recorded: the retry runs (with its own body).
    return t.admin("POST", t.keys(), json={"name": "retried"}, headers={"Idempotency-Key": t.state["idem2"]})


# -- reading keys -----------------------------------------------------------------------
@step
def key_get_by_name(t):
    return t.admin("GET", t.keys() + "/k1")


@step
def key_get_by_id(t):
    return t.admin("GET", t.keys() + "/" + t.state["empty_id"])


@step
def key_get_unhydrated(t):
    return t.admin("GET", t.keys() + "/k1", params={"hydrate": "false"})


@step
def key_get_bad_hydrate(t):
    return t.admin("GET", t.keys() + "/k1", params={"hydrate": "maybe"})


@step
def key_get_missing(t):
    return t.admin("GET", t.keys() + "/nope")


@step
def key_get_unknown_sa(t):
    return t.admin("GET", f"{API}/service_accounts/{uuid.uuid4()}/api_keys/k1")


@step
def key_list(t):
    return t.admin("GET", t.keys())


@step
def key_list_hydrated(t):
    return t.admin("GET", t.keys(), params={"hydrate": "true"})


@step
def key_list_first_page(t):
    return t.admin("GET", t.keys(), params={"size": 2})


@step
def key_list_second_page(t):
    return t.admin("GET", t.keys(), params={"size": 2, "page": 2})


@step
def key_list_page_beyond(t):
    return t.admin("GET", t.keys(), params={"page": 99})


@step
def key_list_page_zero(t):
    return t.admin("GET", t.keys(), params={"page": 0})


@step
def key_list_size_zero(t):
    return t.admin("GET", t.keys(), params={"size": 0})


@step
def key_list_size_too_big(t):
    return t.admin("GET", t.keys(), params={"size": 10001})


@step
def key_list_sort_desc_name(t):
    return t.admin("GET", t.keys(), params={"sort_by": "desc:name"})


@step
def key_list_sort_asc_created(t):
    return t.admin("GET", t.keys(), params={"sort_by": "asc:created"})


@step
def key_list_sort_bad(t):
    return t.admin("GET", t.keys(), params={"sort_by": "bogus"})


@step
def key_list_filter_startswith(t):
    return t.admin("GET", t.keys(), params={"name": "startswith:k"})


@step
def key_list_filter_contains(t):
    return t.admin("GET", t.keys(), params={"name": "contains:dem"})


@step
def key_list_filter_active(t):
    return t.admin("GET", t.keys(), params={"active": "true"})


@step
def key_list_filter_active_bad(t):
    return t.admin("GET", t.keys(), params={"active": "maybe"})


@step
def key_list_filter_or(t):
    return t.admin("GET", t.keys(), params={"name": "k1", "description": "contains:nomatch", "logical_operator": "or"})


@step
def key_list_filter_and(t):
    return t.admin("GET", t.keys(), params={"name": "k1", "description": "contains:nomatch", "logical_operator": "and"})


@step
def key_list_bad_logical_operator(t):
    return t.admin("GET", t.keys(), params={"logical_operator": "xor"})


@step
def key_list_bad_hydrate(t):
    return t.admin("GET", t.keys(), params={"hydrate": "maybe"})


@step
def key_list_filter_created_bad_format(t):
    return t.admin("GET", t.keys(), params={"created": "gt:2020-01-01"})


@step
def key_list_filter_created(t):
    return t.admin("GET", t.keys(), params={"created": "gte:2020-01-01 00:00:00", "size": 3})


@step
def key_list_unknown_operator(t):
    return t.admin("GET", t.keys(), params={"name": "bogus:k1"})


@step
def key_list_unknown_sa(t):
    return t.admin("GET", f"{API}/service_accounts/{uuid.uuid4()}/api_keys")


# -- updating keys -----------------------------------------------------------------------
@step
def key_update_description(t):
    return t.admin("PUT", t.keys() + "/k1", json={"description": "updated"})


@step
def key_update_rename(t):
    return t.admin("PUT", t.keys() + "/extra", json={"name": "extra-renamed"})


@step
def key_update_rename_clash(t):
    return t.admin("PUT", t.keys() + "/extra-renamed", json={"name": "k1"})


@step
def key_update_nulls_ignored(t):
    return t.admin("PUT", t.keys() + "/k1", json={"name": None, "description": None, "active": None})


@step
def key_update_by_id(t):
    return t.admin("PUT", t.keys() + "/" + t.state["empty_id"], json={"name": "was-empty"})


@step
def key_update_bad_active(t):
    return t.admin("PUT", t.keys() + "/k1", json={"active": "x"})


@step
def key_update_not_an_object(t):
    return t.admin("PUT", t.keys() + "/k1", json=[1])


@step
def key_update_missing(t):
    return t.admin("PUT", t.keys() + "/nope", json={"description": "x"})


@step
def key_rotate_with_idempotency_key(t):
    t.state["idem_rotate"] = str(uuid.uuid4())
    return t.admin("PUT", t.keys() + "/extra-renamed/rotate", json={}, headers={"Idempotency-Key": t.state["idem_rotate"]})


@step
def key_rotate_with_the_same_idempotency_key_rotates_again(t):
    # Only POSTs are deduplicated: this answers a new key, not the first one.
    return t.admin("PUT", t.keys() + "/extra-renamed/rotate", json={}, headers={"Idempotency-Key": t.state["idem_rotate"]})


# -- using a key -------------------------------------------------------------------------
@step
def login_api_key(t):
    r = t.login(grant_type="zenml-api-key", password=t.state["k1_gen1"])
    remember(t, "bearer_gen1", token_of(r))
    return r


@step
def key_bearer_lists_keys(t):
    return t.request("GET", t.keys(), token=t.state["bearer_gen1"], params={"name": "k1"})


@step
def key_shows_last_login(t):
    return t.admin("GET", t.keys() + "/k1")


@step
def current_user_of_key(t):
    return t.request("GET", API + "/current-user", token=t.state["bearer_gen1"])


@step
def api_key_as_bearer(t):
    return t.request("GET", t.keys(), token=t.state["k1_gen1"], params={"name": "k1"})


@step
def login_api_key_grant_inferred(t):
    return t.login(password=t.state["k1_gen1"])


# -- rotation ------------------------------------------------------------------------------
@step
def key_rotate_without_retention(t):
    r = t.admin("PUT", t.keys() + "/k1/rotate", json={})
    remember(t, "k1_gen2", key_of(r))
    return r


@step
def bearer_of_rotated_generation(t):
    return t.request("GET", t.keys(), token=t.state["bearer_gen1"])


@step
def login_rotated_key(t):
    return t.login(grant_type="zenml-api-key", password=t.state["k1_gen1"])


@step
def login_new_key(t):
    r = t.login(grant_type="zenml-api-key", password=t.state["k1_gen2"])
    remember(t, "bearer_gen2", token_of(r))
    return r


@step
def key_rotate_with_retention(t):
    r = t.admin("PUT", t.keys() + "/k1/rotate", json={"retain_period_minutes": 10})
    remember(t, "k1_gen3", key_of(r))
    return r


@step
def login_retained_key(t):
    return t.login(grant_type="zenml-api-key", password=t.state["k1_gen2"])


@step
def bearer_of_retained_generation(t):
    return t.request("GET", t.keys(), token=t.state["bearer_gen2"], params={"name": "k1"})


@step
def login_newest_key(t):
    r = t.login(grant_type="zenml-api-key", password=t.state["k1_gen3"])
    remember(t, "bearer_gen3", token_of(r))
    return r


@step
def key_shows_rotation(t):
    return t.admin("GET", t.keys() + "/k1")


@step
def key_rotate_again_with_retention(t):
    r = t.admin("PUT", t.keys() + "/k1/rotate", json={"retain_period_minutes": 10})
    remember(t, "k1_gen4", key_of(r))
    return r


@step
def login_key_two_generations_back(t):
    return t.login(grant_type="zenml-api-key", password=t.state["k1_gen2"])


@step
def bearer_two_generations_back(t):
    return t.request("GET", t.keys(), token=t.state["bearer_gen2"])


@step
def bearer_of_previous_generation(t):
    return t.request("GET", t.keys(), token=t.state["bearer_gen3"], params={"name": "k1"})


@step
def login_previous_key(t):
    return t.login(grant_type="zenml-api-key", password=t.state["k1_gen3"])


@step
def key_rotate_negative_retention(t):
    r = t.admin("PUT", t.keys() + "/k1/rotate", json={"retain_period_minutes": -5})
    remember(t, "k1_gen5", key_of(r))
    return r


@step
def login_previous_key_after_negative_retention(t):
    return t.login(grant_type="zenml-api-key", password=t.state["k1_gen4"])


@step
def key_rotate_retention_not_a_number(t):
    return t.admin("PUT", t.keys() + "/k1/rotate", json={"retain_period_minutes": "x"})


@step
def key_rotate_retention_fractional(t):
    return t.admin("PUT", t.keys() + "/k1/rotate", json={"retain_period_minutes": 1.5})


@step
def key_rotate_retention_null(t):
    return t.admin("PUT", t.keys() + "/k1/rotate", json={"retain_period_minutes": None})


@step
def key_rotate_no_body(t):
    return t.admin("PUT", t.keys() + "/k1/rotate")


@step
def key_rotate_missing(t):
    return t.admin("PUT", t.keys() + "/nope/rotate", json={})


# -- deactivation -------------------------------------------------------------------------
@step
def login_current_key(t):
    r = t.login(grant_type="zenml-api-key", password=t.state["k1_gen5"])
    remember(t, "bearer_gen5", token_of(r))
    return r


@step
def key_deactivate(t):
    return t.admin("PUT", t.keys() + "/k1", json={"active": False})


@step
def login_inactive_key(t):
    return t.login(grant_type="zenml-api-key", password=t.state["k1_gen5"])


@step
def bearer_of_inactive_key(t):
    return t.request("GET", t.keys(), token=t.state["bearer_gen5"])


@step
def key_reactivate(t):
    return t.admin("PUT", t.keys() + "/k1", json={"active": True})


@step
def bearer_of_reactivated_key(t):
    return t.request("GET", t.keys(), token=t.state["bearer_gen5"], params={"name": "k1"})


@step
def sa_deactivate(t):
    return t.admin("PUT", f"{API}/service_accounts/{t.state['sa']}", json={"active": False})


@step
def bearer_of_inactive_sa(t):
    return t.request("GET", API + "/current-user", token=t.state["bearer_gen5"])


@step
def login_key_of_deactivated_sa(t):
    return t.login(grant_type="zenml-api-key", password=t.state["k1_gen5"])


@step
def sa_reactivate(t):
    return t.admin("PUT", f"{API}/service_accounts/{t.state['sa']}", json={"active": True})


@step
def key_create_on_inactive_sa(t):
    r = t.admin("POST", t.keys("sa_idle"), json={"name": "idle-key"})
    remember(t, "idle_key", key_of(r))
    return r


@step
def login_key_of_inactive_sa(t):
    return t.login(grant_type="zenml-api-key", password=t.state["idle_key"])


# -- deletion -------------------------------------------------------------------------------
@step
def key_delete(t):
    return t.admin("DELETE", t.keys() + "/k1")


@step
def key_delete_again(t):
    return t.admin("DELETE", t.keys() + "/k1")


@step
def bearer_of_deleted_key(t):
    return t.request("GET", t.keys(), token=t.state["bearer_gen5"])


@step
def login_deleted_key(t):
    return t.login(grant_type="zenml-api-key", password=t.state["k1_gen5"])


@step
def key_delete_by_id(t):
    return t.admin("DELETE", t.keys() + "/" + t.state["empty_id"])


@step
def key_list_at_the_end(t):
    return t.admin("GET", t.keys(), params={"hydrate": "true"})


# -- routing ------------------------------------------------------------------------------------
@step
def unknown_route(t):
    return t.admin("GET", API + "/no_such_thing")


@step
def wrong_method(t):
    return t.admin("PATCH", t.keys())


# -- last, because afterwards the two sides hold different keys: a service account's own
# key managing keys (admin-only on an open-source server without RBAC).
@step
def key_create_own(t):
    r = t.admin("POST", t.keys(), json={"name": "own"})
    remember(t, "own_key", key_of(r))
    return r


@step
def login_own_key(t):
    r = t.login(grant_type="zenml-api-key", password=t.state["own_key"])
    remember(t, "own_bearer", token_of(r))
    return r


@step
def service_account_key_creates_key(t):
    return t.request("POST", t.keys(), token=t.state["own_bearer"], json={"name": "made-by-a-key"})


@step
def service_account_key_rotates_key(t):
    return t.request("PUT", t.keys() + "/idem/rotate", token=t.state["own_bearer"], json={})


@step
def service_account_key_deletes_key(t):
    return t.request("DELETE", t.keys() + "/idem", token=t.state["own_bearer"])


@step
def service_account_key_updates_its_account(t):
    # What the operator's probe sends to find out whether a key may manage keys.
    return t.request("PUT", f"{API}/service_accounts/{t.state['sa']}", token=t.state["own_bearer"], json={})


# ----------------------------------------------------------------------------- normalisation
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ZENKEY_RE = re.compile(r"ZENKEY_[A-Za-z0-9+/=_-]+")
JWT_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$")
PYDANTIC_ITEM_RE = re.compile(r"\{'type': '([^']*)', 'loc': \(([^)]*)\), 'msg': ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")


class Normaliser:
    def __init__(self):
        self.names: dict[str, str] = {}

    def placeholder(self, kind: str, value: str) -> str:
        if value not in self.names:
            n = sum(1 for v in self.names.values() if v.startswith(f"<{kind}:")) + 1
            self.names[value] = f"<{kind}:{n}>"
        return self.names[value]

    def text(self, s: str) -> str:
        if TIME_RE.match(s):
            return "<time>"
        if JWT_RE.match(s) and len(s) > 40:
            return self.placeholder("token", s)
        s = ZENKEY_RE.sub(lambda m: self.placeholder("zenkey", m.group(0)), s)
        s = UUID_RE.sub(lambda m: self.placeholder("id", m.group(0)), s)
        return s

    def value(self, v):
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, str):
            return self.text(v)
        return v


def validation_text(message: str) -> str:
    """Pydantic's text, reduced to what a client may rely on."""
    if " validation error" in message and ":\n  {" in message:
        items = [f"{t} at ({loc}): {msg}" for t, loc, msg in PYDANTIC_ITEM_RE.findall(message)]
        head = message.split(":", 1)[0]
        return head + ": " + "; ".join(items)
    message = re.sub(r"\s*\[type=.*?input_type=\w+\]", "", message, flags=re.S)
    message = re.sub(r"errors\.pydantic\.dev/[\d.]+/", "errors.pydantic.dev/<version>/", message)
    return message


def body_of(response):
    try:
        body = response.json()
    except ValueError:
        return {"<text>": response.text}
    if isinstance(body, list) and len(body) == 2 and all(isinstance(x, str) for x in body):
        return [body[0], validation_text(body[1])]
    if isinstance(body, dict) and isinstance(body.get("detail"), list) and len(body["detail"]) == 2:
        name, message = body["detail"]
        if isinstance(message, str):
            return {**body, "detail": [name, validation_text(message)]}
    return body


def run_sequence(t: Target) -> list[tuple[str, int, object]]:
    norm = Normaliser()
    out = []
    for fn in STEPS:
        try:
            response = fn(t)
        except (KeyError, TypeError, AttributeError) as e:
            # A value an earlier step should have produced is missing on this side.
            out.append((fn.__name__, 0, {"<step could not run>": f"{type(e).__name__}: {e}"}))
            continue
        out.append((fn.__name__, response.status_code, norm.value(body_of(response))))
        time.sleep(0.005)  # distinct creation times, so sorting by them is deterministic
    return out


# ----------------------------------------------------------------------------- comparison
def load_differences() -> list[dict]:
    entries = yaml.safe_load(DIFFERENCES_FILE.read_text()) or []
    for e in entries:
        assert set(e) >= {"step", "differs", "why"}, f"allow-list entry needs step, differs, why: {e}"
        assert e["differs"] in ("status", "body"), e
    return entries


def compare(real, emulated):
    assert [s for s, _, _ in real] == [s for s, _, _ in emulated]
    rows = []
    for (name, rs, rb), (_, es, eb) in zip(real, emulated):
        rows.append({"step": name, "status": rs == es, "body": rb == eb, "real": (rs, rb), "emulated": (es, eb)})
    return rows


def figures(rows) -> str:
    m = len(rows)
    n = sum(r["status"] for r in rows)
    k = sum(r["status"] and r["body"] for r in rows)
    return f"status codes agree on {n}/{m} steps, bodies on {k}/{m}"


def show(value) -> str:
    return json.dumps(value, indent=None, sort_keys=True)[:1500]


@pytest.fixture(scope="session")
def real_zenml():
    with tempfile.TemporaryDirectory(prefix="zenml-real-") as tmp:
        with ZenmlServer(tmp, python=sys.executable) as srv:
            yield srv


def emulated_target(store) -> Target:
    if (store.data / "zenml.admin-user").exists():
        return Target("emulation", store.base, store.read("zenml.admin-user"), store.read("zenml.admin-password"))
    return Target("emulation", store.base, "admin", "unknown", fallback_key=store.read("zenml.api-key"))


def test_sequence_agrees_with_the_real_server(real_zenml, store, capsys):
    assert len(STEPS) >= 80
    real = run_sequence(Target("real", real_zenml.url, real_zenml.admin_user, real_zenml.admin_password))
    emulated = run_sequence(emulated_target(store))
    rows = compare(real, emulated)
    summary = figures(rows)
    with capsys.disabled():
        print(f"\nZenML differential (real zenml[server] vs emulation): {summary}")
    if os.environ.get("ZENML_DIFF_DUMP"):
        pathlib.Path(os.environ["ZENML_DIFF_DUMP"]).write_text(json.dumps(rows, indent=1))

    allowed = {(e["step"], e["differs"]): e for e in load_differences()}
    known_steps = {fn.__name__ for fn in STEPS}
    problems = []
    for (name, kind) in allowed:
        if name not in known_steps:
            problems.append(f"allow-list entry for unknown step {name!r}")
    for row in rows:
        name = row["step"]
        if not row["status"]:
            if (name, "status") not in allowed:
                problems.append(
                    f"{name}: status real {row['real'][0]} vs emulated {row['emulated'][0]}\n"
                    f"    real:     {show(row['real'][1])}\n    emulated: {show(row['emulated'][1])}"
                )
        elif not row["body"]:
            if (name, "body") not in allowed:
                problems.append(
                    f"{name}: body differs (status {row['real'][0]})\n"
                    f"    real:     {show(row['real'][1])}\n    emulated: {show(row['emulated'][1])}"
                )
        if (name, "status") in allowed and row["status"]:
            problems.append(f"{name}: stale allow-list entry (status now agrees)")
        if (name, "body") in allowed and (row["body"] or not row["status"]):
            problems.append(f"{name}: stale allow-list entry (body now agrees, or the status differs instead)")
    assert not problems, summary + "\n" + "\n".join(problems)


def test_real_server_with_allow_all_rbac_lets_a_service_account_key_manage_keys():
    """tests/zenml/server.py --rbac: with an RBAC implementation configured, the
    open-source server drops its admin-only rule, as the emulation (which models a
    server with RBAC) does."""
    with tempfile.TemporaryDirectory(prefix="zenml-rbac-") as tmp:
        with ZenmlServer(tmp, rbac=True, python=sys.executable) as srv:
            admin = srv.admin_token()
            sa = srv.create_service_account("rbac-bot")
            key = srv.create_api_key(sa["id"], "own")["body"]["key"]
            bearer = srv.login(grant_type="zenml-api-key", password=key)["access_token"]
            keys = f"/api/v1/service_accounts/{sa['id']}/api_keys"
            status, created = srv.api("POST", keys, bearer, {"name": "by-key"})
            assert status == 200 and created["name"] == "by-key"
            assert srv.api("PUT", keys + "/by-key/rotate", bearer, {})[0] == 200
            assert srv.api("DELETE", keys + "/by-key", bearer)[0] == 200
            assert srv.api("GET", keys, admin)[0] == 200
